#!/usr/bin/env bash
# Issue 15's figures in one sitting: the MQTT client libraries alone, then ingest at 20,000
# and 35,000 msg/s with the broker's own C subscriber (the physical reference), the paho
# consumer and the mqtt5 consumer side by side, then a fire event's way to the operators'
# live stream at 5,000 msg/s with Nagle's algorithm on and off at the broker.
# Usage: benchmarks/run_consumer_comparison.sh [OUTDIR]   (about 20 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/ingest/$(date -u +%Y-%m-%d)}
mkdir -p "$out"
fw=.venv/bin/firewatch
$fw bench mqtt-clients --rate 8000 --duration 10 --json "$out/clients-rate8000.json"
for rate in 20000 35000; do
  $fw bench ingest --rate "$rate" --devices 1000 --duration 20 \
    --consumer mosquitto_sub,paho,mqtt5 --json "$out/consumers-rate${rate}-w1.json"
done
$fw bench ingest --rate 35000 --devices 1000 --duration 20 --workers 2 \
  --consumer paho,mqtt5 --json "$out/consumers-rate35000-w2.json"
$fw bench ingest --rate 5000 --devices 1000 --duration 30 --alerts 100 \
  --consumer mosquitto_sub,paho,mqtt5 --json "$out/alerts-rate5000.json"
$fw bench ingest --rate 5000 --devices 1000 --duration 30 --alerts 100 \
  --consumer mqtt5 --broker-option "set_tcp_nodelay true" --json "$out/alerts-rate5000-nodelay.json"

"""``firewatch bench ...``: the benchmarks (CONTRIBUTING.md, "Benchmark"; results under
benchmarks/). ``ingest``, ``mqtt-clients``, ``storage``, ``broker``, ``analytics``, ``api``,
``credentials``, ``decoders`` and ``gateway`` are here; ``draws`` (``cli/supervise.py``),
``rollups`` (``cli/analysis.py``) and ``risk-quality`` (``cli/risk.py``) are added to the
group by their areas' modules.

Registered by ``firewatch/cli/__init__.py`` through :func:`add_commands`, which makes the
``bench`` group. Handlers take ``(settings, args)`` and return the exit code; each prints
its result and writes it to ``--json FILE`` when given. The lab (``firewatch/lab``) and the
simulator are imported only when a command runs (inside the handlers and the ``duration``
argument type), so ``firewatch --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firewatch.cli import analysis as tiers
from firewatch.cli import risk, supervise
from firewatch.cli.arguments import duration
from firewatch.cli.output import write_json
from firewatch.core.settings import Settings


def cmd_bench_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.ingest_bench import REFERENCE, BenchConfig, run_ingest_bench
    from firewatch.lab.ingest_report import format_comparison, format_result

    consumers = [c.strip() for c in args.consumer.split(",") if c.strip()]
    unknown = sorted(set(consumers) - {"mqtt5", "paho", REFERENCE})
    if unknown or not consumers:
        print(f"bench ingest: unknown --consumer {unknown}: mqtt5, paho, {REFERENCE}")
        return 2
    results = []
    for consumer in consumers:  # one sitting: the same machine state for every consumer
        cfg = BenchConfig(
            rate=args.rate,
            devices=args.devices,
            duration=args.duration,
            workers=args.workers,
            generators=args.generators,
            alerts=0 if consumer == REFERENCE else args.alerts,
            consumer=consumer,
            broker_options=tuple(args.broker_option),
        )
        logs = args.logs / consumer if args.logs and len(consumers) > 1 else args.logs
        results.append(run_ingest_bench(settings, cfg, log_dir=logs))
        print(format_result(results[-1]), flush=True)
    if len(results) > 1:
        print(format_comparison(results))
        write_json(args.json, {"benchmark": "ingest-consumers", "runs": results})
    else:
        write_json(args.json, results[0])
    return 0


def cmd_bench_storage(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.storage_bench import StorageBenchConfig, format_result, run_storage_bench
    from firewatch.lab.timescale import TimescaleUnavailable

    cfg = StorageBenchConfig(
        rate=args.rate,
        devices=args.devices,
        duration=args.duration,
        rounds=args.rounds,
        units=args.units,
        days=args.days,
        queries=args.queries,
    )
    try:
        result = run_storage_bench(settings, cfg)
    except TimescaleUnavailable as err:
        print(f"bench storage: {err}", file=sys.stderr)
        return 1
    print(format_result(result))
    write_json(args.json, result)
    return 0


def cmd_bench_broker(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.brokercrash import format_broker_bench, run_broker_bench

    result = run_broker_bench(
        settings, messages=args.messages, rate=args.rate, repeat=args.repeat, seed=args.seed
    )
    print(format_broker_bench(result))
    write_json(args.json, result)
    return 0


def cmd_bench_analytics(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.detector_bench import format_bench, run_analytics_bench

    result = run_analytics_bench(
        settings,
        units=args.units or [2000, 30],
        duration_s=args.duration,
        batch_s=args.batch,
        repeat=args.repeat,
    )
    print(format_bench(result))
    write_json(args.json, result)
    return 0


def cmd_bench_api(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.apibench import ApiBenchConfig, format_result, run_api_bench

    cfg = ApiBenchConfig(
        requests=args.requests, concurrency=args.concurrency, path=args.path, alerts=args.alerts
    )
    result = run_api_bench(settings, cfg)
    print(format_result(result))
    write_json(args.json, result)
    return 0


def cmd_bench_credentials(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.credentials_bench import (
        CredentialBenchConfig,
        format_result,
        run_credential_bench,
    )

    cfg = CredentialBenchConfig(devices=args.devices, connected=args.connected)
    result = run_credential_bench(settings, cfg)
    print(format_result(result))
    write_json(args.json, result)
    return 0


def cmd_bench_mqtt_clients(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.client_bench import CLIENTS, run_client_bench

    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if not clients or set(clients) - set(CLIENTS):
        print(f"bench mqtt-clients: --clients from {', '.join(CLIENTS)}", file=sys.stderr)
        return 2
    result = run_client_bench(clients, args.rate, args.duration, args.devices)
    write_json(args.json, result)
    return 0


def cmd_bench_decoders(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.fuzzdecode import format_result, run_decoder_fuzz

    if args.examples < 1:
        print("bench decoders: --examples must be at least 1", file=sys.stderr)
        return 2
    result = run_decoder_fuzz(settings, examples=args.examples, seed=args.seed)
    print(format_result(result))
    write_json(args.json, result)
    return 1 if result["failures"] else 0


def cmd_bench_gateway(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.gateway_bench import GatewayBenchConfig, format_result, run_gateway_bench

    cfg = GatewayBenchConfig(
        connections=args.connections,
        hold=args.hold,
        duration=args.duration,
        rate=args.rate,
        codec_seconds=args.codec_seconds,
        target=args.target,
    )
    result = run_gateway_bench(settings, cfg, log_dir=args.logs)
    print(format_result(result))
    write_json(args.json, result)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``bench`` group in the top-level subparsers ``sub``, with every benchmark."""
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench_command", required=True
    )
    bi = bench.add_parser("ingest", help="offer MQTT load, measure storage rate and latency")
    bi.add_argument("--rate", type=float, default=5000, help="offered messages/s")
    bi.add_argument("--devices", type=int, default=1000)
    bi.add_argument("--duration", type=float, default=20, help="seconds of load")
    bi.add_argument("--workers", type=int, default=1, help="ingest worker processes")
    bi.add_argument("--generators", type=int, default=0, help="load processes (0: by rate)")
    bi.add_argument(
        "--alerts",
        type=int,
        default=0,
        help="also time N fire events from MQTT to the API's live stream (runs analytics, "
        "alerting and the API too)",
    )
    bi.add_argument(
        "--consumer",
        default="mqtt5",
        help="ingest consumer: mqtt5 (default), paho, or mosquitto_sub (the broker's own C "
        "subscriber, no ingest: the physical reference); several, comma-separated, run one "
        "after another and are printed side by side",
    )
    bi.add_argument(
        "--broker-option",
        action="append",
        default=[],
        metavar="LINE",
        help="a Mosquitto config line added for this run's broker (repeatable), e.g. "
        "'set_tcp_nodelay true'",
    )
    bi.add_argument("--json", type=Path, help="write the result document here")
    bi.add_argument("--logs", type=Path, help="keep worker logs in this directory")
    bi.set_defaults(func=cmd_bench_ingest)
    bs = bench.add_parser(
        "storage",
        help="plain PostgreSQL vs TimescaleDB: ingest, storage per device-day, compression, reads",
    )
    bs.add_argument("--rate", type=float, default=5000, help="ingest: offered messages/s")
    bs.add_argument("--devices", type=int, default=1000, help="ingest: devices publishing")
    bs.add_argument("--duration", type=float, default=20, help="ingest: seconds of load")
    bs.add_argument("--rounds", type=int, default=2, help="ingest rounds per flavour (0: none)")
    bs.add_argument("--units", type=int, default=40, help="units of the simulated city")
    bs.add_argument(
        "--days", type=int, default=30, help="days of the simulated city (0: ingest only)"
    )
    bs.add_argument("--queries", type=int, default=20, help="timed reads per kind")
    bs.add_argument("--json", type=Path, help="write the result document here")
    bs.set_defaults(func=cmd_bench_storage)
    bb = bench.add_parser(
        "broker", help="what a broker restart (SIGTERM) or crash (SIGKILL) loses, per scenario"
    )
    bb.add_argument("--messages", type=int, default=6000, help="messages per scenario")
    bb.add_argument("--rate", type=float, default=1000, help="messages/s offered")
    bb.add_argument("--repeat", type=int, default=3, help="crashes per autosave setting")
    bb.add_argument("--seed", type=int, default=1, help="draws the crash points")
    bb.add_argument("--json", type=Path, help="write the result document here")
    bb.set_defaults(func=cmd_bench_broker)
    ba = bench.add_parser(
        "analytics", help="detector throughput (points/s per core) on simulated cities"
    )
    ba.add_argument(
        "--units",
        type=int,
        action="append",
        help="units in a generated city (repeat for several; default 2000 and 30)",
    )
    ba.add_argument("--duration", type=duration, default=1800.0, help="simulated span")
    ba.add_argument(
        "--batch",
        type=duration,
        action="append",
        help="simulated seconds per batch (repeat for several; default: one ingest flush, "
        "0.05 s, then 1, 10 and 60)",
    )
    ba.add_argument(
        "--repeat", type=int, default=1, help="time each run this often, keep the fastest"
    )
    ba.add_argument("--json", type=Path, help="write the result document here")
    ba.set_defaults(func=cmd_bench_analytics)
    bapi = bench.add_parser("api", help="a burst of concurrent requests at a fresh API")
    bapi.add_argument("--requests", type=int, default=500, help="requests in all")
    bapi.add_argument("--concurrency", type=int, default=500, help="clients sending at once")
    bapi.add_argument("--path", default="/alerts", help="what they GET")
    bapi.add_argument("--alerts", type=int, default=100, help="open alerts seeded")
    bapi.add_argument("--json", type=Path, help="write the result document here")
    bapi.set_defaults(func=cmd_bench_api)
    bcred = bench.add_parser(
        "credentials",
        help="device logins at the broker: issue, rotate and revoke latency, sync round cost",
    )
    bcred.add_argument("--devices", type=int, default=500, help="devices given a credential")
    bcred.add_argument(
        "--connected", type=int, default=50, help="of them rotated and revoked while connected"
    )
    bcred.add_argument("--json", type=Path, help="write the result here")
    bcred.set_defaults(func=cmd_bench_credentials)
    bcli = bench.add_parser(
        "mqtt-clients", help="CPU per received QoS 1 message of each MQTT client library"
    )
    bcli.add_argument("--clients", default="mosquitto_sub,mqtt5,paho,gmqtt")
    bcli.add_argument("--rate", type=float, default=5000, help="offered messages/s")
    bcli.add_argument("--duration", type=float, default=16, help="seconds of load")
    bcli.add_argument("--devices", type=int, default=1000)
    bcli.add_argument("--json", type=Path, help="write the result document here")
    bcli.set_defaults(func=cmd_bench_mqtt_clients)
    bdec = bench.add_parser(
        "decoders", help="fuzz ingest's decoders: every message a row or a dead letter"
    )
    bdec.add_argument("--examples", type=int, default=100_000, help="messages to decode")
    bdec.add_argument("--seed", type=int, default=1, help="the generator's seed")
    bdec.add_argument("--json", type=Path, help="write the result document here")
    bdec.set_defaults(func=cmd_bench_decoders)
    bgw = bench.add_parser(
        "gateway", help="GB/T gateway: connections held, frames/s end to end, codec alone"
    )
    bgw.add_argument("--connections", type=int, default=1000, help="device connections")
    bgw.add_argument("--hold", type=float, default=10.0, help="seconds held before the check")
    bgw.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    bgw.add_argument("--rate", type=float, default=0.0, help="offered frames/s (0: closed loop)")
    bgw.add_argument("--codec-seconds", type=float, default=2.0, help="timing the codec alone")
    bgw.add_argument("--target", metavar="HOST:PORT", help="a running gateway (default: start one)")
    bgw.add_argument("--json", type=Path, help="write the result document here")
    bgw.add_argument("--logs", type=Path, help="keep the gateway's and the load's logs here")
    bgw.set_defaults(func=cmd_bench_gateway)
    supervise.add_bench_commands(bench)
    tiers.add_bench_commands(bench)
    risk.add_bench_commands(bench)

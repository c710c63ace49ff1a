"""The console's alarm latency: from a fire alarm published over MQTT to the alert drawn in
an operator's browser. ``python -m firewatch.lab.console_bench [--repeat 20] [--json OUT]``.

One run: the stack of ``console_stack`` with its pipeline (a fresh Mosquitto; ingest,
analytics and alerting on threads; the API with the console), a headless chromium logged in
as an operator with the queue open, and ``repeat`` fire alarms, one at a time, each from a
probe panel of its own (so each is a new alert, not an occurrence of the last). For each:

* ``publish`` — wall clock just before the MQTT publish (QoS 1), in this process;
* ``created`` — the alert's ``created_at`` (the alerting transaction's start, the database's
  clock: the same machine);
* ``drawn`` — in the page, a MutationObserver notes when the probe's row enters the queue,
  and the next animation frame after it (the browser paints then): ``performance.timeOrigin
  + performance.now()``, the same wall clock.

Reported: publish → drawn (the figure an operator lives with; GB 50440 asks a device's alarm
on the center's screen within 10 s, docs/domain.md), split into publish → created (broker,
ingest, analytics, alerting) and created → drawn (the stream, the browser). The next alarm is
published once the last one is drawn, so the runs do not queue behind each other. Everything
shares this machine's cores: the browser and the services compete, as on a small center's
single server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg

from firewatch.core.contract import topic_for
from firewatch.core.domain import Channel
from firewatch.lab.alert_probe import PROBE_UNIT, probe_fire, probe_ids, register_probes
from firewatch.lab.apibench import machine
from firewatch.lab.console_stack import WALL, start_stack

#: Longest wait for one alarm to be drawn before the run gives up on it.
DRAW_TIMEOUT_S = 30.0

#: Installed in the page: note when each probe's row first appears, and the frame after.
OBSERVER = """
() => {
  window.__drawn = {};
  const now = () => performance.timeOrigin + performance.now();
  const seen = () => {
    for (const row of document.querySelectorAll('.alert-row')) {
      const device = row.querySelector('.device');
      const id = device && device.textContent;
      if (id && id.startsWith('PROBE-') && !(id in window.__drawn)) {
        const entry = { inserted: now(), frame: null };
        window.__drawn[id] = entry;
        requestAnimationFrame(() => { entry.frame = now(); });
      }
    }
  };
  new MutationObserver(seen).observe(document.getElementById('view'), {
    childList: true, subtree: true,
  });
  seen();
}
"""


def _publish(client: Any, root: str, device: str) -> float:
    sent = time.time()
    body = probe_fire(sent)
    info = client.publish(topic_for(root, PROBE_UNIT, device, Channel.EVENT), orjson.dumps(body), 1)
    info.wait_for_publish(timeout=10)
    return sent


def _stats(values_ms: list[float]) -> dict[str, float | int | None]:
    if not values_ms:
        return {"n": 0, "median": None, "p95": None, "max": None, "min": None}
    arr = np.array(values_ms)
    return {
        "n": len(values_ms),
        "median": round(float(statistics.median(values_ms)), 1),
        "p95": round(float(np.percentile(arr, 95)), 1),
        "max": round(float(arr.max()), 1),
        "min": round(float(arr.min()), 1),
    }


def run_console_bench(repeat: int) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from firewatch.core.broker import BrokerAddress

    started = datetime.now(UTC)
    probes = probe_ids(repeat)
    with ExitStack() as stack:
        # the probes are registered before ingest starts, so its first registry has them
        console = start_stack(
            stack, pipeline=True, demo=False, prepare=lambda conn: register_probes(conn, repeat)
        )
        settings = console.settings
        assert settings.database_url
        assert settings.mqtt_url

        context = console.seat(viewport=WALL)
        stack.callback(context.close)
        page = context.new_page()
        page.goto("/console/#/queue")
        page.wait_for_selector("#live.live", timeout=30_000)
        page.evaluate(OBSERVER)

        addr = BrokerAddress.parse(settings.mqtt_url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if addr.username:
            client.username_pw_set(addr.username, addr.password)
        client.connect(addr.host, addr.port)
        client.loop_start()
        stack.callback(client.disconnect)
        stack.callback(client.loop_stop)

        sent: dict[str, float] = {}
        drawn: dict[str, dict[str, float]] = {}
        missed: list[str] = []
        for device in probes:
            sent[device] = _publish(client, settings.topic_root, device)
            try:
                page.wait_for_function(
                    "(d) => window.__drawn[d] && window.__drawn[d].frame !== null",
                    arg=device,
                    timeout=DRAW_TIMEOUT_S * 1000,
                )
            except Exception:
                missed.append(device)
                continue
            drawn[device] = page.evaluate("(d) => window.__drawn[d]", device)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            created = {
                str(d): float(t)
                for d, t in conn.execute(
                    "SELECT device_id, extract(epoch FROM created_at) FROM alerts"
                    " WHERE device_id LIKE 'PROBE-%%'"
                ).fetchall()
            }
        chromium = console.browser.version

    total = [drawn[d]["frame"] - sent[d] * 1000 for d in drawn]
    inserted = [drawn[d]["inserted"] - sent[d] * 1000 for d in drawn]
    pipeline = [(created[d] - sent[d]) * 1000 for d in drawn if d in created]
    delivery = [drawn[d]["frame"] - created[d] * 1000 for d in drawn if d in created]
    return {
        "benchmark": "console alarm latency: MQTT publish -> alert drawn in the browser",
        "command": f"python -m firewatch.lab.console_bench --repeat {repeat}",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "chromium": chromium,
        "repeat": repeat,
        "drawn": len(drawn),
        "missed": missed,
        "latency_ms": {
            "publish_to_drawn": _stats(total),
            "publish_to_row_inserted": _stats(inserted),
            "publish_to_alert_created": _stats(pipeline),
            "alert_created_to_drawn": _stats(delivery),
        },
        "samples_ms": {
            d: {
                "to_created": round((created[d] - sent[d]) * 1000, 1) if d in created else None,
                "to_drawn": round(drawn[d]["frame"] - sent[d] * 1000, 1),
            }
            for d in drawn
        },
    }


def format_result(result: dict[str, Any]) -> str:
    lines = [
        f"console alarm latency, {result['drawn']}/{result['repeat']} drawn "
        f"({result['machine']['cores']} cores, {result['machine']['ram_gib']} GiB, "
        f"chromium {result['chromium']})",
        f"{'leg':<28}{'median':>10}{'p95':>10}{'max':>10}  (ms)",
    ]
    for leg, s in result["latency_ms"].items():
        if s["n"]:
            lines.append(f"{leg:<28}{s['median']:>10}{s['p95']:>10}{s['max']:>10}")
    if result["missed"]:
        lines.append(f"not drawn within {DRAW_TIMEOUT_S:.0f} s: {', '.join(result['missed'])}")
    return "\n".join(lines)


def default_output(day: str | None = None) -> Path:
    return (
        Path("benchmarks/console")
        / (day or datetime.now(UTC).date().isoformat())
        / ("console-latency.json")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firewatch.lab.console_bench")
    parser.add_argument("--repeat", type=int, default=20, help="fire alarms, one at a time")
    parser.add_argument(
        "--json", type=Path, default=None, help="default: benchmarks/console/<date>/"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        print("console_bench: --repeat must be at least 1", file=sys.stderr)
        return 2
    result = run_console_bench(args.repeat)
    print(format_result(result))
    out: Path = args.json or default_output()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 1 if result["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())

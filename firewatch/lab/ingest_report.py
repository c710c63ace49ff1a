"""What ``firewatch bench ingest`` prints: one run's summary line, and for several consumers
run in one sitting (``--consumer mqtt5,paho,mosquitto_sub``) a table side by side."""

from __future__ import annotations

from typing import Any


def format_result(r: dict[str, Any]) -> str:
    """A short human summary of one run."""
    lat = r["latency_ms"]
    alerts = ""
    if "alert_latency_ms" in r:
        a = r["alert_latency_ms"]
        legs = r.get("alert_latency_legs_median_ms", {})
        alerts = (
            f"; alerts seen {r['alerts_seen']}/{r['alerts_expected']}, MQTT → live stream "
            f"p50 {a['p50']} ms p95 {a['p95']} ms p99 {a['p99']} ms (median legs: "
            + ", ".join(f"{k} {v} ms" for k, v in legs.items())
            + ")"
        )
    cpu = ", ".join(f"{w['cpu_percent']}% CPU / {w['peak_rss_mb']} MB" for w in r["per_worker"])
    return (
        f"[{r.get('consumer', 'mqtt5')}] offered {r['offered_msgs_per_s']:.0f} msg/s, "
        f"achieved {r['achieved_msgs_per_s']:.0f}, "
        f"stored {r['stored_rows_per_s']:.0f} rows/s; published {r['published']}, stored "
        f"{r['stored']}, lost {r['lost']}, duplicated {r['duplicated']}; latency p50 "
        f"{lat['p50']} ms p95 {lat['p95']} ms p99 {lat['p99']} ms; workers {r['workers']} "
        f"({cpu}); {'keeps up' if r['keeps_up'] else 'DOES NOT keep up'}{alerts}"
        + (
            "; CPU % of a core: "
            + ", ".join(f"{k} {v}" for k, v in r["cpu_percent"].items())
            + f" (of {100 * r['cpu_count']})"
            if "cpu_percent" in r
            else ""
        )
    )


#: Columns of the side-by-side table: (heading, how to read it from one result).
_COLUMNS: list[tuple[str, Any]] = [
    ("consumer", lambda r: " + ".join([r["consumer"], *r.get("broker_options", [])])),
    ("offered/s", lambda r: f"{r['offered_msgs_per_s']:.0f}"),
    ("stored/s", lambda r: f"{r['stored_rows_per_s']:.0f}"),
    ("lost", lambda r: r["lost"]),
    ("dup", lambda r: r["duplicated"]),
    ("p50 ms", lambda r: r["latency_ms"]["p50"]),
    ("p99 ms", lambda r: r["latency_ms"]["p99"]),
    ("consumer %", lambda r: round(sum(w["cpu_percent"] for w in r["per_worker"]), 1)),
    ("mosquitto %", lambda r: r["cpu_percent"].get("mosquitto")),
    ("postgres %", lambda r: r["cpu_percent"].get("postgres")),
    ("loadgen %", lambda r: r["cpu_percent"].get("load_generators")),
    ("all %", lambda r: r["cpu_percent"].get("named_total")),
    ("consumer %/1k", lambda r: r["cpu_percent_per_1000_msgs_per_s"].get("workers")),
    ("alert p50 ms", lambda r: r.get("alert_latency_ms", {}).get("p50")),
    ("alert p99 ms", lambda r: r.get("alert_latency_ms", {}).get("p99")),
    ("keeps up", lambda r: "yes" if r["keeps_up"] else "NO"),
]


def format_comparison(results: list[dict[str, Any]]) -> str:
    """One row per run (CPU as percent of one core; "%/1k": per 1,000 msg/s stored)."""
    rows = [[h for h, _ in _COLUMNS]]
    rows += [["-" if (v := get(r)) is None else str(v) for _, get in _COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )

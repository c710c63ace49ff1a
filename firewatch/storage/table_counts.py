"""Row counts and freshness of the stored streams (``firewatch db stats``)."""

from __future__ import annotations

from typing import Any

import psycopg


def collect(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Counts and newest timestamps per table; dead letters also by reason.

    Exact ``count(*)``: meant for operators and tests, not for a dashboard refreshed every
    second on a billion-row table.
    """
    out: dict[str, Any] = {}
    for table in ("telemetry", "events", "device_status"):
        count, newest_ts, newest_rx = conn.execute(
            f"SELECT count(*), max(ts), max(received_at) FROM {table}"
        ).fetchone() or (0, None, None)
        out[table] = {
            "rows": count,
            "newest_ts": newest_ts.isoformat() if newest_ts else None,
            "newest_received_at": newest_rx.isoformat() if newest_rx else None,
        }
    count, newest = conn.execute(
        "SELECT count(*), max(received_at) FROM dead_letters"
    ).fetchone() or (0, None)
    by_reason = dict(
        conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY 1 ORDER BY 1").fetchall()
    )
    out["dead_letters"] = {
        "rows": count,
        "newest_received_at": newest.isoformat() if newest else None,
        "by_reason": by_reason,
    }
    if conn.execute("SELECT to_regclass('anomalies')").fetchone() != (None,):
        total, open_now, newest = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE ended_at IS NULL), max(detected_at)"
            " FROM anomalies"
        ).fetchone() or (0, 0, None)
        by_kind = dict(
            conn.execute(
                "SELECT kind, count(*) FROM anomalies WHERE ended_at IS NULL GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        out["anomalies"] = {
            "rows": total,
            "open": open_now,
            "newest_detected_at": newest.isoformat() if newest else None,
            "open_by_kind": by_kind,
        }
    for table in ("regions", "units", "devices", "device_state"):
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        out[table] = {"rows": row[0] if row else 0}
    return out

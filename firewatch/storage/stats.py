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
    for table in ("regions", "units", "devices", "device_state"):
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        out[table] = {"rows": row[0] if row else 0}
    return out

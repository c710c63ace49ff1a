"""MQTT message bodies as devices send them (``docs/contract.md``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

#: A normal static pressure at the seeded water points, kPa.
NORMAL_KPA = 350.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def water(seq: int, pressure: float = NORMAL_KPA, ts: str | None = None) -> bytes:
    """A water point's telemetry; ``rows.water_reading`` is the row ingest stores for it."""
    return orjson.dumps(
        {
            "seq": seq,
            "ts": ts or now_iso(),
            "pressure_kpa": pressure,
            "level_m": 3.5,
            "pump_running": False,
            "jockey_running": True,
            "room_temp_c": 12.5,
        }
    )


def sparse_water(ts: str, /, **changes: Any) -> bytes:
    """The smallest valid water telemetry (seq 1 at ``ts``, 300 kPa) with ``changes``
    applied (``ts`` too); a change to ``...`` removes that field."""
    body = {"seq": 1, "ts": ts, "pressure_kpa": 300.0, **changes}
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def panel_event(
    seq: int,
    status: int,
    ts: str | None = None,
    *,
    component_type: int = 41,
    component_addr: int = 1004,
    description: str | None = None,
) -> bytes:
    """An alarm panel's ``component_status`` event: by default about point smoke detector
    1004; ``status`` bit 0 is normal operation, bit 1 fire (``0b11``: a fire alarm)."""
    body: dict[str, object] = {
        "seq": seq,
        "ts": ts or now_iso(),
        "type": "component_status",
        "system_type": 1,
        "system_addr": 1,
        "component_type": component_type,
        "component_addr": component_addr,
        "status": status,
    }
    if description is not None:
        body["description"] = description
    return orjson.dumps(body)


def gbt_event(
    seq: int,
    type_: str,
    status: int = 0,
    ts: str | None = None,
    *,
    detail: dict[str, Any] | None = None,
    **fields: Any,
) -> bytes:
    """A panel event of any type as the GB/T 26875.3 gateway publishes it (system type and
    address 0 unless given; ``detail`` when given)."""
    body: dict[str, Any] = {
        "seq": seq,
        "ts": ts or now_iso(),
        "type": type_,
        "system_type": 0,
        "system_addr": 0,
        "status": status,
        **fields,
    }
    if detail is not None:
        body["detail"] = detail
    return orjson.dumps(body)

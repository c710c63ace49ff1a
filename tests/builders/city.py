"""Ids of the demo city that the ``db`` fixture seeds (``firewatch/storage/seeds/``), and
the topic a device publishes on."""

from __future__ import annotations

UNIT = "U-WD-001"
WATER = "D-WD-001-W1"  # a pressure point of a class1_highrise unit: 100 kPa minimum
WATER_2 = "D-WD-001-W2"
PANEL = "D-WD-001-P1"
SHED = "D-WD-001-E1"


def topic(device: str = WATER, channel: str = "telemetry", unit: str = UNIT) -> str:
    """``firewatch/v1/<unit>/<device>/<channel>``."""
    return f"firewatch/v1/{unit}/{device}/{channel}"


WATER_TOPIC = topic()

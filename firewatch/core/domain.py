"""Domain vocabulary shared by every service: device kinds, channels, GB/T 26875.3 status words.

Bit meanings follow GB/T 26875.3-2011 (alarm transmission protocol) as summarised in
docs/domain.md#status-words. A system-status word's bit 0 is 1 for *normal* and 0 for *test*; we
report the exceptional state, so a word with bit 0 clear carries the flag ``test``.
"""

from __future__ import annotations

from enum import StrEnum


class DeviceKind(StrEnum):
    """The three device families Firewatch ingests."""

    PANEL = "panel"  # fire alarm control panel (user information transmission device)
    WATER = "water"  # fire-water pressure / tank-level / pump-room sensor
    EBIKE_SHED = "ebike_shed"  # e-bike charging shed: ports, smoke, ambient


class Channel(StrEnum):
    """The last topic level: what a message is."""

    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"


#: Which channels each kind may publish on (anything else is a topic mismatch).
CHANNELS_BY_KIND: dict[DeviceKind, frozenset[Channel]] = {
    DeviceKind.PANEL: frozenset({Channel.EVENT, Channel.STATUS}),
    DeviceKind.WATER: frozenset({Channel.TELEMETRY, Channel.STATUS}),
    DeviceKind.EBIKE_SHED: frozenset({Channel.TELEMETRY, Channel.STATUS}),
}


class Severity(StrEnum):
    """Four severity levels shared by fault labels, anomalies and alerts (highest first)."""

    CRITICAL = "critical"  # life safety now: fire, thermal runaway, burst main
    HIGH = "high"  # protection impaired: pump failure, closed valve, low pressure
    MEDIUM = "medium"  # degrading: slow leak, drift, device offline
    LOW = "low"  # nuisance or data quality: clock skew, malformed payloads


class PanelEventType(StrEnum):
    """GB/T 26875.3 information-object type carried by a panel event."""

    SYSTEM_STATUS = "system_status"  # type flag 1; also the panel's periodic status
    COMPONENT_STATUS = "component_status"  # type flag 2
    OPERATION = "operation"  # type flag 4: operator actions on the panel
    ANALOG = "analog"  # type flag 3: a component's analog value (detail: quantity, value, unit)
    SOFTWARE_VERSION = "software_version"  # type flag 5 (detail: version)
    SYSTEM_CONFIG = "system_config"  # type flag 6: configuration text in description
    COMPONENT_CONFIG = "component_config"  # type flag 7: a component's description
    SYSTEM_TIME = "system_time"  # type flag 8: the fire system's clock (detail: clock)
    TRANSMISSION_STATUS = "transmission_status"  # type flag 21: the UITD's status byte
    TRANSMISSION_OPERATION = "transmission_operation"  # type flag 24: operations on the UITD
    TRANSMISSION_VERSION = "transmission_version"  # type flag 25 (detail: version)
    TRANSMISSION_CONFIG = "transmission_config"  # type flag 26: configuration text
    TRANSMISSION_TIME = "transmission_time"  # type flag 28: the UITD's clock (detail: clock)
    DUTY_CHECK = "duty_check"  # the outcome of a duty check (查岗, type flag 91) the center asked
    RAW = "raw"  # an information object the gateway could not decode (detail: type_flag, hex)


#: System status (16 bits). Bit 0 and bit 11 are handled specially in :func:`decode_status`.
SYSTEM_STATUS_BITS: dict[int, str] = {
    1: "fire",
    2: "fault",
    3: "isolated",
    4: "supervisory",
    5: "started",
    6: "feedback",
    7: "delay",
    8: "mains_power_fault",
    9: "backup_power_fault",
    10: "bus_fault",
    12: "config_changed",
    13: "reset",
}

#: Component status uses bits 0-7 like the system word, plus bit 8 = power fault.
COMPONENT_STATUS_BITS: dict[int, str] = {
    **{bit: name for bit, name in SYSTEM_STATUS_BITS.items() if bit <= 7},
    8: "power_fault",
}

#: Operation record (type flag 4), one byte.
OPERATION_BITS: dict[int, str] = {
    0: "reset",
    1: "silence",
    2: "manual_alarm",
    3: "alarm_cleared",
    4: "self_test",
    5: "confirm",
    6: "test",
}

#: User information transmission device (UITD, 用户信息传输装置) status byte (type flag 21).
#: Bit 0 is 1 for normal monitoring and 0 for test, as in the system word: a byte with bit 0
#: clear carries the flag ``test``. Bits 5 and 6 are recalled, not checked against the text.
TRANSMISSION_STATUS_BITS: dict[int, str] = {
    1: "fire",
    2: "fault",
    3: "mains_power_fault",
    4: "backup_power_fault",
    5: "link_fault",  # the channel to the monitoring center
    6: "line_fault",  # the line to the fire system
}

#: UITD operation record (type flag 24), one byte. ``duty_answer`` (查岗应答) is the on-duty
#: person's answer to a duty check.
TRANSMISSION_OPERATION_BITS: dict[int, str] = {
    0: "reset",
    1: "silence",
    2: "manual_alarm",
    3: "alarm_cleared",
    4: "self_test",
    5: "duty_answer",
    6: "test",
}

#: Types whose status is one byte (an operation record or the UITD status byte).
BYTE_STATUS_TYPES = frozenset(
    {
        PanelEventType.OPERATION,
        PanelEventType.TRANSMISSION_STATUS,
        PanelEventType.TRANSMISSION_OPERATION,
    }
)

#: Flags that mean the panel reports trouble (used by later alerting).
ALARM_FLAGS = frozenset(
    {
        "fire",
        "fault",
        "isolated",
        "supervisory",
        "power_fault",
        "mains_power_fault",
        "backup_power_fault",
        "bus_fault",
        "line_fault",
        "link_fault",
        "manual_alarm",
        "duty_missed",
        "duty_late",
    }
)


def decode_status(event_type: PanelEventType, word: int) -> list[str]:
    """Decode a status word into its named flags, in bit order.

    System and component status: 16 bits (bit 0 clear: ``test``). Operation records
    (panel and UITD): 8 bits. UITD status: 8 bits (bit 0 clear: ``test``). A duty check's
    outcome: bit 0 set = answered, clear = ``duty_missed``; bit 1 = ``duty_late``. Every
    other type has no flags (the gateway sends status 0; any 16-bit word is accepted).

    Raises ``ValueError`` if the word does not fit its type (16 bits, or 8 for operations
    and the UITD status byte).
    """
    if event_type in BYTE_STATUS_TYPES:
        if not 0 <= word <= 0xFF:
            raise ValueError(f"{event_type.value} word {word} does not fit in 8 bits")
        if event_type is PanelEventType.OPERATION:
            return [name for bit, name in OPERATION_BITS.items() if word >> bit & 1]
        if event_type is PanelEventType.TRANSMISSION_OPERATION:
            return [name for bit, name in TRANSMISSION_OPERATION_BITS.items() if word >> bit & 1]
        flags = [] if word & 1 else ["test"]
        return flags + [name for bit, name in TRANSMISSION_STATUS_BITS.items() if word >> bit & 1]
    if not 0 <= word <= 0xFFFF:
        raise ValueError(f"status word {word} does not fit in 16 bits")
    if event_type is PanelEventType.DUTY_CHECK:
        return ([] if word & 1 else ["duty_missed"]) + (["duty_late"] if word >> 1 & 1 else [])
    if event_type not in (PanelEventType.SYSTEM_STATUS, PanelEventType.COMPONENT_STATUS):
        return []
    bits = (
        SYSTEM_STATUS_BITS if event_type is PanelEventType.SYSTEM_STATUS else COMPONENT_STATUS_BITS
    )
    flags = [] if word & 1 else ["test"]
    flags += [name for bit, name in bits.items() if word >> bit & 1]
    if event_type is PanelEventType.SYSTEM_STATUS and word >> 11 & 1:
        flags.append("manual")
    return flags


#: GB/T 26875.3 system types (subset) and component types (subset), for display.
SYSTEM_TYPES: dict[int, str] = {
    1: "fire alarm system",
    10: "fire linkage control",
    11: "hydrant system",
    12: "sprinkler system",
    13: "gas extinguishing",
    18: "smoke control",
    21: "fire door",
    23: "fire power supply",
}

COMPONENT_TYPES: dict[int, str] = {
    1: "controller",
    21: "alarm bell",
    23: "manual call point",
    25: "fire detector",
    30: "heat detector",
    40: "smoke detector",
    41: "point smoke detector",
    91: "fire pump",
    92: "fire water tank",
    99: "pressure switch",
}


#: Minimum static pressure at the most unfavourable point, kPa, by building class
#: (GB 50974-2014 / GB 55036-2022 as summarised in docs/domain.md#fire-water; 0.10 MPa = 100 kPa).
MIN_STATIC_PRESSURE_KPA: dict[str, float] = {
    "class1_highrise_over_100m": 150.0,  # public buildings above 100 m
    "class1_highrise": 100.0,  # class-1 high-rise public buildings
    "class2_highrise": 70.0,
    "multistorey": 70.0,
    "sprinkler": 100.0,  # sprinkler systems
}

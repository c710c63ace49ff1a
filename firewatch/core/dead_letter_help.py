"""What each dead-letter reason means and what usually fixes it (issue 14), in one line each.

:data:`DEAD_LETTER_REASONS` is the one home of these explanations: the conformance report
(``core/conformance.py``) quotes them per reason, the API's dead-letter list gives each
entry its meaning and accepts only these reasons as a filter (``api/vendor_schemas.py``,
``api/routes/vendor_tools.py``), and docs/vendor-check.md and the vendor guides carry the
same table (tests check they agree). :func:`explain` reads any
reason, one this version does not know included; :func:`payload_text` shows a refused
payload as text when it is UTF-8.

Pure: no SQL, no HTTP, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReasonHelp:
    """What a dead-letter reason means and what usually fixes it (one line each)."""

    meaning: str
    fix: str


#: Every dead-letter reason (the ``reason`` column, firewatch/core/rows.py ``Reason``), keyed
#: by its text so that a reason this version does not know yet still reads.
DEAD_LETTER_REASONS: dict[str, ReasonHelp] = {
    "oversized": ReasonHelp(
        "the payload is larger than the limit (FIREWATCH_MAX_PAYLOAD_BYTES, 64 KiB)",
        "send less per message: at most 256 shed ports, no padding, no embedded blobs",
    ),
    "bad_topic": ReasonHelp(
        "the topic is not {root}/{unit_id}/{device_id}/{channel} with ids of "
        "[A-Za-z0-9_.-]{1,64} and a channel telemetry, event or status",
        "publish on firewatch/v1/<unit id>/<device id>/<channel>, ids exactly as registered",
    ),
    "not_json": ReasonHelp(
        "the payload is not UTF-8 JSON text (binary, truncated, another encoding, or a "
        "lone surrogate escape such as \\ud800)",
        "send one UTF-8 encoded JSON object per message; check the serializer and the "
        "character encoding of free text",
    ),
    "wrong_type": ReasonHelp(
        'a field has the wrong JSON type ("300" for a number, 1 for a boolean, an array '
        "where an object belongs)",
        "send numbers as JSON numbers, booleans as true/false, the payload as an object",
    ),
    "missing_field": ReasonHelp(
        "a required field is missing (seq, ts, or the channel's own, e.g. pressure_kpa)",
        "send every required field of the channel (docs/contract.md)",
    ),
    "not_finite": ReasonHelp(
        "a reading is NaN or Infinity, which is not a measurement",
        "leave a reading out (or null where allowed) when the sensor has no value",
    ),
    "out_of_range": ReasonHelp(
        "a value is outside its physical range, or a text or list is too long (more than "
        "256 ports; docs/contract.md)",
        "check the units (kPa, m, °C, A) and the sensor; a reading outside the range is a "
        "fault, not data",
    ),
    "invalid": ReasonHelp(
        "a value breaks a rule of the contract: a ts without UTC offset, an unknown event "
        "type or state, NUL in text, duplicate port numbers",
        "send ts as RFC 3339 with an offset (or Unix seconds/ms) and only the values the "
        "contract lists; the detail names the field",
    ),
    "unknown_device": ReasonHelp(
        "the topic's device is not registered, or it was decommissioned",
        "register the device before it publishes, or stop a decommissioned one",
    ),
    "topic_mismatch": ReasonHelp(
        "the topic does not fit the registered device: another unit, a channel its kind "
        "does not use, or a payload device_id that differs from the topic's",
        "publish on the device's own unit and channels (water and sheds: telemetry, "
        "status; panels: event, status)",
    ),
    "ts_in_future": ReasonHelp(
        "ts is ahead of the server's time by more than FIREWATCH_MAX_CLOCK_SKEW_FUTURE_S (300 s)",
        "synchronise the device's clock (NTP) and send ts in UTC or with its offset",
    ),
    "ts_too_old": ReasonHelp(
        "ts is older than FIREWATCH_MAX_BACKLOG_AGE_S (7 days; a last will: the record retention)",
        "drop buffered messages older than the backlog limit; check the clock after a reboot",
    ),
    "db_rejected": ReasonHelp(
        "valid by the contract but refused by the database (a constraint, a device deleted "
        "meanwhile); the detail is the database's error",
        "nothing on the device as a rule: tell the monitoring center, with the detail",
    ),
    "rate_limited": ReasonHelp(
        "the device sent faster than its rate limit (FIREWATCH_INGEST_DEVICE_RATE_PER_S, "
        "20/s sustained, bursts of 200); the excess was refused",
        "look for a publish loop; pace a buffered backlog's upload below the rate (last "
        "wills and alarm events are never limited)",
    ),
}


def explain(reason: str) -> str:
    """The one-line meaning of dead-letter ``reason`` (any text: an unknown one says so)."""
    known = DEAD_LETTER_REASONS.get(reason)
    return known.meaning if known else f"reason {reason!r} is not known to this version"


def payload_text(payload: bytes, *, cut: bool = False) -> str | None:
    """``payload`` as text if it is UTF-8, else None. ``cut``: the bytes are a prefix of
    what arrived, so a character split at the end is dropped rather than making the whole
    payload "not text"."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as err:
        # A UTF-8 character is at most 4 bytes: only an incomplete one at the very end.
        if cut and err.start >= len(payload) - 3 and err.reason == "unexpected end of data":
            return payload[: err.start].decode("utf-8", "strict")
        return None

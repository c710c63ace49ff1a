"""Topics: well-formed for every registered device's channels, for the wrong unit or
channel, an unknown device, malformed channels and ids, other roots and level counts,
and garbage (:func:`random_topic`)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from firewatch.core.contract import MODELS
from firewatch.core.domain import CHANNELS_BY_KIND, Channel
from firewatch.core.rows import Reason
from firewatch.lab.decode_cases.draws import Source
from firewatch.lab.decode_cases.world import World

ROUTED = "routed"  # the topic routes to a model: the payload decides

_BAD_CHANNELS = ("", "Telemetry", "events", "state", "telemetry ", "tëlemetry", "status\x00",
                 "+", "#", "telemetry\n", "STATUS", "status\ud800")  # fmt: skip
_BAD_IDS = ("", "a" * 65, "D WD", "设备", "+", "#", "\x00", "a\x00", "\ud800", "D-WD-001-W1\n",
            "U-WD-001\n", "\nU", "D-WD-001-W1 ", "é")  # fmt: skip
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"


def _valid_id(src: Source, max_len: int = 64) -> str:
    n = src.integer(1, max_len)
    return "".join(src.choice(_ID_CHARS) for _ in range(min(n, 12))) + "x" * max(0, n - 12)


@dataclass(frozen=True, slots=True)
class Topic:
    text: str
    mode: str
    model: type[BaseModel]  # the payload model to aim at
    device_id: str  # the device id the payload may repeat
    expect: str | None  # ROUTED, a Reason, or None


def random_topic(src: Source, world: World) -> Topic:
    root = world.root
    mode = src.choice(_TOPIC_MODES)
    kind = src.choice(world.kinds)
    device = src.choice(world.by_kind[kind])
    unit = world.devices[device].unit_id
    channel = src.choice(sorted(CHANNELS_BY_KIND[kind]))
    model = MODELS[(kind, channel)]
    if mode == "ok":
        return Topic(f"{root}/{unit}/{device}/{channel}", mode, model, device, ROUTED)
    if mode == "wrong_unit":
        other = src.choice([u for u in world.units if u != unit] or ["U-NONE"])
        return Topic(
            f"{root}/{other}/{device}/{channel}", mode, model, device, Reason.TOPIC_MISMATCH
        )
    if mode == "wrong_channel":
        wrong = src.choice(sorted(set(Channel) - CHANNELS_BY_KIND[kind]))
        return Topic(f"{root}/{unit}/{device}/{wrong}", mode, model, device, Reason.TOPIC_MISMATCH)
    if mode == "unknown_device":
        stranger = _valid_id(src)
        if stranger in world.devices:
            stranger = "D-UNKNOWN"
        return Topic(
            f"{root}/{unit}/{stranger}/{channel}", mode, model, stranger, Reason.UNKNOWN_DEVICE
        )
    if mode == "bad_channel":
        bad = src.choice(_BAD_CHANNELS)
        return Topic(f"{root}/{unit}/{device}/{bad}", mode, model, device, Reason.BAD_TOPIC)
    if mode == "bad_id":
        bad = src.choice(_BAD_IDS)
        text = (
            f"{root}/{bad}/{device}/{channel}"
            if src.chance(50)
            else f"{root}/{unit}/{bad}/{channel}"
        )
        return Topic(text, mode, model, device, Reason.BAD_TOPIC)
    if mode == "bad_shape":
        text = src.choice(
            (
                f"firewatch/v2/{unit}/{device}/{channel}",
                f"{root}/{unit}/{device}",
                f"{root}/{unit}/{device}/{channel}/extra",
                f"/{root}/{unit}/{device}/{channel}",
                f"{root}//{device}/{channel}",
                f"{root}/{unit}/{device}/",
                root,
                f"{root}/",
                f"FIREWATCH/v1/{unit}/{device}/{channel}",
                "$SYS/broker/uptime",
                "",
                f"{root}/{unit}/{device}/{channel}/",
            )
        )
        return Topic(text, mode, model, device, Reason.BAD_TOPIC)
    text = src.text(100)
    if src.chance(30):
        text = root + "/" + text
    if src.chance(20):
        text += src.choice(("\x00", "\ud800", "\udfff", "/", "\n"))
    expect = None if text.startswith(root + "/") else Reason.BAD_TOPIC
    return Topic(text, "garbage", model, device, expect)


_TOPIC_MODES = (
    ("ok",) * 30
    + ("wrong_unit", "wrong_channel", "unknown_device") * 2
    + ("bad_channel", "bad_id", "bad_shape", "garbage") * 1
)

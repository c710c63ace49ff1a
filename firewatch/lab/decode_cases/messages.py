"""Messages: a topic and a payload together, with the outcome that is certain
(:func:`message`), as a hypothesis strategy (:func:`message_strategy`,
:func:`batch_strategy`) or from a seeded ``random.Random`` (:func:`random_messages`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from firewatch.core.domain import Channel
from firewatch.core.rows import Reason
from firewatch.lab.decode_cases.draws import HypothesisSource, RandomSource, Source
from firewatch.lab.decode_cases.mutations import BODY_MUTATIONS, mutate_bytes
from firewatch.lab.decode_cases.payloads import (
    CHANNEL_OF,
    FIELDS,
    Ctx,
    Obj,
    dumps,
    json_value,
    to_bytes,
    valid_body,
)
from firewatch.lab.decode_cases.topics import ROUTED, Topic, random_topic
from firewatch.lab.decode_cases.world import ROW, Expect, Message, World

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn, SearchStrategy


_PAYLOAD_MODES = (
    ("valid",) * 4
    + ("mutate",) * 8
    + ("bytes_mutate",) * 3
    + ("several",) * 3
    + ("shape", "json", "keys", "random_bytes", "random_text")
)


def _payload(src: Source, t: Topic, world: World) -> tuple[str, bytes, Expect]:
    """(payload mode, bytes, the outcome certain for a topic that routes)."""
    model = t.model
    will = CHANNEL_OF[model] is Channel.STATUS and src.chance(20)
    c = Ctx(world, model, t.device_id, will)
    ascii_only = src.chance(50)
    mode = src.choice(_PAYLOAD_MODES)
    expect: Expect
    if mode == "random_bytes":
        return mode, src.binary(300), None
    if mode == "random_text":
        return mode, to_bytes(src.text(300)), None
    if mode == "json":
        value = json_value(src, 4)
        expect = None if isinstance(value, Obj) else Reason.WRONG_TYPE
        return mode, to_bytes(dumps(value, ascii_only)), expect
    if mode == "keys":  # the model's own keys with random values
        body = Obj([(k, json_value(src, 2)) for k in FIELDS[model] if src.chance(70)])
        return mode, to_bytes(dumps(body, ascii_only)), None
    body = valid_body(src, c)
    if mode == "valid":
        return mode, to_bytes(dumps(body, ascii_only)), ROW
    if mode == "shape":
        text = dumps(body, ascii_only)
        shaped = src.choice(("[" + text + "]", "null", '"' + "x" * 3 + '"', "42", "[]", "{}"))
        return mode, to_bytes(shaped), Reason.MISSING_FIELD if shaped == "{}" else Reason.WRONG_TYPE
    if mode == "mutate":
        name, mutate = src.choice(BODY_MUTATIONS)
        expect = mutate(src, c, body)
        return f"mutate:{name}", to_bytes(dumps(body, ascii_only)), expect
    if mode == "bytes_mutate":
        name, data, expect = mutate_bytes(src, world, to_bytes(dumps(body, ascii_only)))
        return f"bytes:{name}", data, expect
    for _ in range(src.integer(2, 4)):  # several: no outcome is certain
        _name, mutate = src.choice(BODY_MUTATIONS)
        mutate(src, c, body)
    data = to_bytes(dumps(body, ascii_only))
    if src.chance(30):
        _name, data, _expect = mutate_bytes(src, world, data)
    return mode, data, None


def message(src: Source, world: World) -> Message:
    """One message at ``world``: a topic, a payload, and the outcome that is certain."""
    t = random_topic(src, world)
    pmode, payload, pexpect = _payload(src, t, world)
    expect: str | None
    if len(payload) > world.limits.max_payload_bytes:
        expect = Reason.OVERSIZED  # checked before anything else
    elif t.expect == ROUTED:
        expect = pexpect
    else:
        expect = t.expect
    return Message(t.text, payload, f"{t.mode}/{pmode}", None if expect is None else str(expect))


def message_strategy(world: World) -> SearchStrategy[Message]:
    """:func:`message` as a hypothesis strategy."""
    from hypothesis import strategies as st

    @st.composite
    def messages(draw: DrawFn) -> Message:
        return message(HypothesisSource(draw), world)

    return messages()


def batch_strategy(world: World, max_size: int = 12) -> SearchStrategy[list[Message]]:
    """Batches of :func:`message` with redeliveries (a message again, later on)."""
    from hypothesis import strategies as st

    @st.composite
    def batches(draw: DrawFn) -> list[Message]:
        msgs = draw(st.lists(message_strategy(world), min_size=1, max_size=max_size))
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(msgs) - 1))
            msgs.insert(draw(st.integers(i + 1, len(msgs))), msgs[i])
        return msgs

    return batches()


def random_messages(seed: int, world: World) -> Callable[[], Message]:
    """A generator of :func:`message` driven by ``random.Random(seed)``."""
    src = RandomSource(random.Random(seed))
    return lambda: message(src, world)

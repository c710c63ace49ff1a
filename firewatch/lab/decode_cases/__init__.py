"""MQTT messages for fuzzing ingest's decoders, and what every decoded message must satisfy.

One set of generators, two drivers. Each generator takes a :class:`Source` (a handful of
primitive draws: an integer in a range, a choice, a float, some bytes or text) and builds a
:class:`Message` from it:

* :func:`message_strategy` wraps them as a hypothesis strategy (:class:`HypothesisSource`:
  every primitive is a hypothesis draw, so failures shrink and ``derandomize`` reproduces),
  for ``tests/ingest/test_decode_properties.py``;
* :class:`RandomSource` drives the same generators from a seeded ``random.Random``, for
  ``firewatch bench decoders`` (:mod:`firewatch.lab.fuzzdecode`): ~0.11 ms per message
  against ~2.5 ms through hypothesis' engine, so a million examples take minutes, and the
  seed alone reproduces a run. It mimics hypothesis' bias towards the ends of each range.

What is generated (weights in ``topics._TOPIC_MODES`` / ``messages._PAYLOAD_MODES``):
topics well-formed for every registered device's channels, for the wrong unit, the wrong
channel of a kind, an unknown device, malformed channels and ids (including a trailing
newline), other roots and level counts, and garbage; payloads valid for every ``(kind, channel)`` of
:data:`firewatch.core.contract.MODELS` (built from the models' own field bounds, with
timestamps anywhere in the acceptance window, as RFC 3339 with offsets up to ±23:59 or as
Unix seconds / milliseconds, and last wills with their older connect time), those payloads
with one or several mutations (dropped, duplicated and retyped keys; range boundaries and
the next float beyond; NaN, infinities, huge integers; NUL, lone surrogates and raw control
characters in strings, strings at and past their length limit; timestamps in year 1 and
9999, at and past the window; nested junk past the parser's depth limit; port lists with
duplicates or 257 entries; truncated bytes, invalid UTF-8, a BOM, trailing garbage,
whitespace up to and past the size limit), random JSON values and random bytes.

Each message carries the outcome its construction implies when that is certain (``expect``:
``"row"`` or a :class:`~firewatch.core.rows.Reason`), else None. :func:`check` states the
properties: one :class:`~firewatch.core.rows.DeadLetter` (exact topic and bytes, a detail)
or one row that readers accept (:func:`~firewatch.core.rows.row_problem`) and that fits the
columns the writer COPYs it into (:func:`storage_problem`), with ``ts`` inside its window.

The modules: :mod:`.draws` (the sources of randomness), :mod:`.world` (the registry, server
time and limits aimed at, and :class:`Message`), :mod:`.payloads` (JSON as written, field
facts, timestamps, valid bodies), :mod:`.mutations` (of bodies and bytes), :mod:`.topics`,
:mod:`.messages` (a topic and a payload together; the strategies) and :mod:`.checks` (the
properties).
"""

from firewatch.lab.decode_cases.checks import (
    FLOAT4_MAX,
    check,
    decode_both,
    outcome_label,
    storage_problem,
)
from firewatch.lab.decode_cases.draws import HypothesisSource, RandomSource, Source
from firewatch.lab.decode_cases.messages import (
    batch_strategy,
    message,
    message_strategy,
    random_messages,
)
from firewatch.lab.decode_cases.payloads import Obj, Raw, dumps, to_bytes, valid_body
from firewatch.lab.decode_cases.topics import ROUTED
from firewatch.lab.decode_cases.world import (
    REFERENCE_TIME,
    ROW,
    Expect,
    Message,
    World,
    default_limits,
    demo_devices,
    demo_world,
)

__all__ = [
    "FLOAT4_MAX",
    "REFERENCE_TIME",
    "ROUTED",
    "ROW",
    "Expect",
    "HypothesisSource",
    "Message",
    "Obj",
    "RandomSource",
    "Raw",
    "Source",
    "World",
    "batch_strategy",
    "check",
    "decode_both",
    "default_limits",
    "demo_devices",
    "demo_world",
    "dumps",
    "message",
    "message_strategy",
    "outcome_label",
    "random_messages",
    "storage_problem",
    "to_bytes",
    "valid_body",
]

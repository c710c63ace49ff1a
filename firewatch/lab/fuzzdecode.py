"""``firewatch bench decoders``: property A of ``tests/ingest/test_decode_properties.py``
for a million messages and more.

Each example is a message from :mod:`firewatch.lab.decode_cases` (the generators behind the
tests' strategies), driven by ``random.Random(seed)`` rather than by hypothesis. Why: on
this 2-core machine hypothesis' engine costs ~2.5 ms per example (generation and
bookkeeping) against ~0.11 ms for the seeded generator, so a million examples take minutes
instead of most of an hour, memory stays flat, and the seed alone reproduces a run exactly
(``--seed S --examples N``). What hypothesis adds, shrinking to the smallest failing input,
is the test's job: a failure here is printed with its topic and payload and belongs in the
test as an ``@example``.

Every message is decoded by :func:`~firewatch.ingest.codec.decode` and twice by one
:class:`~firewatch.ingest.codec.Decoder` (the second from its topic cache), at one fixed
server time, and checked by :func:`~firewatch.lab.decode_cases.check`. The result: examples
run, failures (must be 0, with the first few examples), outcomes by dead-letter reason and
row kind, how the messages were made, time spent generating and decoding, examples/s, the
limits, the machine, the date and the command.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import psutil

from firewatch.core.settings import Settings
from firewatch.ingest.codec import Limits
from firewatch.lab.decode_cases import (
    REFERENCE_TIME,
    World,
    decode_both,
    demo_devices,
    outcome_label,
    random_messages,
)

#: Failing examples kept in the result (all are counted).
KEEP_FAILURES = 20


def run_decoder_fuzz(settings: Settings, examples: int, seed: int) -> dict[str, Any]:
    """Decode ``examples`` generated messages (``seed``) with the configured limits and
    topic root against the demo city's registry; the result document (module docstring)."""
    if examples < 1:
        raise ValueError("examples must be at least 1")
    world = World(
        demo_devices(), REFERENCE_TIME, Limits.from_settings(settings), settings.topic_root
    )
    decoder = world.decoder()
    generate = random_messages(seed, world)
    outcomes: Counter[str] = Counter()
    cases: Counter[str] = Counter()
    checked = 0  # examples whose outcome was certain in advance, and so checked exactly
    failures = 0
    kept: list[dict[str, Any]] = []
    gen_s = dec_s = 0.0
    clock = time.perf_counter
    started = clock()
    for i in range(examples):
        t0 = clock()
        msg = generate()
        t1 = clock()
        out, problems = decode_both(msg, world, decoder)
        dec_s += clock() - t1
        gen_s += t1 - t0
        outcomes[outcome_label(out) if out is not None else "raised"] += 1
        cases[msg.case] += 1
        checked += msg.expect is not None
        if problems:
            failures += 1
            if len(kept) < KEEP_FAILURES:
                kept.append(
                    {
                        "index": i,
                        "case": msg.case,
                        "expect": msg.expect,
                        "topic": msg.topic,
                        "payload": repr(msg.payload[:2000]),
                        "problems": problems,
                    }
                )
    wall = clock() - started
    limits = world.limits
    return {
        "benchmark": "decoders",
        "command": f"firewatch bench decoders --examples {examples} --seed {seed}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "examples": examples,
            "seed": seed,
            "generator": "firewatch.lab.decode_cases.random_messages (random.Random)",
            "received_at": world.received_at.isoformat(),
            "topic_root": world.root,
            "registered_devices": len(world.devices),
            "limits": {
                "max_payload_bytes": limits.max_payload_bytes,
                "max_future_s": limits.max_future.total_seconds(),
                "max_age_s": limits.max_age.total_seconds(),
                "max_will_age_s": limits.max_will_age.total_seconds(),
            },
        },
        "examples": examples,
        "failures": failures,
        "failure_examples": kept,
        "outcome_certain_and_checked": checked,
        "rows": sum(n for k, n in outcomes.items() if k.startswith("row:")),
        "dead_letters": sum(n for k, n in outcomes.items() if k.startswith("dead:")),
        "outcomes": dict(sorted(outcomes.items())),
        "topic_modes": _totals(cases, 0),
        "payload_modes": _totals(cases, 1),
        "seconds": round(wall, 2),
        "generate_seconds": round(gen_s, 2),
        "decode_and_check_seconds": round(dec_s, 2),
        "examples_per_s": round(examples / wall, 1),
        "decodes_per_s": round(3 * examples / dec_s, 1) if dec_s else None,
    }


def _totals(cases: Counter[str], part: int) -> dict[str, int]:
    out: Counter[str] = Counter()
    for case, n in cases.items():
        out[case.split("/", 1)[part]] += n
    return dict(sorted(out.items()))


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU and Python of this machine (the run uses one core)."""
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def format_result(r: dict[str, Any]) -> str:
    """The result as a few lines for the terminal."""
    m, c = r["machine"], r["config"]
    lines = [
        f"decoders: {r['examples']:,} examples (seed {c['seed']}), {r['failures']} failures, "
        f"{r['seconds']:.1f} s, {r['examples_per_s']:,.0f} examples/s "
        f"(generate {r['generate_seconds']:.1f} s, decode x3 + check "
        f"{r['decode_and_check_seconds']:.1f} s)",
        f"  rows {r['rows']:,}, dead letters {r['dead_letters']:,}; outcome certain in advance "
        f"and checked exactly: {r['outcome_certain_and_checked']:,}",
    ]
    for label, n in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {label:<28} {n:>10,}")
    for f in r["failure_examples"]:
        lines.append(f"  FAILED #{f['index']} {f['case']} {f['topic']!r} {f['payload']}")
        lines += [f"      {p}" for p in f["problems"]]
    lines.append(f"  machine: {m['cores']} cores, {m['ram_gib']} GiB, Python {m['python']}")
    return "\n".join(lines)

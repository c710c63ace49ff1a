"""Verifying a draw from its published document alone (firewatch/core/draw_verify.py): a
correct document verifies; any tampering with the inputs, the seed or the result is found;
a draw not revealed yet verifies only as far as it can, and says so."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from firewatch.core.draw import (
    PPM,
    Candidate,
    DrawConfig,
    DrawInputs,
    canonical_json,
    commitment,
    run_draw,
)
from firewatch.core.draw_verify import verify_document

SEED = hashlib.sha256(b"verify").digest()
RATES = {"red": 500_000, "orange": 250_000, "yellow": 100_000, "blue": 50_000}


def inputs() -> DrawInputs:
    units = [Candidate(f"U-{i:02d}", ("red", "orange", "yellow", "blue")[i % 4]) for i in range(20)]
    units.append(Candidate("U-FOCUS", "red", focus=True))
    codes = tuple(f"I-{j}" for j in range(1, 7))
    return DrawInputs(
        "2026-Q1",
        tuple(units),
        codes,
        frozenset({("I-1", "U-FOCUS"), ("I-2", "U-00")}),
        DrawConfig(RATES, {"blacklisted": PPM}),
    )


def document(seed: bytes | None = SEED) -> dict[str, Any]:
    a = inputs()
    doc: dict[str, Any] = {
        "id": 7,
        "period": a.period,
        "inputs": json.loads(a.canonical()),
        "inputs_hash": a.digest(),
        "seed_commitment": commitment(SEED),
        "seed": None,
        "result": None,
    }
    if seed is not None:
        doc["seed"] = seed.hex()
        doc["result"] = run_draw(a, seed).to_json()
    over_http: dict[str, Any] = json.loads(json.dumps(doc))  # as it arrives over HTTP
    return over_http


def test_a_published_draw_verifies() -> None:
    report = verify_document(document())
    assert report.ok
    assert report.complete
    assert [c.name for c in report.checks] == ["inputs hash", "seed commitment", "result"]
    assert report.lines()[-1].endswith("the published result is the draw of the published inputs")
    assert report.to_json()["ok"] is True


def test_a_committed_draw_verifies_its_hash_only() -> None:
    report = verify_document(document(seed=None))
    assert report.ok
    assert not report.complete
    assert [c.name for c in report.checks] == ["inputs hash"]
    assert "incomplete" in report.lines()[-1]


def test_changed_inputs_are_found() -> None:
    doc = document()
    doc["inputs"]["units"][0]["level"] = "blue"
    report = verify_document(doc)
    assert not report.ok
    assert report.checks[0].name == "inputs hash"
    assert not report.checks[0].ok


def test_another_seed_is_found() -> None:
    doc = document(seed=hashlib.sha256(b"another").digest())
    report = verify_document(doc)
    assert not report.ok
    assert report.complete
    assert [(c.name, c.ok) for c in report.checks] == [
        ("inputs hash", True),
        ("seed commitment", False),
    ]


def test_a_changed_result_is_found_and_named() -> None:
    doc = document()
    unit = doc["result"]["units"][0]
    unit["inspectors"] = list(reversed(unit["inspectors"]))
    report = verify_document(doc)
    assert not report.ok
    assert not report.checks[-1].ok
    assert unit["id"] in report.checks[-1].detail
    dropped = document()
    gone = dropped["result"]["units"].pop()
    report = verify_document(dropped)
    assert f"unit {gone['id']} is drawn but not published" in report.checks[-1].detail


def test_an_extra_field_in_the_inputs_is_refused() -> None:
    doc = document()
    doc["inputs"]["note"] = "added later"
    report = verify_document(doc)
    assert not report.ok


def test_garbage_is_a_failed_check_not_a_crash() -> None:
    for doc in [{}, {"inputs": [1, 2]}, {"inputs": document()["inputs"], "inputs_hash": 5}]:
        assert not verify_document(doc).ok
    doc = document()
    doc["seed"] = "not hex"
    assert not verify_document(doc).ok
    doc = document()
    doc["result"] = "nothing"
    assert not verify_document(doc).ok


def test_a_citizen_can_recompute_the_units_from_the_docs_alone() -> None:
    """The unit rule written out from docs/supervision.md with nothing but hashlib and
    json: the same units as the reference implementation."""
    doc = document()
    seed = bytes.fromhex(doc["seed"])
    h = hashlib.sha256(
        json.dumps(
            doc["inputs"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    ).hexdigest()
    assert h == doc["inputs_hash"]
    cfg = doc["inputs"]["config"]
    mine = []
    for u in sorted(doc["inputs"]["units"], key=lambda u: u["id"]):
        if (
            u["focus"]
            and u["level"] == "red"
            and (u["draws_since_drawn"] is None or u["draws_since_drawn"] >= cfg["focus_every"] - 1)
        ):
            mine.append(u["id"])
            continue
        p = max(cfg["level_rates_ppm"][u["level"]], cfg["credit_rates_ppm"].get(u["credit"], 0))
        label = json.dumps(["include", u["id"]], separators=(",", ":"), ensure_ascii=False)
        mac = hmac.new(seed, (h + label).encode(), hashlib.sha256).digest()
        if int.from_bytes(mac[:8], "big") * 1_000_000 < p * 2**64:
            mine.append(u["id"])
    assert mine == [u["id"] for u in doc["result"]["units"]]
    assert "U-FOCUS" in mine


def test_a_cancelled_draw_without_assignment_verifies_its_reason() -> None:
    a = DrawInputs(
        "2026-Q2",
        (Candidate("U-A", "red", credit="blacklisted"),),
        ("I-1", "I-2"),
        frozenset({("I-1", "U-A")}),
        DrawConfig(RATES, {"blacklisted": PPM}),
    )
    from firewatch.core.draw import NoAssignment

    try:
        run_draw(a, SEED)
    except NoAssignment as err:
        reason = str(err)
    doc = {
        "inputs": json.loads(a.canonical()),
        "inputs_hash": a.digest(),
        "seed_commitment": commitment(SEED),
        "seed": SEED.hex(),
        "result": {
            "algorithm": "firewatch-draw/1",
            "error": reason,
            "seed": SEED.hex(),
            "inputs_hash": a.digest(),
        },
    }
    assert verify_document(doc).ok
    doc["result"]["error"] = "something else"
    assert not verify_document(doc).ok
    assert canonical_json(doc["inputs"]) == a.canonical()

"""The draw as specified (firewatch/core/draw.py, docs/supervision.md "The draw, exactly"):
reproducible from its inputs and seed, independent of list order, with the inclusion
probabilities the configuration gives, and an inspector assignment that never breaks a tie
nor the load bound, failing (naming the unit) only when no assignment exists."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
from collections import Counter, deque

import pytest

from firewatch.core.draw import (
    LEVELS,
    PPM,
    Candidate,
    DrawConfig,
    DrawInputError,
    DrawInputs,
    NoAssignment,
    canonical_json,
    commitment,
    focus_due,
    load_bound,
    parse_seed,
    ppm,
    run_draw,
    uniform64,
    violations,
)

RATES = {"red": 500_000, "orange": 250_000, "yellow": 100_000, "blue": 50_000}
CONFIG = DrawConfig(RATES, {"watch": 500_000, "blacklisted": PPM})
SEED = bytes(range(32))


def inputs(
    units: list[Candidate],
    inspectors: int = 6,
    exclusions: set[tuple[str, str]] | None = None,
    config: DrawConfig = CONFIG,
) -> DrawInputs:
    codes = tuple(f"I-{j:02d}" for j in range(1, inspectors + 1))
    return DrawInputs("2026-Q1", tuple(units), codes, frozenset(exclusions or set()), config)


def city(n: int = 40) -> list[Candidate]:
    return [Candidate(f"U-{i:03d}", LEVELS[i % 4]) for i in range(n)]


def seed(i: int) -> bytes:
    return hashlib.sha256(f"test-seed-{i}".encode()).digest()


# -- the specification's primitives --------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["许昌", True, None]}) == (
        '{"a":["许昌",true,null],"b":1}'.encode()
    )


def test_uniform64_is_the_documented_hmac() -> None:
    h = "ab" * 32
    label = ["include", "U-WD-001"]
    message = (h + json.dumps(label, separators=(",", ":"), ensure_ascii=False)).encode()
    mac = hmac.new(SEED, message, hashlib.sha256).digest()
    assert uniform64(SEED, h, label) == int.from_bytes(mac[:8], "big")
    # the test vector docs/supervision.md gives, so another implementation can check itself
    assert uniform64(SEED, h, label) == 5768405127200584957


def test_label_encoding_matches_json_for_awkward_ids() -> None:
    h = "00" * 32
    for unit in ['quote"d', "back\\slash", "line\nbreak", "\x01", "许昌-001", "a|b"]:
        message = h.encode() + canonical_json(["include", unit])
        expected = int.from_bytes(hmac.new(SEED, message, hashlib.sha256).digest()[:8], "big")
        assert uniform64(SEED, h, ["include", unit]) == expected, unit


def test_commitment_and_seed_parsing() -> None:
    assert commitment(SEED) == hashlib.sha256(SEED).hexdigest()
    assert parse_seed(SEED.hex()) == SEED
    for bad in ["", "zz" * 32, SEED.hex()[:-2], SEED.hex().upper(), 5]:
        with pytest.raises(DrawInputError):
            parse_seed(bad)


def test_ppm_and_load_bound() -> None:
    assert ppm(0.25) == 250_000
    assert ppm(1.0) == PPM
    with pytest.raises(DrawInputError):
        ppm(1.5)
    assert load_bound(0, 5, 2, 1) == 0
    assert load_bound(10, 6, 2, 1) == 5  # ceil(20 / 6) + 1
    assert load_bound(9, 6, 2, 0) == 3


# -- inputs ------------------------------------------------------------------------------------


def test_inputs_hash_does_not_depend_on_list_order() -> None:
    units = city(12)
    a = inputs(units)
    b = DrawInputs(
        a.period, tuple(reversed(units)), tuple(reversed(a.inspectors)), a.exclusions, a.config
    )
    assert a.canonical() == b.canonical()
    assert a.digest() == b.digest() == hashlib.sha256(a.canonical()).hexdigest()
    assert run_draw(a, SEED).to_json() == run_draw(b, SEED).to_json()


def test_inputs_round_trip_through_their_json() -> None:
    a = inputs(city(5), exclusions={("I-01", "U-001")})
    back = DrawInputs.from_json(json.loads(a.canonical()))
    assert back.digest() == a.digest()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(algorithm="other/9"), "implements only"),
        (lambda d: d["units"][0].update(level="purple"), "unknown level"),
        (lambda d: d["units"][0].update(focus="yes"), "true or false"),
        (lambda d: d["config"].update(focus_every=0), "at least 1"),
        (lambda d: d["config"]["level_rates_ppm"].update(red=2 * PPM), "rate of red"),
        (lambda d: d.update(period="2026 Q1"), "period"),
        (lambda d: d.pop("inspectors"), "not a draw's inputs"),
        (lambda d: d["units"].append(d["units"][0]), "appears twice"),
    ],
)
def test_malformed_inputs_are_refused_with_what_is_wrong(change: object, message: str) -> None:
    doc = json.loads(inputs(city(3)).canonical())
    change(doc)  # type: ignore[operator]
    with pytest.raises(DrawInputError, match=message):
        DrawInputs.from_json(doc)


# -- units ---------------------------------------------------------------------------------------


def test_same_inputs_and_seed_give_the_same_draw() -> None:
    a = inputs(city(), exclusions={("I-01", "U-002"), ("I-03", "U-010")})
    first = run_draw(a, SEED)
    assert canonical_json(first.to_json()) == canonical_json(run_draw(a, SEED).to_json())
    assert run_draw(a, seed(1)).to_json() != first.to_json()  # another seed, another draw
    assert first.to_json()["seed"] == SEED.hex()
    assert first.inputs_hash == a.digest()


def test_a_units_inclusion_does_not_depend_on_the_other_units() -> None:
    units = city(30)
    small = inputs(units)
    large = inputs([*units, *(Candidate(f"V-{i}", "red") for i in range(30))])
    assert small.digest() != large.digest()
    # inclusion is keyed by the inputs hash, so compare with the hash fixed
    from firewatch.core.draw import Uniform, sample_units

    h = "cd" * 32
    a = {u for u, _, _ in sample_units(small, Uniform(SEED, h))}
    b = {u for u, _, _ in sample_units(large, Uniform(SEED, h)) if u.startswith("U-")}
    assert a == b


def test_focus_red_units_are_drawn_at_their_frequency() -> None:
    every3 = DrawConfig(RATES, {}, focus_every=3)
    due = Candidate("U-A", "red", focus=True, draws_since_drawn=2)
    not_due = Candidate("U-B", "red", focus=True, draws_since_drawn=1)
    never = Candidate("U-C", "red", focus=True)
    orange = Candidate("U-D", "orange", focus=True)  # the focus rule is for red units
    assert focus_due(due, every3)
    assert focus_due(never, every3)
    assert not focus_due(not_due, every3)
    assert not focus_due(orange, every3)
    assert focus_due(Candidate("U-E", "red", focus=True, draws_since_drawn=0), CONFIG)
    always = inputs([due, never], config=every3)
    for i in range(20):
        drawn = {u.unit_id: u.reason for u in run_draw(always, seed(i)).units}
        assert drawn == {"U-A": "focus", "U-C": "focus"}


def test_rates_zero_and_one_are_exact_and_credit_raises_the_rate() -> None:
    config = DrawConfig({**RATES, "blue": 0}, {"blacklisted": PPM, "watch": 0})
    units = [
        Candidate("U-BLUE", "blue"),
        Candidate("U-BLACK", "blue", credit="blacklisted"),
        Candidate("U-WATCH", "blue", credit="watch"),  # max(0, 0): never
    ]
    for i in range(50):
        drawn = [
            (u.unit_id, u.rate_ppm) for u in run_draw(inputs(units, config=config), seed(i)).units
        ]
        assert drawn == [("U-BLACK", PPM)]


def test_inclusion_rates_match_the_configured_weights() -> None:
    """A statistical check: 1,500 draws of 40 units, each level's empirical rate within
    4.5 standard errors of its configured probability (a false alarm about once in 10^5
    runs); the bench does 10,000 draws (benchmarks/supervision/)."""
    a = inputs(city(40), inspectors=12)
    h = a.digest()
    counts: Counter[str] = Counter()
    n = 1500
    for i in range(n):
        for u in run_draw(a, seed(i), inputs_hash=h).units:
            counts[u.unit_id] += 1
    for level in LEVELS:
        members = [c.unit_id for c in a.units if c.level == level]
        p = RATES[level] / PPM
        trials = len(members) * n
        rate = sum(counts[u] for u in members) / trials
        z = (rate - p) / math.sqrt(p * (1 - p) / trials)
        assert abs(z) < 4.5, (level, rate, p, z)


# -- inspectors ----------------------------------------------------------------------------------


def feasible(
    units: list[str], codes: list[str], excluded: set[tuple[str, str]], k: int, bound: int
) -> bool:
    """An independent check (Edmonds-Karp max flow): does an assignment of k distinct,
    non-excluded inspectors per unit with loads <= bound exist?"""
    nodes = ["s", *units, *codes, "t"]
    cap: dict[tuple[str, str], int] = {}
    adj: dict[str, set[str]] = {v: set() for v in nodes}

    def edge(a: str, b: str, c: int) -> None:
        cap[(a, b)] = cap.get((a, b), 0) + c
        cap.setdefault((b, a), 0)
        adj[a].add(b)
        adj[b].add(a)

    for u in units:
        edge("s", u, k)
        for j in codes:
            if (j, u) not in excluded:
                edge(u, j, 1)
    for j in codes:
        edge(j, "t", bound)
    flow = 0
    while True:
        parent: dict[str, str] = {"s": "s"}
        queue = deque(["s"])
        while queue and "t" not in parent:
            x = queue.popleft()
            for y in adj[x]:
                if y not in parent and cap[(x, y)] > 0:
                    parent[y] = x
                    queue.append(y)
        if "t" not in parent:
            return flow == k * len(units)
        y = "t"
        while y != "s":
            x = parent[y]
            cap[(x, y)] -= 1
            cap[(y, x)] += 1
            y = x
        flow += 1


def test_no_draw_ever_breaks_a_tie_or_the_load_bound_and_fails_only_when_it_must() -> None:
    """400 random cities with many ties and tight loads: every result has no violation, and
    every NoAssignment is confirmed by an independent max-flow (no assignment exists)."""
    rng = random.Random(11)
    failures = 0
    for trial in range(400):
        n_units = rng.randint(1, 25)
        m = rng.randint(2, 8)
        units = [Candidate(f"U-{i:02d}", "red", credit="blacklisted") for i in range(n_units)]
        codes = [f"I-{j:02d}" for j in range(1, m + 1)]
        density = rng.choice([0.0, 0.2, 0.4, 0.6])
        excluded = {(j, u.unit_id) for u in units for j in codes if rng.random() < density}
        slack = rng.choice([0, 1])
        a = inputs(units, m, excluded, DrawConfig(RATES, {"blacklisted": PPM}, load_slack=slack))
        ids = [u.unit_id for u in units]  # all are drawn (rate 1)
        bound = load_bound(len(ids), m, 2, slack)
        if not feasible(ids, codes, excluded, 2, bound):
            failures += 1
            with pytest.raises(NoAssignment) as err:
                run_draw(a, seed(trial))
            assert err.value.unit_id in ids
            assert err.value.unit_id in str(err.value)
            continue
        result = run_draw(a, seed(trial))  # raises if it fails where an assignment exists
        assert violations(a, result) == [], trial
        assert {u.unit_id for u in result.units} == set(ids)
    assert 10 < failures < 390  # both outcomes were exercised


def test_the_assignment_is_balanced_and_pairs_vary() -> None:
    a = inputs([Candidate(f"U-{i:02d}", "red", credit="blacklisted") for i in range(30)], 6)
    pairs: Counter[frozenset[str]] = Counter()
    for i in range(30):
        result = run_draw(a, seed(i))
        loads = Counter(j for u in result.units for j in u.inspectors)
        assert max(loads.values()) - min(loads.values()) <= 1  # 60 slots over 6: 10 each
        pairs.update(frozenset(u.inspectors) for u in result.units)
    assert len(pairs) == 15  # every pair of the 6 inspectors occurs: no fixed teams


def test_a_unit_without_enough_untied_inspectors_is_named() -> None:
    units = [
        Candidate("U-OK", "red", credit="blacklisted"),
        Candidate("U-TIED", "red", credit="blacklisted"),
    ]
    excluded = {(f"I-{j:02d}", "U-TIED") for j in range(1, 6)}  # only I-06 is free
    with pytest.raises(NoAssignment, match="unit U-TIED has 1 inspectors without a tie") as err:
        run_draw(inputs(units, 6, excluded), SEED)
    assert err.value.unit_id == "U-TIED"


def test_too_few_inspectors_for_one_inspection() -> None:
    with pytest.raises(NoAssignment, match="1 inspectors cannot"):
        run_draw(inputs([Candidate("U-A", "red", credit="blacklisted")], 1), SEED)


def test_nothing_drawn_is_a_valid_draw() -> None:
    config = DrawConfig(dict.fromkeys(LEVELS, 0))
    result = run_draw(inputs(city(5), config=config), SEED)
    assert result.units == ()
    assert result.load_bound == 0
    assert violations(inputs(city(5), config=config), result) == []


def test_violations_finds_what_is_wrong() -> None:
    a = inputs([Candidate("U-A", "red", credit="blacklisted")], 3, {("I-01", "U-A")})
    good = run_draw(a, SEED)
    assert violations(a, good) == []
    from dataclasses import replace

    bad_unit = replace(good.units[0], inspectors=("I-01", "I-01"))
    problems = violations(a, replace(good, units=(bad_unit,), load_bound=1))
    assert any("tie" in p for p in problems)
    assert any("not 2 distinct" in p for p in problems)
    assert any("above the bound" in p for p in problems)


def test_the_worked_example_in_the_docs() -> None:
    """docs/supervision.md ("A worked example") shows these inputs, values and result; if
    this test changes, the docs change with it."""
    units = (
        Candidate("U-A", "red", focus=True),
        Candidate("U-B", "orange"),
        Candidate("U-C", "blue", credit="blacklisted"),
        Candidate("U-D", "yellow"),
    )
    a = DrawInputs("2026-Q1", units, ("I-1", "I-2", "I-3"), frozenset({("I-1", "U-C")}), CONFIG)
    h = "d2c7976b13f90e40ab3a55fcca637067fd5d09b5e4424a774694efc5d9cbf606"
    assert a.digest() == h
    assert commitment(SEED) == "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
    assert uniform64(SEED, h, ["include", "U-B"]) == 18179468107007236524
    assert uniform64(SEED, h, ["include", "U-C"]) == 908864249459401113
    assert uniform64(SEED, h, ["include", "U-D"]) == 1603072693231128872
    assert canonical_json(run_draw(a, SEED).to_json()).decode() == (
        '{"algorithm":"firewatch-draw/1","inputs_hash":"' + h + '","load_bound":3,'
        '"seed":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",'
        '"units":[{"id":"U-A","inspectors":["I-1","I-2"],"rate_ppm":1000000,"reason":"focus"},'
        '{"id":"U-C","inspectors":["I-3","I-2"],"rate_ppm":1000000,"reason":"sampled"},'
        '{"id":"U-D","inspectors":["I-3","I-2"],"rate_ppm":100000,"reason":"sampled"}]}'
    )

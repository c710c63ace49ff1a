"""The risk model file (firewatch.core.risk_config): the shipped model loads and is packaged;
bad files are refused with a message naming the file, the key and the problem."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from firewatch.core.risk_config import (
    DEFAULT_RISK_MODEL,
    FORCED_CONDITIONS,
    INDICATOR_SPECS,
    INDICATORS,
    Kind,
    RiskConfigError,
    Source,
    load_risk_config,
    parse_risk_config,
)
from firewatch.core.risk_inputs import VALUE_OF
from firewatch.core.risk_levels import Level
from firewatch.core.settings import Settings

SHIPPED = DEFAULT_RISK_MODEL.read_text(encoding="utf-8")
ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_model_loads_complete() -> None:
    cfg = load_risk_config()
    assert cfg.version == "risk-v1"
    assert [i.name for i in cfg.indicators] == [s.name for s in INDICATORS]
    assert round(sum(i.weight for i in cfg.indicators), 6) == 100
    assert [f.name for f in cfg.forced] == list(FORCED_CONDITIONS)
    assert all(f.enabled and f.level is Level.RED for f in cfg.forced)
    assert cfg.cutoffs.yellow < cfg.cutoffs.orange < cfg.cutoffs.red
    assert cfg.lookback_days == 365
    assert cfg.source == str(DEFAULT_RISK_MODEL)


def test_every_indicator_has_a_value_rule_and_the_right_keys() -> None:
    assert set(VALUE_OF) == set(INDICATOR_SPECS)
    for ind in load_risk_config().indicators:
        assert (ind.window_days is not None) == (ind.spec.source is Source.ROLLUPS)
        assert (ind.values is not None) == (ind.spec.kind is Kind.CATEGORY)


def test_settings_point_at_the_shipped_model_and_the_package_ships_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings().risk_model == DEFAULT_RISK_MODEL
    other = tmp_path / "m.toml"
    monkeypatch.setenv("FIREWATCH_RISK_MODEL", str(other))
    assert Settings().risk_model == other
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["firewatch"]
    assert "core/*.toml" in package_data
    assert DEFAULT_RISK_MODEL.parent == ROOT / "firewatch" / "core"


def _edit(old: str, new: str, text: str = SHIPPED) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


_WEIGHT_FIRES = "[indicators.confirmed_fires]\nweight = 6\n"
_BAD_FILES = [
    pytest.param(
        _edit(_WEIGHT_FIRES, "[indicators.confirmed_fires]\nweight = 7\n"),
        "indicators: weights must sum to 100, they sum to 101",
        id="weights-sum",
    ),
    pytest.param(
        _edit(_WEIGHT_FIRES, "[indicators.confirmed_fires]\nweight = 0\n"),
        "indicators.confirmed_fires.weight: must be above 0",
        id="weight-zero",
    ),
    pytest.param(
        _edit(_WEIGHT_FIRES, "[indicators.confirmed_fires]\nweight = -6\n"),
        "indicators.confirmed_fires.weight: must be above 0",
        id="weight-negative",
    ),
    pytest.param(
        _edit(_WEIGHT_FIRES, "[indicators.confirmed_fires]\nweight = 5.999\n"),
        "indicators.confirmed_fires.weight: at most two decimals",
        id="weight-decimals",
    ),
    pytest.param(
        _edit(_WEIGHT_FIRES, "[indicators.confirmed_fires]\nweight = true\n"),
        "indicators.confirmed_fires.weight: must be a number",
        id="weight-bool",
    ),
    pytest.param(
        _edit(_WEIGHT_FIRES, '[indicators.confirmed_fires]\nweight = "6"\n'),
        "indicators.confirmed_fires.weight: must be a number",
        id="weight-string",
    ),
    pytest.param(
        SHIPPED + "\n[indicators.smoking]\nweight = 1\n",
        "indicators: unknown key(s) smoking",
        id="unknown-indicator",
    ),
    pytest.param(
        _edit("[indicators.faults]\nweight = 2\n", "[indicators.faults]\nweight = 2\nwieght = 3\n"),
        "indicators.faults: unknown key(s) wieght",
        id="unknown-key-in-indicator",
    ),
    pytest.param(
        SHIPPED.replace("[indicators.anomalies]", "[ignored.anomalies]"),
        "top level: unknown key(s) ignored",
        id="unknown-top-level",
    ),
    pytest.param(
        re.sub(r"\[indicators\.faults\]\n(.+\n)+?\n", "", SHIPPED),
        "indicators: missing key(s) faults",
        id="missing-indicator",
    ),
    pytest.param(
        _edit("red = 40.0", "red = 20.0"),
        "levels: cut-offs must satisfy 0 < yellow < orange < red <= 100",
        id="cutoffs-order",
    ),
    pytest.param(
        _edit("yellow = 10.0", "yellow = 0"),
        "levels: cut-offs must satisfy",
        id="cutoff-zero",
    ),
    pytest.param(
        _edit("red = 40.0\n", ""),
        "levels: missing key(s) red",
        id="cutoff-missing",
    ),
    pytest.param(
        _edit(
            "[indicators.faults]\nweight = 2\nwindow_days = 90\nzero_at = 0.5\nfull_at = 6",
            "[indicators.faults]\nweight = 2\nwindow_days = 90\nzero_at = 6\nfull_at = 6",
        ),
        "indicators.faults: full_at (6) must be above zero_at (6)",
        id="ramp-flat",
    ),
    pytest.param(
        _edit(
            "[indicators.faults]\nweight = 2\nwindow_days = 90\nzero_at = 0.5",
            "[indicators.faults]\nweight = 2\nwindow_days = 90\nzero_at = -1",
        ),
        "indicators.faults.zero_at: must be 0 or more",
        id="ramp-negative",
    ),
    pytest.param(
        _edit(
            "[indicators.faults]\nweight = 2\nwindow_days = 90\n",
            "[indicators.faults]\nweight = 2\n",
        ),
        "indicators.faults: missing key(s) window_days",
        id="rollup-without-window",
    ),
    pytest.param(
        _edit(
            "[indicators.faults]\nweight = 2\nwindow_days = 90\n",
            "[indicators.faults]\nweight = 2\nwindow_days = 0\n",
        ),
        "indicators.faults.window_days: must be a whole number 1..730",
        id="window-zero",
    ),
    pytest.param(
        _edit("[indicators.open_faults]\n", "[indicators.open_faults]\nwindow_days = 30\n"),
        "indicators.open_faults: unknown key(s) window_days",
        id="state-with-window",
    ),
    pytest.param(
        _edit(
            "good = 0.0, watch = 0.5, blacklisted = 1.0",
            "good = 0.0, watch = 0.5, blacklisted = 1.5",
        ),
        "indicators.credit.values.blacklisted: must be between 0 and 1",
        id="category-share",
    ),
    pytest.param(
        _edit("good = 0.0, watch = 0.5, blacklisted = 1.0", "good = 0.0, blacklisted = 1.0"),
        "indicators.credit.values: missing key(s) watch",
        id="category-missing",
    ),
    pytest.param(
        _edit(
            "high_risk = 1.0, key = 0.5, ordinary = 0.0",
            "high_risk = 1.0, key = 0.5, general = 0.0",
        ),
        "indicators.supervision_class.values: unknown key(s) general",
        id="category-unknown",
    ),
    pytest.param(
        _edit(
            "critical = 4, high = 2, medium = 1, low = 0.25", "critical = 4, high = 2, medium = 1"
        ),
        "indicators.anomalies.severity_weights: missing key(s) low",
        id="severity-missing",
    ),
    pytest.param(
        _edit('[forced.blacklisted]\nlevel = "red"', '[forced.blacklisted]\nlevel = "crimson"'),
        "forced.blacklisted.level: must be one of blue, yellow, orange, red, got 'crimson'",
        id="forced-level",
    ),
    pytest.param(
        _edit(
            '[forced.alarm_system_offline]\nlevel = "red"\nhours = 24',
            '[forced.alarm_system_offline]\nlevel = "red"\nhours = 0',
        ),
        "forced.alarm_system_offline.hours: must be above 0",
        id="forced-limit-zero",
    ),
    pytest.param(
        _edit("share_pct = 20", "share_pct = 120"),
        "forced.alarm_system_isolated.share_pct: must be at most 100",
        id="forced-share",
    ),
    pytest.param(
        _edit(
            '[forced.blacklisted]\nlevel = "red"',
            '[forced.blacklisted]\nlevel = "red"\nenabled = "yes"',
        ),
        "forced.blacklisted.enabled: must be true or false",
        id="forced-enabled",
    ),
    pytest.param(
        _edit('[forced.blacklisted]\nlevel = "red"\n', ""),
        "forced: missing key(s) blacklisted",
        id="forced-missing",
    ),
    pytest.param(
        _edit(
            '[forced.water_pressure_low]\nlevel = "red"\nhours = 24\n',
            '[forced.water_pressure_low]\nlevel = "red"\n',
        ),
        "forced.water_pressure_low: missing key(s) hours",
        id="forced-limit-missing",
    ),
    pytest.param(
        _edit('version = "risk-v1"', 'version = ""'),
        "version: must be a non-empty string",
        id="version-empty",
    ),
    pytest.param(SHIPPED + "\n[levels\n", "not valid TOML", id="toml"),
]


@pytest.mark.parametrize(("text", "message"), _BAD_FILES)
def test_bad_files_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(RiskConfigError) as err:
        parse_risk_config(text, source="bad.toml")
    assert str(err.value).startswith("risk model bad.toml: ")
    assert message in str(err.value)


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(
        RiskConfigError, match=rf"risk model {re.escape(str(missing))}: cannot read"
    ):
        load_risk_config(missing)


def test_an_edited_copy_with_a_new_version_loads(tmp_path: Path) -> None:
    text = _edit('version = "risk-v1"', 'version = "risk-v1.1"')
    text = _edit(_WEIGHT_FIRES, "[indicators.confirmed_fires]\nweight = 5.5\n", text)
    text = _edit("[indicators.faults]\nweight = 2\n", "[indicators.faults]\nweight = 2.5\n", text)
    text = _edit(
        '[forced.blacklisted]\nlevel = "red"',
        '[forced.blacklisted]\nlevel = "orange"\nenabled = false',
        text,
    )
    path = tmp_path / "risk_model_v1_1.toml"
    path.write_text(text)
    cfg = load_risk_config(path)
    assert cfg.version == "risk-v1.1"
    assert cfg.indicator("confirmed_fires").weight == 5.5
    blacklisted = cfg.forced[-1]
    assert (blacklisted.enabled, blacklisted.level) == (False, Level.ORANGE)

"""The public labelled series: a real ``pip download`` from the configured registry into a
temporary cache (once per session), checksums, parsed shapes and labels, refusals.

Only the files are read here: no scorer runs on any series (held-out ones included)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firewatch.lab.public_series import (
    CATALOGUE,
    NILE_SHIFT_YEARS,
    PublicDataError,
    PublicFile,
    default_cache_dir,
    fetch_file,
    load_public_series,
)
from firewatch.lab.score_eval import select_series
from firewatch.lab.score_metrics import LabelledSeries
from firewatch.lab.tcpd_series import (
    RIVER_VERSION,
    TCPD_SERIES,
    TcpdFormatError,
    consensus_change_points,
    read_annotations,
)


def _module_entry(name: str) -> PublicFile:
    """The catalogue entry of a TCPD series, pointed at its annotations module."""
    entry = next(e for e in CATALOGUE if e.name == name)
    assert entry.tcpd is not None
    return replace(entry, path=entry.tcpd.module_path, sha256=entry.tcpd.module_sha256)


@pytest.fixture(scope="session")
def public_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache filled by a real download of every catalogued wheel (pip, the registry)."""
    cache = tmp_path_factory.mktemp("public-series")
    for entry in CATALOGUE:
        fetch_file(entry, cache)
        if entry.tcpd is not None:  # the river module holding the annotations
            fetch_file(_module_entry(entry.name), cache)
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def public_all(public_cache: Path) -> dict[str, LabelledSeries]:
    return {s.name: s for s in load_public_series("all", public_cache)}


def test_every_file_is_fetched_from_a_wheel_and_matches_its_checksum(public_cache: Path) -> None:
    wheels = sorted(p.name for p in (public_cache / "wheels").glob("*.whl"))
    assert any(w.startswith("aeon-1.6.0-") for w in wheels)
    assert any(w.startswith("statsmodels-0.15.0-") for w in wheels)
    assert any(w.startswith(f"river-{RIVER_VERSION}-") for w in wheels)
    for entry in CATALOGUE:
        path = fetch_file(entry, public_cache)  # the cached copy, re-verified
        assert path.is_file()
        assert path.name == Path(entry.path).name


def test_the_catalogue_fixes_a_split_and_provenance_for_every_file() -> None:
    names = [e.name for e in CATALOGUE]
    assert len(names) == len(set(names))
    for e in CATALOGUE:
        assert e.split in ("tune", "held-out")
        assert len(e.sha256) == 64
        assert e.source
        assert e.citation
        assert e.licence
        assert e.values
        assert e.labels
    held_out = {e.name for e in CATALOGUE if e.split == "held-out"}
    assert {"ecg-diff-count-3-test", "daphnet-s06r02e0", "nile"} <= held_out


def test_nile_has_100_years_and_the_1899_shift_label(public_all: dict[str, LabelledSeries]) -> None:
    nile = public_all["nile"]
    assert len(nile.values) == 100
    years = [datetime.fromtimestamp(t, UTC).year for t in nile.timestamps]
    assert years[0] == 1871
    assert years[-1] == 1970
    first, last = NILE_SHIFT_YEARS
    assert nile.labels == [(years.index(first), years.index(last))]
    assert nile.split == "held-out"


def test_daphnet_gives_nine_channels_with_shared_labels(
    public_all: dict[str, LabelledSeries],
) -> None:
    channels = [s for s in public_all.values() if s.family == "daphnet"]
    assert len(channels) == 9
    assert len({len(s.values) for s in channels}) == 1
    assert len({tuple(s.labels) for s in channels}) == 1
    # the excerpt aeon ships has no freeze-of-gait run: false alerts only
    assert channels[0].labels == []
    intervals = [
        b - a for a, b in zip(channels[0].timestamps, channels[0].timestamps[1:], strict=False)
    ]
    assert 0.01 < min(intervals) <= max(intervals) < 0.02  # about 64 Hz


def test_ecg_and_ucr_labels_are_runs_inside_their_series(
    public_all: dict[str, LabelledSeries],
) -> None:
    train_a = public_all["ecg-diff-count-3-train-a"]
    assert len(train_a.values) == 10_000
    assert len(train_a.labels) == 3
    assert all(end - start + 1 == 100 for start, end in train_a.labels)
    assert public_all["ecg-diff-count-3-train-na"].labels == []
    ucr_test = public_all["ucr135-internal-bleeding16-test"]
    ucr_train = public_all["ucr135-internal-bleeding16-train"]
    assert len(ucr_test.labels) == 1
    assert ucr_train.labels == []
    assert ucr_test.values[: len(ucr_train.values)] == ucr_train.values  # the TRAIN prefix


def test_split_selection(public_cache: Path) -> None:
    tune = load_public_series("tune", public_cache)
    assert {s.split for s in tune} == {"tune"}
    assert {s.family for s in tune} == {"ecg", "ucr135"}
    only_nile = load_public_series("held-out", public_cache, families={"nile"})
    assert [s.name for s in only_nile] == ["nile"]
    with pytest.raises(PublicDataError, match="unknown split"):
        load_public_series("train", public_cache)


def test_a_corrupted_cached_file_is_refused(public_cache: Path, tmp_path: Path) -> None:
    entry = next(e for e in CATALOGUE if e.name == "nile")
    cache = tmp_path / "cache"
    shutil.copytree(public_cache, cache)
    target = fetch_file(entry, cache)
    target.write_bytes(target.read_bytes().replace(b"1120", b"1121", 1))
    with pytest.raises(PublicDataError, match=r"nile\.csv: SHA-256 .* differs"):
        fetch_file(entry, cache)
    with pytest.raises(PublicDataError, match=r"nile\.csv"):
        load_public_series("held-out", cache, families={"nile"})


def test_an_unreachable_registry_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-index"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    entry = next(e for e in CATALOGUE if e.name == "nile")
    with pytest.raises(PublicDataError, match=r"pip download statsmodels==0\.15\.0 failed"):
        fetch_file(entry, tmp_path / "cache")


def test_a_missing_python_for_pip_is_a_clear_error(tmp_path: Path) -> None:
    entry = CATALOGUE[0]
    with pytest.raises(PublicDataError, match="cannot run pip"):
        fetch_file(entry, tmp_path / "cache", python=str(tmp_path / "no-python"))


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "firewatch" / "public-series"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "firewatch" / "public-series"


# --- the TCPD change-point series shipped by river (family tcpd, held-out) ---------------

#: Points of each series (TCPD's n_obs) and the change points the label rule gives,
#: written out by hand from the annotations in river 0.26.1.
TCPD_EXPECTED = {
    "tcpd-jfk-passengers": (468, [299]),
    "tcpd-apple": (622, [319]),
    "tcpd-bitcoin": (774, [522, 580, 702, 747, 760]),
    "tcpd-brent-spot": (500, [170, 219, 229, 287, 380, 409]),
    "tcpd-occupancy": (509, [53, 91, 142, 181, 236, 265, 416, 451, 506]),
    "tcpd-run-log": (376, [60, 96, 114, 174, 204, 240, 258, 317]),
    "tcpd-uk-coal-employ": (105, [16, 28, 45, 68, 80]),
}


def test_the_label_rule_on_hand_built_annotations() -> None:
    # one annotator alone, however many marks, is no change point
    assert consensus_change_points({"a": [10, 12, 14], "b": []}) == []
    # two annotators 4 points apart are one, at the median rounded down (10, 14 -> 12)
    assert consensus_change_points({"a": [10], "b": [14]}) == [12]
    assert consensus_change_points({"a": [10], "b": [13]}) == [11]  # 11.5 -> 11
    # 5 apart still counts (the gap is inclusive); 6 apart do not
    assert consensus_change_points({"a": [10], "b": [15]}) == [12]
    assert consensus_change_points({"a": [10], "b": [16]}) == []
    # the median is over all pooled marks of the cluster, duplicates included
    assert consensus_change_points({"a": [50], "b": [50], "c": [54]}) == [50]
    # marks chain: 0, 5, 10 are one cluster of 3 annotators; a far single mark is dropped
    assert consensus_change_points({"a": [0, 40], "b": [5], "c": [10]}) == [5]
    # several clusters, each judged on its own
    annotations = {"a": [20, 100, 300], "b": [23, 106], "c": [301]}
    assert consensus_change_points(annotations) == [21, 300]
    assert consensus_change_points(annotations, min_annotators=3) == []


def test_tcpd_series_checksums_points_and_labels(
    public_cache: Path, public_all: dict[str, LabelledSeries]
) -> None:
    entries = [e for e in CATALOGUE if e.family == "tcpd"]
    assert {e.name for e in entries} == set(TCPD_EXPECTED)
    assert len(TCPD_SERIES) == len(TCPD_EXPECTED)
    for entry in entries:
        assert entry.split == "held-out"
        assert (entry.package, entry.version) == ("river", RIVER_VERSION)
        assert entry.path.startswith("river/drift/datasets/")
        assert fetch_file(entry, public_cache).is_file()  # CSV checksum
        assert fetch_file(_module_entry(entry.name), public_cache).suffix == ".py"
        n_points, points = TCPD_EXPECTED[entry.name]
        series = public_all[entry.name]
        assert len(series.values) == len(series.timestamps) == n_points
        assert all(v is not None for v in series.values)
        assert series.labels == [(p, p) for p in points]
        assert entry.tcpd is not None
        assert list(entry.tcpd.change_points) == points  # the catalogue says the same
        assert str(points[0]) in entry.labels
        assert series.family == "tcpd"
        assert series.timestamps == sorted(series.timestamps)


def test_tcpd_annotations_are_read_from_river_source(public_cache: Path) -> None:
    module = fetch_file(_module_entry("tcpd-apple"), public_cache)
    assert read_annotations(module, "Apple") == {
        "6": [319],
        "7": [319],
        "8": [319],
        "9": [53, 90, 197, 276, 319, 403, 463, 535],
        "10": [319],
    }
    with pytest.raises(TcpdFormatError, match="expected one annotations="):
        read_annotations(module, "Bitcoin")


def test_unreadable_annotations_are_refused(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("class A:\n    def __init__(self):\n        f(annotations=load())\n")
    with pytest.raises(TcpdFormatError, match="no literal"):
        read_annotations(module, "A")
    module.write_text("class A:\n    def __init__(self):\n        f(annotations={'1': ['x']})\n")
    with pytest.raises(TcpdFormatError, match="are not"):
        read_annotations(module, "A")


def test_tcpd_series_are_rebuilt_as_the_annotators_saw_them(
    public_all: dict[str, LabelledSeries],
) -> None:
    def day(series: LabelledSeries, i: int) -> str:
        return datetime.fromtimestamp(series.timestamps[i], UTC).strftime("%Y-%m-%d")

    # Brent: every 10th trading day from 2000 on, as TCPD's brent_spot.json (500 points)
    brent = public_all["tcpd-brent-spot"]
    assert (day(brent, 0), day(brent, 1), day(brent, -1)) == (
        "2000-01-04",
        "2000-01-18",
        "2019-08-20",
    )
    assert brent.values[:5] == [23.95, 26.31, 27.35, 28.12, 29.01]
    # Apple: the first day dropped, then every 3rd day; the Close column
    apple = public_all["tcpd-apple"]
    assert (day(apple, 0), day(apple, 1)) == ("1996-12-13", "1996-12-18")
    assert apple.values[0] == 0.830356
    # Bitcoin ends where TCPD's series ends
    bitcoin = public_all["tcpd-bitcoin"]
    assert (day(bitcoin, 0), day(bitcoin, -1)) == ("2013-02-11", "2019-06-19")
    # Occupancy: V1 (temperature), the first of its four columns
    assert public_all["tcpd-occupancy"].values[:2] == [23.18, 23.0]
    coal = public_all["tcpd-uk-coal-employ"]
    assert datetime.fromtimestamp(coal.timestamps[0], UTC).year == 1913


def test_family_tcpd_is_selected_by_the_harness_without_scoring(public_cache: Path) -> None:
    series = select_series("held-out", families=["tcpd"], data_dir=public_cache)
    assert sorted(s.name for s in series) == sorted(TCPD_EXPECTED)
    assert {(s.source, s.family, s.split) for s in series} == {("public", "tcpd", "held-out")}
    assert select_series("tune", families=["tcpd"], data_dir=public_cache) == []


def test_a_corrupted_annotations_module_is_refused(public_cache: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(public_cache, cache)
    module = fetch_file(_module_entry("tcpd-run-log"), cache)
    module.write_text(module.read_text().replace("317]", "318]", 1))
    with pytest.raises(PublicDataError, match=r"run_log\.py: SHA-256 .* differs"):
        load_public_series("held-out", cache, families={"tcpd"})

"""The annotated change-point series of the Turing Change Point Dataset (TCPD) that river
ships, for :mod:`firewatch.lab.public_series` (family ``tcpd``, all **held-out**).

river 0.26.1 ships seven TCPD series as CSV files in ``river/drift/datasets/`` and, for each,
the human annotators' change points as a dict literal ``annotations={"6": [...], ...}``
(annotator id -> 0-based point indices) in the ``super().__init__`` call of the dataset
class in the module beside it. The annotations are read with :func:`ast.literal_eval` from
that module, straight out of the wheel (river is never installed or imported), and the
module's SHA-256 is checked like the data file's.

The annotations index TCPD's series, not always river's file as shipped: river ships the
full daily Apple and Brent files and a longer Bitcoin file. :class:`TcpdView` re-applies
TCPD's own conversion steps (rows dropped, every n-th row kept, cut-off dates; from the
``get_*.py`` / ``convert.py`` scripts of github.com/alan-turing-institute/TCPD) so that the
indices point where the annotators pointed; the point count is checked against TCPD's.

Label rule (fixed before any scoring, :func:`consensus_change_points`): the annotators'
indices are pooled and sorted; consecutive pooled indices at most ``CLUSTER_GAP`` (5)
points apart fall in one cluster; a cluster with marks of at least ``MIN_ANNOTATORS`` (2)
distinct annotators is a change point, labelled as the single point at the median of the
cluster's indices, rounded down. Multivariate series: the first value column of TCPD's
series only.
"""

from __future__ import annotations

import ast
import csv
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firewatch.lab.score_metrics import LabelledSeries

__all__ = [
    "CLUSTER_GAP",
    "MIN_ANNOTATORS",
    "RIVER_VERSION",
    "TCPD_SERIES",
    "TcpdFormatError",
    "TcpdView",
    "consensus_change_points",
    "read_annotations",
    "read_tcpd_series",
]

RIVER_VERSION = "0.26.1"
CLUSTER_GAP = 5  # points: pooled marks at most this far apart are one change point
MIN_ANNOTATORS = 2  # distinct annotators a cluster needs to be labelled

_DIR = "river/drift/datasets/"
_TCPD_CITE = (
    "van den Burg & Williams, An Evaluation of Change Point Detection Algorithms, "
    "arXiv:2003.06222, 2020 (Turing Change Point Dataset, "
    "github.com/alan-turing-institute/TCPD)"
)
_RULE = (
    "TCPD annotators' change points, pooled; clusters of marks <= 5 points apart holding "
    "marks of >= 2 distinct annotators; one label point per cluster at its median index "
    "(rounded down): points {points}"
)


class TcpdFormatError(Exception):
    """river's file or annotations do not look as the catalogue says."""


@dataclass(frozen=True)
class TcpdView:
    """One TCPD series in river's wheel: where its data and annotations are, how TCPD's
    series is rebuilt from river's CSV, and its provenance."""

    name: str
    csv: str  # file name in river/drift/datasets/
    sha256: str  # of the CSV
    module: str  # the dataset class's module in river/drift/datasets/
    module_sha256: str
    class_name: str
    time_column: str
    time_format: str  # strptime
    value_column: str
    n_points: int  # TCPD's n_obs, checked after the steps below
    change_points: tuple[int, ...]  # what the label rule gives (asserted by the tests)
    source: str
    licence: str
    values: str
    skip: int = 0  # rows dropped before sampling
    every: int = 1  # then every n-th row kept, from the first
    from_year: int | None = None  # then rows before this year dropped
    until: str | None = None  # then rows after this time (time_column text) dropped

    @property
    def path(self) -> str:
        return _DIR + self.csv

    @property
    def module_path(self) -> str:
        return _DIR + self.module

    @property
    def citation(self) -> str:
        return _TCPD_CITE

    @property
    def labels(self) -> str:
        return _RULE.format(points=", ".join(map(str, self.change_points)))


def _licence(original: str) -> str:
    return f"as redistributed by river, BSD-3-Clause; original source {original}"


#: The seven annotated series river 0.26.1 ships (the split is fixed in public_series).
TCPD_SERIES: tuple[TcpdView, ...] = (
    TcpdView(
        name="tcpd-jfk-passengers",
        csv="airline_passengers.csv",
        sha256="44039a54b3fae641090bf926dde2c4ca7c0e14d39b689eaf2ae00ee747a880d8",
        module="airline_passengers.py",
        module_sha256="bdd7dd570a1398abd45e5a3b9f55acf84f804bf96ec358348c4730732a913d7a",
        class_name="AirlinePassengers",
        time_column="date",
        time_format="%Y-%b",
        value_column="Total Passengers",
        n_points=468,
        change_points=(299,),
        source=(
            "Port Authority of NY & NJ air passenger traffic at JFK, monthly 1977-2015 "
            "(New York State open data, via Kaggle), TCPD 'jfk_passengers'"
        ),
        licence=_licence("New York State on Kaggle, CC0 Public Domain (TCPD README)"),
        values="passengers arriving and departing at JFK per month, 468 points",
    ),
    TcpdView(
        name="tcpd-apple",
        csv="apple.csv",
        sha256="dbc83018d9dc4790e88b293e470e377a490809704f91b9161abc33fa52a413e1",
        module="apple.py",
        module_sha256="a909fcb223a3aaf42dbfadf5a3d04ee347c06c5e2ebc6b11079d6c4a708a3c65",
        class_name="Apple",
        time_column="Date",
        time_format="%Y-%m-%d",
        value_column="Close",
        n_points=622,
        change_points=(319,),
        source=(
            "Apple (AAPL) daily stock prices 1996-12-12 to 2004-05-14 from Yahoo Finance, "
            "TCPD 'apple' (TCPD drops the first day and keeps every 3rd trading day)"
        ),
        licence=_licence("Yahoo Finance; TCPD: cannot be redistributed, it downloads it"),
        values=(
            "daily close price in USD (pre-2020-split scale), every 3rd trading day from "
            "1996-12-13: 622 of river's 1,867 rows; Close is TCPD's first column (river's "
            "file starts with Open; Volume, TCPD's second column, is left out)"
        ),
        skip=1,
        every=3,
    ),
    TcpdView(
        name="tcpd-bitcoin",
        csv="bitcoin.csv",
        sha256="c7c5c01bacc6e3da171eb19f2e307b251af5b290ad5790e2d2b258b41eef1cfd",
        module="bitcoin.py",
        module_sha256="59f4f344e12f022fc1dca9e9e260a19f1b12d8677685bb732b7e6a49edf38278",
        class_name="Bitcoin",
        time_column="date",
        time_format="%Y-%m-%d",
        value_column="price",
        n_points=774,
        change_points=(522, 580, 702, 747, 760),
        source=(
            "average USD market price of bitcoin across major exchanges, every 3 days, "
            "from blockchain.com (api.blockchain.info market-price chart), TCPD 'bitcoin'"
        ),
        licence=_licence("blockchain.com; TCPD: cannot be redistributed, it downloads it"),
        values=(
            "USD per bitcoin every 3 days, 2013-02-11 to 2019-06-19 (TCPD's end): 774 of "
            "river's 822 rows; the 48 later rows were never shown to the annotators"
        ),
        until="2019-06-19",
    ),
    TcpdView(
        name="tcpd-brent-spot",
        csv="brent_crude_oil.csv",
        sha256="3dd7b8f6901a06564243cbb4ed2ab1def0e4cc965afb0e64538ae0bf79dd2964",
        module="brent_crude_oil.py",
        module_sha256="a5d3a803a982a6643c96067dc076eaacdd8f77f7e3eacecdc2518bec76852b84",
        class_name="BrentSpotPrice",
        time_column="day",
        time_format="%m/%d/%Y",
        value_column="DPB",
        n_points=500,
        change_points=(170, 219, 229, 287, 380, 409),
        source=(
            "Europe Brent spot price FOB, daily, U.S. Energy Information Administration "
            "(series PET.RBRTE.D, Sep. 2019), TCPD 'brent_spot'"
        ),
        licence=_licence("U.S. EIA, public domain (TCPD README)"),
        values=(
            "USD per barrel, every 10th trading day from 1987-05-20, kept from 2000-01-04 "
            "to 2019-08-20: 500 of river's 8,195 rows (TCPD's series)"
        ),
        every=10,
        from_year=2000,
    ),
    TcpdView(
        name="tcpd-occupancy",
        csv="occupancy.csv",
        sha256="e8ff84747692c1da45a8f5cd73c53174d9a3604059965de6ca6d3a565a16acf1",
        module="occupancy.py",
        module_sha256="124baceae4d24947aef2c4bfaaff00a6cd5a3bea3f70c95f5f876e9c6aa33055",
        class_name="Occupancy",
        time_column="time",
        time_format="%Y-%m-%d %H:%M:%S",
        value_column="V1",
        n_points=509,
        change_points=(53, 91, 142, 181, 236, 265, 416, 451, 506),
        source=(
            "UCI Occupancy Detection data (Candanedo & Feldheim, Energy and Buildings 112: "
            "28-39, 2016), every 16th minute, TCPD 'occupancy'"
        ),
        licence=_licence("UCI; TCPD: unclear whether redistributable, it downloads it"),
        values=(
            "office room temperature in degrees C (V1, the first of 4 columns: "
            "temperature, humidity, light, CO2; the others are left out), every 16 min, "
            "509 points"
        ),
    ),
    TcpdView(
        name="tcpd-run-log",
        csv="run_log.csv",
        sha256="9a845b81d9137abb47971eacc487c0a2fd04c94cd5a74b3561b379468cc07f6a",
        module="run_log.py",
        module_sha256="1316c37504d060b73906447c8ed47d9c879ed496c9449d4ec50f5099097fde9f",
        class_name="RunLog",
        time_column="time",
        time_format="%Y-%m-%d %H:%M:%S",
        value_column="Pace",
        n_points=376,
        change_points=(60, 96, 114, 174, 204, 240, 258, 317),
        source=(
            "pace of a runner in one interval training session (2018-07-31) from the TCPD "
            "author's RunDouble account (run and walk on instruction), TCPD 'run_log'"
        ),
        licence=_licence("G.J.J. van den Burg's RunDouble log, MIT (TCPD run_log/LICENSE)"),
        values=("pace (the first of 2 columns; Distance is left out), about every 5 s, 376 points"),
    ),
    TcpdView(
        name="tcpd-uk-coal-employ",
        csv="uk_coal_employment.csv",
        sha256="3ac6005773329c3ccc7c74edaf1bab62275f03c75fe0696f9230cf3ffddee1b6",
        module="uk_coal_employment.py",
        module_sha256="6ef4bbc1e2147707efbbb22ae86a8ce9fe4a636721adcc60c85a7a2382d5615e",
        class_name="UKCoalEmploy",
        time_column="Year",
        time_format="%Y",
        value_column="Employment",
        n_points=105,
        change_points=(16, 28, 45, 68, 80),
        source=(
            "UK government historical coal data (coal production, availability and "
            "consumption), employment in British coal mines 1913-2017, TCPD 'uk_coal_employ'"
        ),
        licence=_licence("gov.uk, Open Government Licence v3.0 (TCPD README)"),
        values=(
            "people employed in UK coal mines per year, 105 points; river fills missing "
            "years with the previous year's value (TCPD leaves them null)"
        ),
    ),
)


def consensus_change_points(
    annotations: Mapping[str, Sequence[int]],
    *,
    gap: int = CLUSTER_GAP,
    min_annotators: int = MIN_ANNOTATORS,
) -> list[int]:
    """The labelled change points of one series under the fixed rule (module docstring):
    pooled marks chained at most ``gap`` points apart form a cluster; a cluster with marks
    of ``min_annotators`` distinct annotators gives ``floor(median(its marks))``."""
    marks = sorted((int(i), str(who)) for who, idx in annotations.items() for i in idx)
    clusters: list[list[tuple[int, str]]] = []
    for mark in marks:
        if clusters and mark[0] - clusters[-1][-1][0] <= gap:
            clusters[-1].append(mark)
        else:
            clusters.append([mark])
    return [
        math.floor(statistics.median(i for i, _ in cluster))
        for cluster in clusters
        if len({who for _, who in cluster}) >= min_annotators
    ]


def read_annotations(module: Path, class_name: str) -> dict[str, list[int]]:
    """The ``annotations=`` dict literal of ``class_name``'s ``__init__`` in ``module``
    (river's source), by :func:`ast.literal_eval`; nothing is imported or run."""
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name]
    literals = [
        kw.value
        for cls in classes
        for node in ast.walk(cls)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == "annotations"
    ]
    if len(literals) != 1:
        raise TcpdFormatError(f"{module}: expected one annotations= in class {class_name}")
    try:
        raw = ast.literal_eval(literals[0])
    except ValueError as err:
        raise TcpdFormatError(f"{module}: annotations of {class_name} are no literal") from err
    if not isinstance(raw, dict) or not all(
        isinstance(v, list) and all(isinstance(i, int) for i in v) for v in raw.values()
    ):
        raise TcpdFormatError(f"{module}: annotations of {class_name} are not {{id: [int]}}")
    return {str(k): list(v) for k, v in raw.items()}


def _rows(view: TcpdView, data: Path) -> list[dict[str, str]]:
    """river's rows reduced to TCPD's series (skip, every n-th, from a year, until)."""
    with data.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows = rows[view.skip :][:: view.every]
    if view.from_year is not None:
        year = view.from_year
        rows = [r for r in rows if _time(view, r).year >= year]
    if view.until is not None:
        last = [r[view.time_column] for r in rows].index(view.until)
        rows = rows[: last + 1]
    return rows


def _time(view: TcpdView, row: dict[str, str]) -> datetime:
    return datetime.strptime(row[view.time_column], view.time_format).replace(tzinfo=UTC)


def read_tcpd_series(
    view: TcpdView, data: Path, module: Path, *, split: str, meta: dict[str, object]
) -> LabelledSeries:
    """One TCPD series: TCPD's points rebuilt from river's CSV ``data``, labelled by the
    rule from the annotations in ``module`` (both files already checksum-verified)."""
    try:
        rows = _rows(view, data)
        stamps = [_time(view, r).timestamp() for r in rows]
        values: list[float | None] = [float(r[view.value_column]) for r in rows]
    except (KeyError, ValueError) as err:
        raise TcpdFormatError(f"{data}: cannot read {view.name}: {err!r}") from err
    if len(values) != view.n_points:
        raise TcpdFormatError(
            f"{data}: {view.name} has {len(values)} points, TCPD's series {view.n_points}"
        )
    annotations = read_annotations(module, view.class_name)
    outside = [i for idx in annotations.values() for i in idx if not 0 <= i < len(values)]
    if outside:
        raise TcpdFormatError(f"{module}: annotations {outside} lie outside {view.name}")
    points = consensus_change_points(annotations)
    return LabelledSeries(
        name=view.name,
        source="public",
        family="tcpd",
        split=split,
        timestamps=stamps,
        values=values,
        labels=[(p, p) for p in points],
        anomaly="change_point" if points else "clean",
        meta={
            **meta,
            "annotations_path": view.module_path,
            "annotators": len(annotations),
            "annotations": annotations,
            "change_points": points,
        },
    )

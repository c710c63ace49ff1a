"""``analytics_models``: the learned models, one row per version, newest version per kind
in use.

A row holds the model's bytes as :mod:`firewatch.analytics.learned_models` serialised them,
with their sha256 and what the model was trained on (window, features, parameters,
metrics). This module stores and returns them as they are; making and checking the bytes
is the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

_INSERT = (
    "INSERT INTO analytics_models (kind, algorithm, trained_from, trained_to, window_s,"
    " features, params, metrics, model, sha256)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING version"
)
_LATEST = (
    "SELECT DISTINCT ON (kind) version, kind, algorithm, trained_from, trained_to,"
    " window_s, features, params, metrics, model, sha256"
    " FROM analytics_models ORDER BY kind, version DESC"
)
_VERSIONS = "SELECT kind, max(version) FROM analytics_models GROUP BY kind"


@dataclass(frozen=True, slots=True)
class StoredModel:
    """One ``analytics_models`` row (fields named as its columns). ``kind`` is the stored
    text (a device kind)."""

    version: int
    kind: str
    algorithm: str
    trained_from: datetime
    trained_to: datetime
    window_s: int
    features: Sequence[str]
    params: dict[str, Any]
    metrics: dict[str, Any]
    model: bytes
    sha256: bytes


def insert_model(
    conn: psycopg.Connection[Any],
    *,
    kind: str,
    algorithm: str,
    trained_from: datetime,
    trained_to: datetime,
    window_s: int,
    features: Sequence[str],
    params: dict[str, Any],
    metrics: dict[str, Any],
    model: bytes,
    sha256: bytes,
) -> int:
    """Store a model as the next version of ``analytics_models``; return that version.
    Runs in the caller's transaction, if any."""
    params_json, metrics_json = Jsonb(params), Jsonb(metrics)
    values = (kind, algorithm, trained_from, trained_to, window_s, list(features))
    row = conn.execute(_INSERT, (*values, params_json, metrics_json, model, sha256)).fetchone()
    assert row is not None
    return int(row[0])


def latest_models(conn: psycopg.Connection[Any]) -> list[StoredModel]:
    """The newest stored model of each kind, as stored (bytes not checked)."""
    with conn.cursor(row_factory=class_row(StoredModel)) as cur:
        return cur.execute(_LATEST).fetchall()


def latest_versions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The newest version number of each kind (cheap: for polling)."""
    return {kind: int(v) for kind, v in conn.execute(_VERSIONS).fetchall()}

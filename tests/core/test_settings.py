"""Settings read from the environment: the one metrics host and the name it had before."""

from __future__ import annotations

import os

import pytest

from firewatch.core.settings import Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No FIREWATCH_* variable from the caller's environment."""
    for key in list(os.environ):
        if key.upper().startswith("FIREWATCH_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_one_metrics_host_for_every_service(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().metrics_host == "127.0.0.1"
    clean_env.setenv("FIREWATCH_METRICS_HOST", "0.0.0.0")
    assert Settings().metrics_host == "0.0.0.0"


def test_the_former_ingest_name_still_sets_it(clean_env: pytest.MonkeyPatch) -> None:
    """Deployments that set FIREWATCH_INGEST_METRICS_HOST (every service used it) keep
    working; when both are set, the new name wins."""
    clean_env.setenv("FIREWATCH_INGEST_METRICS_HOST", "10.0.0.7")
    assert Settings().metrics_host == "10.0.0.7"
    clean_env.setenv("FIREWATCH_METRICS_HOST", "0.0.0.0")
    assert Settings().metrics_host == "0.0.0.0"


def test_code_sets_it_by_its_name() -> None:
    assert Settings(metrics_host="192.0.2.1").metrics_host == "192.0.2.1"
    s = Settings().model_copy(update={"metrics_host": "192.0.2.2"})
    assert s.metrics_host == "192.0.2.2"

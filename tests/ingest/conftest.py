"""Every ingest test that runs a worker runs it on both consumers (issue 15: "run the same
tests against both until the new one has replaced the old"; ADR 0013)."""

from __future__ import annotations

import pytest

from firewatch.core.settings import Settings


@pytest.fixture(params=["mqtt5", "paho"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared ``settings``, once per ingest consumer."""
    return settings.model_copy(update={"ingest_consumer": request.param})

"""The registry's fixtures: a broker with authentication on (``tests/registry/broker.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.core.settings import Settings
from tests.registry.broker import Secure, secure_broker


@pytest.fixture
def secure(tmp_path: Path, settings: Settings, db: psycopg.Connection[Any]) -> Iterator[Secure]:
    """A real Mosquitto with the dynamic-security plugin, started from the registry."""
    with secure_broker(tmp_path, settings, db) as broker:
        yield broker

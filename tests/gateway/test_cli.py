"""``firewatch gateway`` as an operator runs it: the real command in a subprocess serves a
device, exposes /metrics, and stops on SIGTERM with its stop sequence and summary line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg

from firewatch.core.settings import Settings
from firewatch.runtime.mosquitto import free_port, wait_for_port
from tests.gateway.conftest import CONFIRM, Device, Subscriber, build_frame, system_status_adu


def _env(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIREWATCH_")}
    return {**clean, **env}


def test_the_command_serves_until_sigterm(
    mqtt_settings: Settings,
    gbt_db: psycopg.Connection[Any],
    subscriber: Subscriber,
    tmp_path: Path,
) -> None:
    assert mqtt_settings.database_url
    assert mqtt_settings.mqtt_url
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "firewatch", "gateway", "--port", str(port), "--host", "127.0.0.1"],
        cwd=tmp_path,
        env=_env(
            FIREWATCH_DATABASE_URL=mqtt_settings.database_url,
            FIREWATCH_MQTT_URL=mqtt_settings.mqtt_url,
            FIREWATCH_GATEWAY_METRICS_PORT=str(metrics_port),
            FIREWATCH_DATA_DIR=str(tmp_path / "data"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 30), "the gateway did not listen"
        with Device(port) as dev:
            dev.send(build_frame(1, system_status_adu(1)))
            dev.expect(CONFIRM, 1)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert 'firewatch_gateway_frames_total{command="send",outcome="confirmed"} 1.0' in metrics
        assert "firewatch_gateway_mqtt_connected 1.0" in metrics
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "gateway stopped: 1 frames, 1 messages published, 1 frames confirmed" in out, out


def test_without_a_broker_url_it_says_so(tmp_path: Path, database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "firewatch", "gateway"],
        cwd=tmp_path,
        env=_env(FIREWATCH_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("firewatch: FIREWATCH_MQTT_URL is not set")

"""``firewatch bench mqtt-clients``: every client receives the whole stream and is charged
its own CPU."""

from __future__ import annotations

import pytest

from firewatch.lab.client_bench import run_client_bench


@pytest.mark.slow
def test_each_client_receives_the_stream_and_reports_its_cost() -> None:
    result = run_client_bench(["mosquitto_sub", "mqtt5", "paho"], rate=400, duration=1, devices=20)
    for kind in ("mosquitto_sub", "mqtt5", "paho"):
        run = result["runs"][kind]
        assert run["received"] == 400, kind
        assert run["cpu_us_per_msg"] > 0, kind
    assert result["versions"]["mqtt5"]

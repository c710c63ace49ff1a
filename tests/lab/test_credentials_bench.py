"""``firewatch bench credentials`` on a small city: every figure is there, for both broker
configurations, and the broker did what the run checks (fresh logins accepted, revoked ones
refused)."""

from __future__ import annotations

from firewatch.core.settings import Settings
from firewatch.lab.credentials_bench import (
    VARIANTS,
    CredentialBenchConfig,
    format_result,
    run_credential_bench,
)


def test_a_small_run_measures_every_step_on_both_brokers(settings: Settings) -> None:
    cfg = CredentialBenchConfig(devices=6, connected=2)
    result = run_credential_bench(settings, cfg)
    assert set(result["variants"]) == set(VARIANTS)
    for variant in result["variants"].values():
        assert variant["issue"]["n"] == 6
        assert variant["issue"]["fresh_logins_refused"] == 0
        assert variant["rotate_until_old_login_closed"]["n"] == 2
        assert variant["revoke_via_sync_until_closed"]["n"] == 2
        assert variant["revoked_logins_refused"] == 2
        assert variant["reconcile_round"]["p50_ms"] > 0
    assert "set_tcp_nodelay true" in format_result(result)

"""The one settings class. Created once at start-up and passed down; never read from globals.

Every field reads from an environment variable named ``FIREWATCH_<FIELD>`` (case-insensitive),
e.g. ``FIREWATCH_DATABASE_URL`` or ``FIREWATCH_INGEST_BATCH_SIZE``; ``metrics_host`` also
from its former name ``FIREWATCH_INGEST_METRICS_HOST``, so that deployments keep working.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from firewatch.core.escalation import load_policy_file
from firewatch.core.gateway_settings import GatewaySettings
from firewatch.core.risk_config import DEFAULT_RISK_MODEL

Seconds = Annotated[float, Field(gt=0)]

#: GB 50440 (docs/domain.md#monitoring-center): alarm and status records are kept at least a year.
MIN_RECORD_RETENTION_DAYS = 365


class Settings(GatewaySettings, BaseSettings):
    """Firewatch configuration (env prefix ``FIREWATCH_``).

    Unset ``database_url`` / ``mqtt_url`` mean "embedded": ``firewatch up`` starts a pgserver
    PostgreSQL and a Mosquitto child process under ``data_dir``.
    """

    # populate_by_name: an aliased field is still set by its name in code (Settings(...)).
    model_config = SettingsConfigDict(
        env_prefix="FIREWATCH_", extra="ignore", populate_by_name=True
    )

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".firewatch"),
        description="Embedded services' data. Unset, the CLI takes the nearest .firewatch/ in "
        "the current directory or its parents (runtime/postgres.py: locate_data_dir).",
    )
    database_url: str | None = Field(default=None, description="PostgreSQL/TimescaleDB URL.")
    storage_flavour: Literal["auto", "postgres", "timescale"] = Field(
        default="auto",
        description="The schema a new database gets: TimescaleDB hypertables or plain "
        "PostgreSQL partitions; auto takes TimescaleDB only where the server preloads it "
        "(a migrated database keeps its own).",
    )
    mqtt_url: str | None = Field(
        default=None, description="mqtt://[user:pass@]host:port, or mqtts:// (TLS, port 8883)"
    )
    mqtt_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signs the broker's certificate, for mqtts:// URLs; unset: "
        "the system's trust store (`firewatch broker certs` makes a local CA: its ca.crt).",
    )

    embedded_mqtt_port: int = Field(
        default=1883, ge=0, description="Embedded broker port (a free one if taken)."
    )
    up_seed: bool = Field(default=True, description="`firewatch up` loads the demo city.")

    # --- the device contract -------------------------------------------------------------
    topic_root: str = Field(default="firewatch/v1", description="Versioned topic prefix.")
    max_payload_bytes: int = Field(
        default=65_536, gt=0, description="Larger payloads are dead letters (256 ports fit)."
    )
    max_clock_skew_future_s: Seconds = Field(
        default=300.0, description="Device timestamps further ahead of server time are refused."
    )
    max_backlog_age_s: Seconds = Field(
        default=7 * 86_400.0,
        description="Device timestamps older than this are refused (buffered backlog limit).",
    )

    # --- ingest consumer ---------------------------------------------------------------------
    ingest_consumer: Literal["mqtt5", "paho"] = Field(
        default="mqtt5",
        description="MQTT implementation of the ingest worker: mqtt5 (the mqtt5 codec on our "
        "own socket loop, about twice the throughput) or paho (paho-mqtt, the fallback kept "
        "for one release; ADR 0013).",
    )
    ingest_group: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_.-]{0,64}$",
        description="Shared-subscription group; empty: one worker with a plain subscription "
        "(the only kind Mosquitto 2.0 keeps over a broker restart, docs/reliability.md).",
    )
    ingest_client_id: str = Field(
        default="firewatch-ingest-0",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="This worker's fixed identity: the broker keeps its session (and what is "
        "queued for it) across restarts; retire one with `firewatch ingest retire`.",
    )
    ingest_session_expiry_s: int = Field(
        default=7 * 86_400,
        ge=0,
        description="How long the broker keeps a stopped worker's session and queue (default: "
        "the backlog limit, older messages would be refused anyway).",
    )
    ingest_batch_size: int = Field(default=2_000, gt=0, description="Rows per COPY flush.")
    ingest_flush_interval_ms: int = Field(
        default=50, gt=0, le=100, description="Longest a message waits before its flush."
    )
    ingest_max_inflight: int = Field(
        default=10_000,
        gt=0,
        le=65_535,
        description="MQTT 5 Receive Maximum: unacked messages the broker may send us at once.",
    )
    ingest_registry_refresh_s: Seconds = Field(default=10.0)
    # The fastest legitimate sender is a panel's event burst (and its alarms are exempt) or
    # a water point every 5 s: 20/s is 100 times that, and a backlog paced at it uploads a
    # day of 5 s readings in a quarter of an hour (ingest/rate_limit.py, docs/reliability.md).
    ingest_device_rate_per_s: float = Field(
        default=20.0,
        ge=0,
        description="Messages per second one device may send, sustained, per worker; the "
        "excess is dead-lettered (rate_limited) and acknowledged. 0: no limit.",
    )
    ingest_device_burst: int = Field(
        default=200, ge=1, description="Messages one device may send at once above its rate."
    )
    ingest_metrics_port: int = Field(default=9108, ge=0, description="0 disables /metrics.")
    metrics_host: str = Field(
        default="127.0.0.1",
        # The first name wins when both are set; the second is what it was called when
        # only ingest served /metrics on it (analytics and alerting borrowed it).
        validation_alias=AliasChoices("FIREWATCH_METRICS_HOST", "FIREWATCH_INGEST_METRICS_HOST"),
        description="Bind address of every service's /metrics (ports per service).",
    )

    # --- dead letters ------------------------------------------------------------------------
    dead_letter_quota_per_device: int = Field(
        default=20, ge=0, description="Dead letters stored per device per window, per worker."
    )
    dead_letter_quota_total: int = Field(
        default=2_000, ge=0, description="Dead letters stored per window in all, per worker."
    )
    dead_letter_window_s: Seconds = Field(default=600.0, description="The quota's window.")
    dead_letter_payload_cap_bytes: int = Field(
        default=4_096, ge=0, description="Raw bytes kept per dead letter (size and SHA-256 always)."
    )

    # --- broker accounts (issue 14; docs/adr/0012-device-credentials.md) ---------------------
    mqtt_admin_username: str = Field(
        default="firewatch-admin",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="The broker account (client id = username) whose role grants the "
        "dynamic-security $CONTROL API: the broker sync and the API's credential routes use it.",
    )
    mqtt_admin_password: str | None = Field(
        default=None,
        description="Its password; unset, credentials cannot be issued (`firewatch up` makes "
        "one for its embedded broker).",
    )
    broker_sync_interval_s: Seconds = Field(
        default=30.0,
        description="How often the broker sync compares the broker's device accounts with the "
        "registry when nothing signals a change (a change applies within a second).",
    )

    # --- backoff ----------------------------------------------------------------------------
    backoff_initial_s: Seconds = Field(default=0.2)
    backoff_max_s: Seconds = Field(default=10.0)
    broker_backoff_max_s: Seconds = Field(
        default=1.0,
        description="Longest wait between ingest's reconnects to the broker: after a broker "
        "restart ingest must subscribe again before devices publish much.",
    )

    # --- storage ---------------------------------------------------------------------------
    telemetry_retention_days: int = Field(default=400, gt=0)
    record_retention_days: int = Field(
        default=400, description="Events, device status and dead letters (≥ 365)."
    )
    partition_premake_days: int = Field(
        default=3, ge=1, description="Days of partitions (TimescaleDB: chunks) made ahead."
    )
    telemetry_compress_after_days: int = Field(
        default=7,
        ge=1,
        description="TimescaleDB: telemetry chunks older than this are compressed by "
        "maintenance (never before the backlog limit has passed them).",
    )
    record_compress_after_days: int = Field(
        default=30, ge=1, description="TimescaleDB: the same for events and device status."
    )

    # --- analytics service ---------------------------------------------------------------
    analytics_shard: str = Field(
        default="0/1", description="k/n: this worker takes the units hashing to k of n."
    )
    analytics_batch_rows: int = Field(default=5_000, gt=0, description="Rows per table per read.")
    analytics_poll_s: Seconds = Field(
        default=1.0, description="Longest wait for new rows (NOTIFY wakes it sooner)."
    )
    analytics_checkpoint_s: Seconds = Field(
        default=30.0, description="Detector state is saved at least this often."
    )
    analytics_registry_refresh_s: Seconds = Field(default=30.0)
    analytics_model_refresh_s: Seconds = Field(default=60.0)
    analytics_start: str = Field(
        default="beginning",
        pattern="^(beginning|latest)$",
        description="Without a checkpoint: read all stored history, or only new rows.",
    )
    analytics_metrics_port: int = Field(default=9109, ge=0, description="0 disables /metrics.")
    analytics_dropout_factor: float = Field(default=4.0, gt=1)
    analytics_dropout_min_s: Seconds = Field(default=600.0)
    analytics_skew_limit_s: Seconds = Field(default=120.0)
    analytics_false_alarm_max_s: Seconds = Field(
        default=900.0, description="A fire alarm cleared within this is a probable false alarm."
    )

    # --- alerting ----------------------------------------------------------------------------
    alert_ack_timeout_s: dict[str, float] = Field(
        default_factory=lambda: {"critical": 60.0, "high": 300.0, "medium": 900.0, "low": 3600.0},
        description="The built-in escalation policy's wait before each level, by severity "
        "(JSON); a policy file (FIREWATCH_ESCALATION_POLICY_FILE) sets its own.",
    )
    alert_max_escalation_level: int | None = Field(
        default=None,
        ge=0,
        description="An extra cap on the escalation policy: an alert nobody acknowledges "
        "climbs at most this many levels, then stays at its last one (unset: the policy's "
        "own length; 0: never escalates).",
    )
    alert_correlation_window_s: Seconds = Field(
        default=300.0, description="Fire alarms of one zone this close make a likely real fire."
    )
    alert_offline_after_s: dict[str, float] = Field(
        default_factory=lambda: {"panel": 900.0, "water": 300.0, "ebike_shed": 300.0},
        description="A device silent this long is offline, by kind (JSON).",
    )
    alert_patrol_cycle_s: Seconds = Field(
        default=7200.0, le=7200.0, description="GB 50440 patrol cycle: at most 2 h."
    )
    alert_tick_s: Seconds = Field(default=5.0, description="Escalation/offline checks period.")
    alert_mass_offline_fraction: float = Field(
        default=0.2, gt=0, le=1, description="This share of devices silent at once is one outage."
    )
    alert_mass_offline_min: int = Field(default=50, ge=1)
    alert_batch_rows: int = Field(default=2_000, gt=0)
    webhook_command_center_url: str | None = Field(
        default=None, description="Confirmed real fires are forwarded here (POST JSON)."
    )
    webhook_notify_url: str | None = Field(
        default=None, description="Notification gateway: unit contacts (responsible, maintenance)."
    )
    webhook_supervisor_url: str | None = Field(default=None, description="Escalations go here.")
    webhook_secret: str = Field(
        default="firewatch-dev-secret",
        description="HMAC-SHA256 key of webhook signatures. The default is public: the "
        "dispatcher refuses it while a webhook URL is set; `firewatch up` generates one.",
    )
    webhook_timeout_s: Seconds = Field(default=5.0)
    outbox_max_attempts: int = Field(default=12, gt=0)
    outbox_backoff_initial_s: Seconds = Field(default=1.0)
    outbox_backoff_max_s: Seconds = Field(default=300.0)
    alerting_metrics_port: int = Field(default=9110, ge=0, description="0 disables /metrics.")
    api_host: str = Field(default="127.0.0.1")
    api_port: int = Field(default=8080, ge=0)
    api_max_body_bytes: int = Field(
        default=65_536, gt=0, description="Larger request bodies are refused (413) unread."
    )
    api_max_concurrency: int = Field(
        default=10, ge=1, description="API requests served at once (each has a pooled connection)."
    )
    api_max_waiting: int = Field(
        default=100, ge=0, description="Requests that may queue for a slot; beyond: 503 at once."
    )
    api_queue_timeout_s: Seconds = Field(
        default=1.0, description="Longest a queued request waits for a slot, then 503."
    )
    api_max_streams: int = Field(
        default=100, ge=1, description="Open live streams (/alerts/stream); beyond: 503."
    )

    # --- analytics: rule thresholds (docs/domain.md; overridable per unit / device) ---------
    analytics_min_pressure_kpa: dict[str, float] = Field(
        default_factory=dict,
        description="Override the static-pressure minimum per building class (JSON object).",
    )
    analytics_default_min_kpa: float = Field(default=100.0, gt=0)
    analytics_tank_low_fraction: float = Field(
        default=0.6, gt=0, lt=1, description="Tank low level as a share of its capacity."
    )
    analytics_room_min_c: float = Field(default=5.0, description="Pump room minimum, °C.")
    analytics_port_alarm_c: float = Field(default=65.0, description="Charging-port alarm, °C.")
    analytics_port_rating_a: float = Field(default=3.0, gt=0, description="Default port rating.")
    analytics_over_current_factor: float = Field(default=1.2, gt=1)
    analytics_charging_hours: tuple[float, float] = Field(
        default=(6.0, 23.0), description="Default allowed charging window, local hours."
    )
    analytics_utc_offset_h: float = Field(default=8.0, description="The city's local time.")
    analytics_false_alarms_per_day: int = Field(default=5, ge=1)

    # --- supervision: draws, inspections, hazards, credit (docs/supervision.md) -------------
    # Figures are design assumptions (docs/domain.md, "Focused supervision"), not a standard's.
    supervision_level_rates: dict[str, float] = Field(
        default_factory=lambda: {"red": 0.5, "orange": 0.25, "yellow": 0.1, "blue": 0.05},
        description="Probability that a draw includes a unit, by risk level (JSON).",
    )
    supervision_credit_rates: dict[str, float] = Field(
        default_factory=lambda: {"watch": 0.5, "blacklisted": 1.0},
        description="Raised inclusion probability by credit status (JSON); a unit gets the "
        "higher of its level's and its status's.",
    )
    supervision_focus_every: int = Field(
        default=1, ge=1, description="A red unit on the focus list is drawn every N draws."
    )
    supervision_inspectors_per_unit: int = Field(default=2, ge=2, le=5)
    supervision_load_slack: int = Field(
        default=1, ge=0, description="An inspector gets at most ceil(k·n/m) + this many units."
    )
    supervision_deadline_days: dict[str, float] = Field(
        default_factory=lambda: {"major": 30.0, "general": 15.0},
        description="Rectification deadline after a hazard is found, by severity (JSON).",
    )
    supervision_remind_before_days: list[float] = Field(
        default_factory=lambda: [3.0, 1.0],
        description="Remind the unit this many days before a hazard's deadline (JSON list).",
    )
    supervision_escalation_interval_days: float = Field(
        default=7.0, gt=0, description="An overdue hazard escalates one level per interval."
    )
    supervision_max_escalation_level: int = Field(default=3, ge=1)
    supervision_credit_overdue_days: float = Field(
        default=30.0, gt=0, description="Any hazard this late blacklists its unit."
    )
    supervision_credit_repeat_count: int = Field(
        default=3, ge=2, description="This many hazards within the window blacklist a unit."
    )
    supervision_credit_repeat_days: float = Field(default=180.0, gt=0)
    supervision_credit_clean_days: dict[str, float] = Field(
        default_factory=lambda: {"watch": 30.0, "blacklisted": 90.0},
        description="Clean period after which a unit returns to good, by status (JSON).",
    )
    supervision_fault_categories: dict[str, str] = Field(
        default_factory=lambda: {
            "panel": "fire_facilities",
            "water": "fire_water",
            "ebike_shed": "ebike_charging",
        },
        description="Hazard category of a confirmed device fault, by device kind (JSON).",
    )
    supervision_fire_related_categories: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "panel": ["electrical", "flammables", "fire_facilities", "fire_separation"],
            "ebike_shed": ["ebike_charging", "electrical"],
            "water": [],
            "default": ["electrical", "flammables", "ebike_charging"],
        },
        description="Open hazards of these categories make a confirmed fire a serious "
        "violation, by the fire's device kind (JSON; 'default' for any other).",
    )
    supervision_tick_s: Seconds = Field(
        default=60.0, description="Reminders, escalations and credit rules run this often."
    )
    supervision_batch_rows: int = Field(default=1_000, gt=0)

    @field_validator("supervision_level_rates", "supervision_credit_rates")
    @classmethod
    def _rates(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        if info.field_name == "supervision_level_rates":
            if set(v) != {"red", "orange", "yellow", "blue"}:
                raise ValueError("give a rate for exactly red, orange, yellow and blue")
        elif not set(v) <= {"good", "watch", "blacklisted"}:
            raise ValueError("rates are for good, watch and blacklisted only")
        for name, rate in v.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name}: a probability is between 0 and 1, not {rate}")
        return v

    @field_validator("supervision_deadline_days")
    @classmethod
    def _both_severities(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != {"major", "general"} or any(d <= 0 for d in v.values()):
            raise ValueError("give positive days for exactly major and general")
        return v

    # --- risk model (docs/risk.md) -----------------------------------------------------------
    # The versioned weights, cut-offs and forced conditions; read and validated where a score
    # is computed (firewatch.core.risk_config.load_risk_config), not here.
    risk_model: Path = Field(
        default=DEFAULT_RISK_MODEL,
        description="Risk model file (TOML); default: the shipped risk-v1 model.",
    )

    # --- /metrics of the rollup, risk and supervision workers (their summary counters) -----
    analysis_metrics_port: int = Field(default=9111, ge=0, description="0 disables /metrics.")
    risk_metrics_port: int = Field(default=9112, ge=0, description="0 disables /metrics.")
    supervision_metrics_port: int = Field(default=9113, ge=0, description="0 disables /metrics.")

    # --- risk worker: when scores are recomputed and kept (firewatch/risk/, docs/risk.md) -----
    risk_interval_s: Seconds = Field(
        default=3600.0, description="Every unit is rescored this often (and at start)."
    )
    risk_event_check_s: Seconds = Field(
        default=15.0,
        description="How often the worker looks for significant events (a confirmed fire, a "
        "credit change, a hazard found, acted on or overdue) and rescores those units.",
    )
    risk_event_overlap_s: Seconds = Field(
        default=120.0,
        description="Each event check looks back this far past the previous one, for records "
        "that commit a little after their time (a unit rescored twice changes nothing).",
    )
    risk_keep_change: float = Field(
        default=0.5,
        ge=0,
        description="A recomputed score is kept in the history when its level or forced "
        "conditions changed, its score moved by at least this much, or the unit's newest kept "
        "score is older than FIREWATCH_RISK_KEEP_EVERY_S.",
    )
    risk_keep_every_s: Seconds = Field(default=86_400.0)

    # --- tiered fire-analysis database: rollups (firewatch/analysis/, docs/analysis.md) ------
    analysis_poll_s: Seconds = Field(
        default=10.0, description="A refresh round runs this often (at once while behind)."
    )
    analysis_live_every_s: Seconds = Field(
        default=300.0,
        description="An hour still filling is recomputed at most this often; an ended hour "
        "is recomputed once its last readings have settled.",
    )
    analysis_round_rows: int = Field(
        default=200_000, gt=0, description="Telemetry rows one round marks at most."
    )
    analysis_round_buckets: int = Field(
        default=5_000, gt=0, description="Device-hour buckets one round recomputes at most."
    )
    analysis_hour_retention_days: int = Field(
        default=35,
        gt=0,
        description="Hourly rollups are deleted after this (daily ones after "
        "FIREWATCH_RECORD_RETENTION_DAYS); at least the backlog limit + 2 days.",
    )
    analysis_registry_refresh_s: Seconds = Field(
        default=60.0, description="Registry thresholds (building class, metadata) reloaded."
    )

    # --- people and API tokens (issue 12; firewatch/cli/people.py, docs/people.md) ------------
    token_default_days: int = Field(
        default=90, gt=0, description="Lifetime of a new API token unless --days says otherwise."
    )
    token_max_days: int = Field(
        default=366, gt=0, description="Longest lifetime `firewatch user token --days` accepts."
    )

    # --- browser sessions and login throttling (issue 12; firewatch/api/routes/auth.py,
    # docs/people.md). Whole seconds: they become cookie Max-Age and Retry-After values.
    session_idle_s: int = Field(
        default=1800, gt=0, description="A session unused this long ends (idle timeout)."
    )
    session_max_s: int = Field(
        default=43200, gt=0, description="A session ends this long after login, used or not."
    )
    session_cookie_secure: bool = Field(
        default=True,
        description="Mark the session cookies Secure (browsers still send them to "
        "http://localhost and http://127.0.0.1); false only for plain http elsewhere.",
    )
    login_max_failures: int = Field(
        default=5, gt=0, description="Failed logins of one username within the window."
    )
    login_max_failures_ip: int = Field(
        default=20, gt=0, description="Failed logins from one client address within the window."
    )
    login_window_s: int = Field(
        default=900, gt=0, description="The window in which failed logins are counted."
    )

    @field_validator("session_max_s")
    @classmethod
    def _max_covers_idle(cls, v: int, info: ValidationInfo) -> int:
        idle = info.data.get("session_idle_s")
        if idle is not None and v < idle:
            raise ValueError(f"session_max_s ({v}) must be at least session_idle_s ({idle})")
        return v

    # escalation policy and channels (issue 12; firewatch/core/escalation.py,
    # firewatch/alerting/channel_*.py, docs/escalation.md)
    escalation_policy_file: Path | None = Field(
        default=None,
        description="Escalation policy (TOML: a ladder of levels per severity); unset: the "
        "built-in one. Checked when the settings are read: a bad file stops every command.",
    )
    escalation_rate_limit: int = Field(
        default=10,
        ge=0,
        description="Person notifications (e-mail, SMS, voice) per unit within the window; "
        "the rest are recorded as suppressed, not sent.",
    )
    escalation_rate_window_s: Seconds = Field(default=600.0, description="The rate limit's window.")
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail; unset: none.")
    smtp_port: int = Field(default=587, ge=1, le=65_535)
    smtp_user: str | None = Field(default=None, description="SMTP login (with the password).")
    smtp_password: str | None = Field(default=None)
    smtp_from: str = Field(default="firewatch@localhost", description="The e-mails' sender.")
    smtp_starttls: bool = Field(
        default=True, description="Upgrade the SMTP connection with STARTTLS (required then)."
    )
    sms_url: str | None = Field(default=None, description="The SMS provider's send URL.")
    voice_url: str | None = Field(default=None, description="The voice-call provider's URL.")
    provider_token: str | None = Field(
        default=None, description="Sent to the SMS/voice provider as Authorization: Bearer."
    )
    provider_secret: str | None = Field(
        default=None,
        description="HMAC key shared with the SMS/voice provider: signs our requests and "
        "checks its delivery receipts (at least 16 bytes while a provider URL is set).",
    )
    provider_callback_url: str | None = Field(
        default=None,
        description="Where the provider posts receipts (our POST /notifications/receipts); "
        "unset: http://FIREWATCH_API_HOST:FIREWATCH_API_PORT/notifications/receipts.",
    )

    @field_validator("escalation_policy_file")
    @classmethod
    def _policy_loads(cls, v: Path | None) -> Path | None:
        if v is not None:
            load_policy_file(v)  # PolicyError (a ValueError) names the file and the problem
        return v

    # --- simulator ---------------------------------------------------------------------------
    simulate_interval_s: Seconds = Field(default=5.0, description="Per-device report interval.")
    simulate_seed: int = Field(default=1)

    @field_validator("record_retention_days")
    @classmethod
    def _keep_a_year(cls, v: int) -> int:
        if v < MIN_RECORD_RETENTION_DAYS:
            raise ValueError(
                f"alarm and status records must be kept at least {MIN_RECORD_RETENTION_DAYS} days"
            )
        return v

    @field_validator("topic_root")
    @classmethod
    def _no_wildcards(cls, v: str) -> str:
        if not v or any(c in v for c in "#+") or v.endswith("/"):
            raise ValueError("topic_root must be a plain topic prefix without wildcards")
        return v

    @property
    def pg_dir(self) -> Path:
        return self.data_dir.resolve() / "pgdata"

    @property
    def mosquitto_dir(self) -> Path:
        return self.data_dir.resolve() / "mosquitto"


def child_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """Environment for a child process that must see the same resolved configuration."""
    env = dict(os.environ)
    if settings.database_url:
        env["FIREWATCH_DATABASE_URL"] = settings.database_url
    if settings.mqtt_url:
        env["FIREWATCH_MQTT_URL"] = settings.mqtt_url
    if settings.mqtt_admin_password:
        env["FIREWATCH_MQTT_ADMIN_PASSWORD"] = settings.mqtt_admin_password
    if settings.gateway_mqtt_username and settings.gateway_mqtt_password:
        env["FIREWATCH_GATEWAY_MQTT_USERNAME"] = settings.gateway_mqtt_username
        env["FIREWATCH_GATEWAY_MQTT_PASSWORD"] = settings.gateway_mqtt_password
    if settings.mqtt_ca_file:
        env["FIREWATCH_MQTT_CA_FILE"] = str(settings.mqtt_ca_file)
    env["FIREWATCH_DATA_DIR"] = str(settings.data_dir)
    env.update(overrides)
    return env

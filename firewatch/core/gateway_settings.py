"""The GB/T 26875.3 gateway's settings (``firewatch gateway``, docs: firewatch/gateway/).

A mixin of :class:`~firewatch.core.settings.Settings`: every field here is read like the
others, from ``FIREWATCH_<FIELD>`` (e.g. ``FIREWATCH_GATEWAY_PORT``). Kept in a module of
its own so that the one settings class does not grow by a whole service's worth of fields.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

#: The MQTT client id when no gateway account is configured (an account of kind
#: ``gateway`` may only connect with its own name as client id: firewatch/runtime/brokerconf.py).
DEFAULT_GATEWAY_CLIENT_ID = "firewatch-gateway"

#: GB 50440: the monitoring center checks the on-duty person at least every 2 hours.
MAX_DUTY_CHECK_EVERY_S = 7200.0


class GatewaySettings(BaseModel):
    """Fields of ``firewatch gateway``: the TCP server legacy user-information transmission
    devices (UITDs) connect to, and how it talks to them (GB/T 26875.3-2011)."""

    # --- the TCP server --------------------------------------------------------------------
    gateway_host: str = Field(
        default="0.0.0.0", description="Bind address of the GB/T 26875.3 TCP server."
    )
    gateway_port: int = Field(
        default=9026, ge=0, le=65_535, description="Its TCP port (0: a free one, for tests)."
    )
    gateway_max_connections: int = Field(
        default=5_000,
        ge=1,
        le=1_000_000,
        description="Device connections served at once; one more is closed at once (counted).",
    )
    gateway_idle_timeout_s: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="A connection that sends nothing for this long is closed (devices send a "
        "heartbeat well within it).",
    )
    gateway_frame_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3_600,
        description="A frame begun ('@@' seen) must be complete within this, else the "
        "connection is closed (slowloris).",
    )
    gateway_max_garbage_bytes: int = Field(
        default=65_536,
        ge=0,
        description="Bytes per connection that are not part of any frame (noise, a wrong "
        "protocol, undelimitable frames) before it is closed.",
    )
    gateway_center_address: str = Field(
        default="000000000000",
        pattern=r"^[0-9a-f]{12}$",
        description="The monitoring center's own 48-bit address (12 lowercase hex digits): "
        "the source of what the gateway sends.",
    )
    gateway_profiles_file: Path | None = Field(
        default=None,
        description="A TOML file of extra vendor profiles (time order, checksum, clock zone) "
        "next to the built-in ones; a device's profile is chosen in the registry.",
    )
    gateway_directory_refresh_s: float = Field(
        default=10.0,
        gt=0,
        le=3_600,
        description="The registry's GB/T addresses are reloaded this often: a device given "
        "an address is served within one refresh.",
    )

    # --- the device's clock and the on-duty checks ------------------------------------------
    gateway_clock_sync_every_s: float = Field(
        default=3_600.0,
        gt=0,
        le=86_400,
        description="A connected device's clock is set this often (and at its first frame).",
    )
    gateway_duty_check_every_s: float = Field(
        default=MAX_DUTY_CHECK_EVERY_S,
        gt=0,
        le=MAX_DUTY_CHECK_EVERY_S,
        description="Duty checks (查岗) per connected device: at most every 2 h (GB 50440).",
    )
    gateway_duty_answer_timeout_s: float = Field(
        default=600.0,
        gt=0,
        le=3_600,
        description="The on-duty person must answer a duty check within this, else it is "
        "missed (sent to the device rounded up to whole minutes).",
    )
    gateway_duty_poll_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often requested duty checks (duty_checks rows) are looked for.",
    )

    # --- the MQTT side ------------------------------------------------------------------------
    gateway_mqtt_username: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="The broker account (kind gateway) the gateway logs in as; it is also "
        "the client id. Unset: the login in FIREWATCH_MQTT_URL, if any, and client id "
        f"{DEFAULT_GATEWAY_CLIENT_ID}.",
    )
    gateway_mqtt_password: str | None = Field(default=None, description="Its password.")
    gateway_publish_queue: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Messages waiting for the broker (in flight or queued) at most; when "
        "full, frames wait unconfirmed: devices keep them and resend.",
    )
    gateway_stop_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="On shutdown, the longest the frames in progress get to be published "
        "and confirmed.",
    )
    gateway_metrics_port: int = Field(default=9114, ge=0, description="0 disables /metrics.")

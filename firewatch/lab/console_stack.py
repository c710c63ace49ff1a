"""What the console's screenshots and benchmark run on: a scratch database with the demo city
(and, for pictures, a plausible state of it), the API with the console on a free loopback
port, people who log in, a headless chromium, and, when asked, the pipeline from a fresh
Mosquitto through ingest, analytics and alerting on threads.

Everything is made for the run and removed after it (``ExitStack``): the database on
``FIREWATCH_DATABASE_URL``'s server (or a throwaway embedded one), the broker in a
temporary directory. Used by ``python -m firewatch.lab.console_shots`` and
``python -m firewatch.lab.console_bench``; never by a service.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from playwright.sync_api import Browser, BrowserContext, ViewportSize, sync_playwright

from firewatch.alerting.service import AlertingService
from firewatch.analytics.service import AnalyticsService
from firewatch.api.server import ApiServer
from firewatch.core.alerts import AlertAction
from firewatch.core.domain import Severity
from firewatch.core.passwords import hash_password
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.ingest.service import IngestService
from firewatch.lab.scratch import scratch_database, throwaway_server
from firewatch.runtime.mosquitto import mosquitto
from firewatch.storage.alert_claims import claim
from firewatch.storage.alerts import apply_action, raise_alert
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.people import add_person
from firewatch.storage.seed import load_seed, read_seed

CHROMIUM = os.environ.get("FIREWATCH_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "console-demo-password"
OPERATOR = "li.wei"
WALL: ViewportSize = {"width": 1920, "height": 1080}

#: Where the demo city's units are drawn: near their district's seat (approximate; the seed
#: has no coordinates). Each unit is placed a little apart from the others of its district.
DISTRICT_SEATS = {
    "weidu": (113.826, 34.027),
    "jianan": (113.842, 34.124),
    "yuzhou": (113.488, 34.140),
    "changge": (113.773, 34.217),
    "yanling": (114.177, 34.102),
    "xiangcheng": (113.483, 33.851),
}


class ConsoleStackError(RuntimeError):
    """The stack could not start (no chromium, a service that did not come up)."""


@dataclass
class ConsoleStack:
    settings: Settings  # the scratch database, and the broker when there is one
    api: ApiServer
    browser: Browser

    @property
    def url(self) -> str:
        return self.api.url

    def seat(
        self, username: str = OPERATOR, viewport: ViewportSize | None = None
    ) -> BrowserContext:
        """A browser context logged in as ``username`` (its own cookies: one seat)."""
        context = self.browser.new_context(
            base_url=self.url,
            viewport=viewport or WALL,
            locale="zh-CN",
            device_scale_factor=1,
        )
        response = context.request.post(
            "/auth/login", data={"username": username, "password": PASSWORD}
        )
        if response.status != 200:
            raise ConsoleStackError(f"login of {username} failed: {response.status}")
        return context


def _settings(base: Settings, database_url: str, mqtt_url: str | None, data_dir: Path) -> Settings:
    return base.model_copy(
        update={
            "database_url": database_url,
            "mqtt_url": mqtt_url,
            "data_dir": data_dir,
            "api_host": "127.0.0.1",
            "api_port": 0,
            "ingest_client_id": f"console-bench-{uuid.uuid4().hex[:6]}",
            "ingest_metrics_port": 0,
            "analytics_metrics_port": 0,
            "alerting_metrics_port": 0,
            "analysis_metrics_port": 0,
            "risk_metrics_port": 0,
            "supervision_metrics_port": 0,
            # react within tens of milliseconds, as the tests' settings do
            "analytics_poll_s": 0.05,
            "alert_tick_s": 0.05,
        }
    )


def _browser(stack: ExitStack) -> Browser:
    path = shutil.which(CHROMIUM) or CHROMIUM
    if not os.path.exists(path):
        raise ConsoleStackError(
            f"no chromium at {CHROMIUM}: apt-get install chromium (or set FIREWATCH_CHROMIUM)"
        )
    pw = stack.enter_context(sync_playwright())
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    browser = pw.chromium.launch(executable_path=path, headless=True, args=args)
    stack.callback(browser.close)
    return browser


def _run_services(stack: ExitStack, services: list[tuple[str, Any]]) -> None:
    """Each service on a thread of its own, until the stack closes; waits for each to be
    ready (``service.ready``)."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    errors: dict[str, BaseException] = {}

    def run(name: str, svc: Any) -> None:
        try:
            svc.run(stop)
        except BaseException as err:  # reported below, in the caller's thread
            errors[name] = err

    def halt() -> None:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    stack.callback(halt)
    for name, svc in services:
        thread = threading.Thread(target=run, args=(name, svc), name=name, daemon=True)
        threads.append(thread)
        thread.start()
        deadline = time.monotonic() + 60
        while not svc.ready.is_set():
            if name in errors:
                raise ConsoleStackError(f"{name} failed: {errors[name]}") from errors[name]
            if time.monotonic() > deadline:
                raise ConsoleStackError(f"{name} was not ready within 60 s")
            svc.ready.wait(0.05)


def start_stack(
    stack: ExitStack,
    *,
    pipeline: bool = False,
    demo: bool = True,
    prepare: Callable[[psycopg.Connection[Any]], None] | None = None,
) -> ConsoleStack:
    """The console over a scratch database seeded with the demo city and an operator
    (:data:`OPERATOR`, :data:`PASSWORD`); ``demo``: with alerts, telemetry, coordinates and
    risk scores to show; ``prepare``: more to store before anything starts (devices the
    pipeline must know); ``pipeline``: with a fresh broker and ingest, analytics and
    alerting on threads (``settings.mqtt_url``)."""
    base = Settings()
    admin = base.database_url or throwaway_server(stack)
    db_url = scratch_database(stack, admin, "fw_console")
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-console-")))
    mqtt_url = None
    if pipeline:
        mqtt_url = base.mqtt_url or stack.enter_context(mosquitto(tmp / "broker"))
    settings = _settings(base, db_url, mqtt_url, tmp / "data")
    with psycopg.connect(db_url, autocommit=True) as conn:
        upgrade(conn)
        load_seed(conn, read_seed())
        maintain(conn, settings)
        add_person(
            conn,
            username=OPERATOR,
            role=Role.OPERATOR,
            actor="console-lab",
            display_name="李伟",
            password_hash=hash_password(PASSWORD),
        )
        place_units(conn)
        if demo:
            demo_state(conn, settings)
        if prepare is not None:
            prepare(conn)
    if pipeline:
        assert mqtt_url is not None
        _run_services(
            stack,
            [
                ("ingest", IngestService(settings, db_url, mqtt_url)),
                ("analytics", AnalyticsService(settings, db_url)),
                ("alerting", AlertingService(settings, db_url)),
            ],
        )
    browser = _browser(stack)
    api = stack.enter_context(ApiServer(settings, db_url))
    return ConsoleStack(settings=settings, api=api, browser=browser)


def place_units(conn: psycopg.Connection[Any]) -> None:
    """Coordinates for the units that have none, near their district's seat."""
    rows = conn.execute(
        "SELECT u.id, d.id FROM units u JOIN regions s ON s.id = u.region_id"
        " JOIN regions d ON d.id = s.parent_id WHERE u.latitude IS NULL ORDER BY u.id"
    ).fetchall()
    placed: dict[str, int] = {}
    with conn.transaction():
        for unit_id, district in rows:
            lon, lat = DISTRICT_SEATS.get(district, (113.826, 34.027))
            n = placed.get(district, 0)
            placed[district] = n + 1
            angle = n * 2.4  # a golden-angle spiral keeps a district's units apart
            r = 0.012 * math.sqrt(n + 1)
            conn.execute(
                "UPDATE units SET longitude = %s, latitude = %s WHERE id = %s",
                (lon + r * math.cos(angle), lat + r * math.sin(angle), unit_id),
            )


def demo_state(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """What the pictures show: 24 hours of water and shed telemetry, a handful of open
    alerts (a fire alarm among them, one claimed by the operator), and risk scores."""
    now = datetime.now(UTC)
    _telemetry(conn, now)
    _device_state(conn, now)
    devices = dict(
        conn.execute("SELECT id, unit_id FROM devices ORDER BY id").fetchall()  # device -> unit
    )
    alerts: list[tuple[str, Severity, str | None, int, str]] = [
        ("fire_alarm", Severity.CRITICAL, "D-WD-001-P1", 95, "回路2 区1 点型感烟探测器 1004 火警"),
        ("smoke", Severity.CRITICAL, "D-WD-002-E1", 40, "充电棚烟感报警"),
        ("low_pressure", Severity.HIGH, "D-WD-001-W2", 420, "喷淋末端水压 62 kPa，低于 100 kPa"),
        ("port_overheat", Severity.HIGH, "D-WD-001-E1", 700, "端口 7 温度 68 ℃，超过 65 ℃"),
        ("device_offline", Severity.MEDIUM, None, 2400, "设备 15 分钟无通信"),
        ("stuck_sensor", Severity.LOW, None, 5400, "水压读数 6 小时未变化"),
    ]
    spare = iter(d for d in devices if d.endswith(("-W1", "-T1", "-P1")) and "WD-001" not in d)
    created = []
    for type_, severity, device, ago_s, text in alerts:
        device_id = device if device is not None and device in devices else next(spare)
        alert, _ = raise_alert(
            conn,
            type=type_,
            severity=severity,
            unit_id=devices[device_id],
            device_id=device_id,
            seen_at=now - timedelta(seconds=ago_s),
            explanation=text,
        )
        created.append(alert)
    # one seat is on the smoke alarm; the port overheat was acknowledged
    claim(conn, created[1].id, actor=OPERATOR)
    apply_action(conn, created[3].id, AlertAction.ACKNOWLEDGE, actor=OPERATOR, note="已通知单位")
    _risk(conn, now)


def _telemetry(conn: psycopg.Connection[Any], now: datetime) -> None:
    """Every 10 minutes over the last day: water pressure with its daily swing (one point
    sagging in the last hours), tank levels, shed ambient and port temperatures."""
    kinds = dict(conn.execute("SELECT id, kind FROM devices").fetchall())
    Row = tuple[str, int, datetime, float | None, float | None, float | None, list[float] | None]
    rows: list[Row] = []
    start = now - timedelta(hours=24)
    for i in range(145):
        ts = start + timedelta(minutes=10 * i)
        hour = ts.hour + ts.minute / 60
        swing = math.sin((hour - 6) / 24 * 2 * math.pi)
        for n, (device, kind) in enumerate(sorted(kinds.items())):
            if kind == "water":
                kpa = 350 - 25 * swing + 3 * math.sin(i * 0.7 + n)
                if device == "D-WD-001-W2" and i > 120:
                    kpa -= (i - 120) * 12  # the low pressure of the demo alert
                rows.append((device, i, ts, kpa, 3.4 - 0.2 * swing, None, None))
            elif kind == "ebike_shed":
                ambient = 14 + 6 * swing
                port = ambient + 18 + 10 * max(0.0, math.sin((hour - 18) / 6 * math.pi))
                rows.append((device, i, ts, None, None, ambient, [port, port - 4, port - 9]))
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa, level_m,"
            " ambient_c, port_no, port_temp_c)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (d, seq, ts, ts, kpa, lvl, amb, [1, 2, 3] if ports else None, ports)
                for d, seq, ts, kpa, lvl, amb, ports in rows
            ],
        )


def _device_state(conn: psycopg.Connection[Any], now: datetime) -> None:
    """Every device online and heard from a minute ago, but one panel offline for an hour."""
    offline = "D-CG-001-W1"
    with conn.transaction():
        for (device,) in conn.execute("SELECT id FROM devices").fetchall():
            gone = device == offline
            at = now - timedelta(hours=1 if gone else 0, minutes=1)
            conn.execute(
                "INSERT INTO device_state (device_id, state, ts, seq) VALUES (%s, %s, %s, 1)"
                " ON CONFLICT (device_id) DO NOTHING",
                (device, "offline" if gone else "online", at),
            )
            conn.execute(
                "INSERT INTO device_last_seen (device_id, last_rx) VALUES (%s, %s)"
                " ON CONFLICT (device_id) DO NOTHING",
                (device, at),
            )


def _risk(conn: psycopg.Connection[Any], now: datetime) -> None:
    from firewatch.core.risk_config import load_risk_config
    from firewatch.risk.scoring import score_units

    score_units(conn, load_risk_config(), None, now, trigger="manual")

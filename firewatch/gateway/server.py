"""``firewatch gateway``: the asyncio TCP server legacy user-information transmission
devices (UITDs) connect to over GB/T 26875.3-2011, republishing what they send as the MQTT
contract's panel events (docs/gateway.md; one :class:`~firewatch.gateway.session.Session` per
connection).

Start: load the directory (a database that cannot be read stops the start), then listen.
At most ``gateway_max_connections`` connections are served; one more is closed at once and
counted (``connections_refused``). The directory is reloaded in the background, requested
duty checks are polled, clock syncs and scheduled checks run per device
(:mod:`firewatch.gateway.duty`).

Stop sequence (:meth:`GatewayServer.stop`): stop accepting; every session finishes the
frame in progress (publish, PUBACKs, confirm) and closes, those still busy after
``gateway_stop_timeout_s`` are cut off (their frames unconfirmed: the devices send them
again); stop the downlink; log one summary line. The publisher is the caller's and is
closed after the server (it still carries the last frames' messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType

from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress
from firewatch.core.gateway_settings import DEFAULT_GATEWAY_CLIENT_ID
from firewatch.core.gbt_frame import parse_address
from firewatch.core.gbt_profiles import load_profiles
from firewatch.core.settings import Settings
from firewatch.gateway.directory import Directory, GatewayStore
from firewatch.gateway.duty import DutyManager, default_fraction
from firewatch.gateway.gateway_metrics import GatewayMetrics
from firewatch.gateway.publisher import MqttPublisher
from firewatch.gateway.session import ConnectedDevices, Publisher, Session, SessionContext
from firewatch.gateway.translate import ClockLimits
from firewatch.runtime.metrics import MetricsEndpoint

log = logging.getLogger("firewatch.gateway")

#: Pending connections the kernel holds for us: a fleet reconnecting after an outage
#: arrives at once (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 4096


class GatewayServer:
    """The TCP server (see the module docstring). ``async with GatewayServer(...) as gw``
    listens on ``gw.port`` (the bound one: ``gateway_port`` 0 takes a free port)."""

    def __init__(
        self,
        settings: Settings,
        store: GatewayStore,
        publisher: Publisher,
        *,
        metrics: GatewayMetrics | None = None,
        now: Callable[[], float] = time.time,
        duty_fraction: Callable[[str], float] = default_fraction,
    ) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.metrics = metrics or GatewayMetrics()
        self.directory = Directory(store, settings.gateway_directory_refresh_s)
        self.registry = ConnectedDevices()
        self.duty = DutyManager(
            store=store,
            directory=self.directory,
            registry=self.registry,
            publisher=publisher,
            metrics=self.metrics,
            topic_root=settings.topic_root,
            clock_sync_every_s=settings.gateway_clock_sync_every_s,
            duty_check_every_s=settings.gateway_duty_check_every_s,
            duty_answer_timeout_s=settings.gateway_duty_answer_timeout_s,
            poll_s=settings.gateway_duty_poll_s,
            now=now,
            fraction=duty_fraction,
        )
        self.ctx = SessionContext(
            directory=self.directory,
            publisher=publisher,
            metrics=self.metrics,
            hooks=self.duty,
            registry=self.registry,
            profiles=load_profiles(settings.gateway_profiles_file),
            center_address=parse_address(settings.gateway_center_address),
            topic_root=settings.topic_root,
            limits=ClockLimits(settings.max_clock_skew_future_s, settings.max_backlog_age_s),
            idle_timeout_s=settings.gateway_idle_timeout_s,
            frame_timeout_s=settings.gateway_frame_timeout_s,
            max_garbage_bytes=settings.gateway_max_garbage_bytes,
            now=now,
        )
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: dict[Session, asyncio.Task[None]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Load the directory (raises psycopg errors), start the background work, listen."""
        await self.directory.load()
        self._background = [
            asyncio.create_task(self.directory.run(), name="gbt-directory"),
            asyncio.create_task(self.duty.run(), name="gbt-duty-poll"),
        ]
        s = self.settings
        self._server = await asyncio.start_server(
            self._accept, s.gateway_host, s.gateway_port, backlog=LISTEN_BACKLOG
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info(
            "GB/T 26875.3 gateway listening on %s:%d (%d registered addresses)",
            s.gateway_host,
            self.port,
            len(self.directory),
        )

    async def stop(self) -> None:
        """The stop sequence of the module docstring (idempotent)."""
        if self._stopping:
            return
        self._stopping = True
        if self._server is not None:
            self._server.close()  # no new connections; the open ones are ours to end
        for session in list(self._sessions):
            session.request_stop()
        tasks = list(self._sessions.values())
        if tasks:
            _done, busy = await asyncio.wait(tasks, timeout=self.settings.gateway_stop_timeout_s)
            if busy:
                log.warning("%d connections did not finish their frame in time", len(busy))
                for task in busy:
                    task.cancel()
                await asyncio.gather(*busy, return_exceptions=True)
        await self.duty.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        log.info("%s", self.metrics.stats.summary())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping or len(self._sessions) >= self.settings.gateway_max_connections:
            self.metrics.on_refused()
            writer.close()
            return
        session = Session(reader, writer, self.ctx)
        task = asyncio.current_task()
        assert task is not None
        self._sessions[session] = task
        self.metrics.on_connect()
        try:
            await session.run()
        finally:
            del self._sessions[session]


def broker_address(settings: Settings) -> tuple[BrokerAddress, str]:
    """Where the gateway publishes and as whom: ``FIREWATCH_MQTT_URL`` with the gateway
    account's login when one is set; the client id is the account's name."""
    assert settings.mqtt_url
    addr = BrokerAddress.parse(settings.mqtt_url, ca_file=settings.mqtt_ca_file)
    if settings.gateway_mqtt_username:
        addr = replace(
            addr, username=settings.gateway_mqtt_username, password=settings.gateway_mqtt_password
        )
        return addr, settings.gateway_mqtt_username
    return addr, DEFAULT_GATEWAY_CLIENT_ID


def make_publisher(settings: Settings, metrics: GatewayMetrics) -> MqttPublisher:
    """The gateway's publisher as the settings say."""
    addr, client_id = broker_address(settings)
    return MqttPublisher(
        addr,
        client_id,
        queue_limit=settings.gateway_publish_queue,
        backoff=Backoff(
            settings.backoff_initial_s,
            max(settings.backoff_initial_s, settings.broker_backoff_max_s),
        ),
        drain_timeout_s=settings.gateway_stop_timeout_s,
        on_connection=lambda up: metrics.mqtt_connected.set(1 if up else 0),
        on_retry=metrics.on_publish_retry,
    )


async def serve(settings: Settings, database_url: str, stop: threading.Event) -> None:
    """Run the gateway until ``stop`` is set (``firewatch gateway``; the CLI sets it on
    SIGTERM/SIGINT), then the stop sequence; the publisher closes last."""
    metrics = GatewayMetrics()
    MetricsEndpoint(metrics.registry, settings.metrics_host, settings.gateway_metrics_port).serve(
        log
    )
    store = GatewayStore(database_url)
    try:
        async with (
            make_publisher(settings, metrics) as publisher,
            GatewayServer(settings, store, publisher, metrics=metrics),
        ):
            await _until(stop)
    finally:
        await store.close()


async def _until(stop: threading.Event) -> None:
    """Return once ``stop`` (a threading.Event the signal handler sets) is set: a daemon
    thread waits on it and wakes the loop."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def relay() -> None:
        stop.wait()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nothing left to stop
            loop.call_soon_threadsafe(stopped.set)

    threading.Thread(target=relay, name="gateway-stop", daemon=True).start()
    await stopped.wait()

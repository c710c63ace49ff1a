"""A client of Mosquitto's dynamic-security ``$CONTROL`` API (docs/adr/0012).

The broker's accounts and roles change at run time through MQTT itself: a JSON list of
commands published to ``$CONTROL/dynamic-security/v1`` by an account whose role grants that
topic, answered on ``$CONTROL/dynamic-security/v1/response``. The plugin applies each
command at once (a deleted or disabled client is disconnected) and saves its file, so a
change needs no broker restart.

:class:`DynsecControl` owns one MQTT connection (a context manager, like aiomqtt's
client): :meth:`DynsecControl.run` sends commands and waits, with a deadline, for their
answers, matched by ``correlationData``. Thread-safe: the API's worker threads share one.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.broker import BrokerAddress
from firewatch.runtime.mqtt_tls import apply_tls

log = logging.getLogger(__name__)

TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = TOPIC + "/response"
#: Commands in flight at once: a caller beyond this waits for a slot (bounded memory).
MAX_PENDING = 1_000


class ControlError(Exception):
    """The broker could not be reached, did not answer in time, or refused a command."""


@dataclass(frozen=True)
class Answer:
    """The broker's answer to one command: ``error`` is None when it succeeded."""

    command: str
    error: str | None
    data: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        return self.error is None


class DynsecControl:
    """One admin connection to the broker's ``$CONTROL`` API (see the module docstring).

    ``addr`` carries the admin account's username and password (``FIREWATCH_MQTT_ADMIN_*``).
    The connection is opened on :meth:`__enter__` and kept (paho reconnects); :meth:`run`
    raises :class:`ControlError` when it is down.
    """

    def __init__(
        self,
        addr: BrokerAddress,
        *,
        client_id: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._addr = addr
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_PENDING)
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._ready = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            # The admin account is bound to its username as client id (brokerconf).
            client_id=client_id or addr.username or f"firewatch-control-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if addr.username:
            client.username_pw_set(addr.username, addr.password)
        apply_tls(client, addr)
        client.reconnect_delay_set(1, 2)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        self.refused: str | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> DynsecControl:
        self._client.connect_async(self._addr.host, self._addr.port, keepalive=30)
        self._client.loop_start()
        if not self._ready.wait(self._connect_timeout):
            self._client.loop_stop()
            why = f": {self.refused}" if self.refused else ""
            raise ControlError(
                f"no $CONTROL connection to {self._addr.host}:{self._addr.port} within "
                f"{self._connect_timeout:.0f} s{why}"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # --- paho callbacks (network thread) ----------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            log.error("broker refused the $CONTROL login: %s", reason)
            return
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        if codes and not codes[0].is_failure:
            self._ready.set()
        else:
            self.refused = f"subscription to {RESPONSE_TOPIC} refused ({codes})"
            log.error("%s: the admin account lacks its $CONTROL grants", self.refused)

    def _on_disconnect(self, *_a: Any) -> None:
        self._ready.clear()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = orjson.loads(msg.payload)
            responses = doc["responses"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("unreadable $CONTROL response: %r", msg.payload[:200])
            return
        for resp in responses:
            key = resp.get("correlationData") if isinstance(resp, dict) else None
            with self._lock:
                entry = self._waiting.get(key) if isinstance(key, str) else None
            if entry is not None:
                entry[1].append(resp)
                entry[0].set()

    # --- commands ---------------------------------------------------------------------------
    def run(self, commands: Iterable[Mapping[str, Any]], timeout: float = 5.0) -> list[Answer]:
        """Send ``commands`` (one message) and return their answers in order.

        :class:`ControlError` if the connection is down or an answer is missing at the
        deadline: then some of the commands may have been applied (the caller decides;
        every command here is safe to repeat or to undo).
        """
        cmds = [dict(c) for c in commands]
        if not cmds:
            return []
        if not self._ready.is_set():
            raise ControlError("the $CONTROL connection to the broker is down")
        if not self._slots.acquire(timeout=timeout):
            raise ControlError("too many $CONTROL commands in flight")
        keys = [uuid.uuid4().hex for _ in cmds]
        entries: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {
            k: (threading.Event(), []) for k in keys
        }
        try:
            with self._lock:
                self._waiting.update(entries)
            for cmd, key in zip(cmds, keys, strict=True):
                cmd["correlationData"] = key
            info = self._client.publish(TOPIC, orjson.dumps({"commands": cmds}), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ControlError(f"cannot send to $CONTROL: {mqtt.error_string(info.rc)}")
            answers: list[Answer] = []
            for cmd, key in zip(cmds, keys, strict=True):
                event, got = entries[key]
                # One deadline for the whole batch: the broker answers them in one message.
                if not event.wait(timeout):
                    raise ControlError(
                        f"the broker did not answer {cmd['command']} within {timeout:.0f} s"
                    )
                resp = got[0]
                error = resp.get("error")
                answers.append(
                    Answer(
                        str(resp.get("command", cmd["command"])),
                        str(error) if error else None,
                        resp.get("data") or {},
                    )
                )
                timeout = 0.5  # the rest came in the same response message
            return answers
        finally:
            with self._lock:
                for key in keys:
                    self._waiting.pop(key, None)
            self._slots.release()

    def check(self, commands: Iterable[Mapping[str, Any]], timeout: float = 5.0) -> list[Answer]:
        """:meth:`run`, raising :class:`ControlError` for the first command refused."""
        answers = self.run(commands, timeout)
        for answer in answers:
            if not answer.ok:
                raise ControlError(f"the broker refused {answer.command}: {answer.error}")
        return answers


def admin_address(
    mqtt_url: str, username: str, password: str | None, ca_file: Path | None = None
) -> BrokerAddress:
    """Where the broker of ``mqtt_url`` is, with the admin account's login instead of the
    URL's own (``FIREWATCH_MQTT_ADMIN_USERNAME`` / ``_PASSWORD``). :class:`ControlError`
    when no admin password is configured."""
    if not password:
        raise ControlError(
            "no broker admin password (FIREWATCH_MQTT_ADMIN_PASSWORD): credentials cannot be "
            "pushed to the broker"
        )
    addr = BrokerAddress.parse(mqtt_url, ca_file=ca_file)
    return replace(addr, username=username, password=password)


class LazyControl:
    """A :class:`DynsecControl` opened at first use and kept (the API's: it must start
    while the broker is down, and a request that needs the broker then gets a clear
    :class:`ControlError`). Thread-safe; :meth:`close` at shutdown."""

    def __init__(
        self,
        mqtt_url: str | None,
        username: str,
        password: str | None,
        *,
        ca_file: Path | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self._args = (mqtt_url, username, password)
        self._ca_file = ca_file
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._control: DynsecControl | None = None

    def get(self) -> DynsecControl:
        """The open connection; :class:`ControlError` if it is not configured or cannot
        be opened now (the next call tries again)."""
        with self._lock:
            if self._control is None:
                url, username, password = self._args
                if not url:
                    raise ControlError("no broker configured (FIREWATCH_MQTT_URL)")
                control = DynsecControl(
                    admin_address(url, username, password, self._ca_file),
                    connect_timeout=self._connect_timeout,
                )
                self._control = control.__enter__()
            return self._control

    def close(self) -> None:
        with self._lock:
            if self._control is not None:
                self._control.__exit__(None, None, None)
                self._control = None

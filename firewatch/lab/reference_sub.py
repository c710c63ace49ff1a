"""The physical reference for ``firewatch bench ingest --consumer mosquitto_sub``: the broker
delivering the benchmark's stream to its own C subscriber, which throws it away.

``mosquitto_sub`` subscribes to the whole topic root at QoS 1 (so the broker does the same
per-message work as for ingest: a PUBLISH out, a PUBACK in) and prints each message's topic
to a file; nothing else happens to it. What the broker can deliver this way, on the same
machine and at the same time as the load generator, is the ceiling of any consumer: the
benchmark reports each consumer's figures beside it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.broker import BrokerAddress
from firewatch.runtime.process import stop_process

#: Published until the subscriber prints it: then its subscription is in place.
PROBE_SUFFIX = "_bench/_ready/telemetry"


class ReferenceUnavailable(Exception):
    """``mosquitto_sub`` is not installed (Debian: ``apt-get install mosquitto-clients``)."""


class ReferenceSubscriber:
    """``mosquitto_sub`` as a child process (a context manager): QoS 1, MQTT 5, topics to
    ``out``. :meth:`received` counts the benchmark's messages it printed so far."""

    def __init__(self, url: str, root: str, out: Path, client_id: str) -> None:
        exe = shutil.which("mosquitto_sub")
        if exe is None:
            raise ReferenceUnavailable("mosquitto_sub not found: apt-get install mosquitto-clients")
        self._addr = BrokerAddress.parse(url)
        self._probe_topic = f"{root}/{PROBE_SUFFIX}"
        self._probe = self._probe_topic.encode() + b"\n"
        self._out = out
        self._argv = [
            exe, "-h", self._addr.host, "-p", str(self._addr.port), "-V", "mqttv5",
            "-q", "1", "-i", client_id, "-t", f"{root}/#", "-F", "%t",
        ]  # fmt: skip
        if self._addr.username:
            self._argv += ["-u", self._addr.username, "-P", self._addr.password or ""]
        self._proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._lines = 0
        self._probes = 0

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> ReferenceSubscriber:
        with self._out.open("wb") as fh:
            self._proc = subprocess.Popen(self._argv, stdout=fh, stderr=subprocess.STDOUT)
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            stop_process(self._proc, 10, "mosquitto_sub")

    def wait_ready(self, timeout: float) -> None:
        """Publish a probe every 0.2 s until the subscriber has printed one (its
        subscription is then active); raises ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            self._count()
            if self._probes:
                return
            if time.monotonic() > deadline or (self._proc and self._proc.poll() is not None):
                raise TimeoutError(f"mosquitto_sub did not subscribe ({self._out})")
            self._send_probe()
            time.sleep(0.2)

    def _send_probe(self) -> None:
        """One QoS 1 probe, acknowledged by the broker before this returns."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if self._addr.username:
            client.username_pw_set(self._addr.username, self._addr.password)
        client.connect(self._addr.host, self._addr.port)
        client.loop_start()
        try:
            client.publish(self._probe_topic, b"ready", qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()

    def received(self) -> int:
        """The benchmark's messages printed so far (probes not counted)."""
        self._count()
        return self._lines - self._probes

    def _count(self) -> None:
        with self._out.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # whole lines only
        chunk = data[:end]
        self._offset += end
        self._lines += chunk.count(b"\n")
        self._probes += chunk.count(self._probe)

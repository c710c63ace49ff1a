"""Where a broker is: the ``mqtt://`` or ``mqtts://`` URL every service and tool is
configured with, and for ``mqtts://`` which CA its certificate must chain to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: Scheme -> (TLS, default port). ``tcp`` is paho's own name for plain MQTT.
_SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883)}


class BrokerUrlError(ValueError):
    """The MQTT URL is not ``mqtt[s]://[user[:password]@]host[:port]``."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A parsed broker URL, plus how to trust the broker when it is reached over TLS.

    ``tls``: connect over TLS and verify the broker's certificate and host name
    (``mqtts://``). ``ca_file``: the CA bundle that certificate must chain to
    (``Settings.mqtt_ca_file``; None: the system's trust store); it is configuration, not
    part of the URL, and travels with the address so that every connection made from it
    (``dataclasses.replace`` with another login included) verifies the same way. Clients
    apply both with ``firewatch.runtime.mqtt_tls.apply_tls``.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None

    @classmethod
    def parse(cls, url: str, *, ca_file: Path | None = None) -> BrokerAddress:
        """``mqtt://host[:port]`` (default 1883) or ``mqtts://host[:port]`` (default 8883),
        with optional percent-encoded ``user[:password]@``; :class:`BrokerUrlError` for
        anything else. ``ca_file`` is kept as given (it only matters for ``mqtts://``)."""
        parts = urlsplit(url)
        scheme = _SCHEMES.get(parts.scheme)
        if scheme is None or not parts.hostname:
            raise BrokerUrlError(
                f"unsupported MQTT URL {url!r}: use mqtt://host:port or mqtts://host:port"
            )
        tls, default_port = scheme
        return cls(
            parts.hostname,
            parts.port or default_port,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=ca_file,
        )

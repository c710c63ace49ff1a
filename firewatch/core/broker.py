"""Where a broker is: the ``mqtt://`` URL every service and tool is configured with."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


class BrokerUrlError(ValueError):
    """The MQTT URL is not ``mqtt://[user[:password]@]host[:port]``."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise BrokerUrlError(f"unsupported MQTT URL {url!r}: use mqtt://host:port")
        return cls(
            parts.hostname,
            parts.port or 1883,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

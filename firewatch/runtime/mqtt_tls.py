"""TLS for Firewatch's own MQTT clients: what an ``mqtts://`` address means to a paho client.

Every client that connects from a configured URL (the ingest consumer, the simulator's
links) parses it with ``BrokerAddress.parse(url, ca_file=settings.mqtt_ca_file)`` (the CA
file is passed down from the settings, never read from the environment here) and calls
:func:`apply_tls` right after creating its ``mqtt.Client``.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

from firewatch.core.broker import BrokerAddress


def apply_tls(client: mqtt.Client, addr: BrokerAddress) -> None:
    """Make ``client`` connect over TLS when ``addr`` is an ``mqtts://`` address; nothing
    for ``mqtt://`` (``addr.ca_file`` is then ignored).

    The broker's certificate is always verified, host name included (paho's defaults:
    ``CERT_REQUIRED``, hostname checking on): against ``addr.ca_file`` when set (the CA that
    ``firewatch broker certs`` made, or a deployment's own), else against the system's
    trust store (a broker with a publicly trusted certificate). There is deliberately no
    "insecure" switch: an unverified TLS connection only looks safe. Python's client
    context refuses anything older than TLS 1.2, the floor the broker's listener sets too.

    Raises ``OSError`` (``FileNotFoundError``) if the CA file cannot be read and
    ``ssl.SSLError`` if it holds no certificate, so a bad setting fails where the client is
    made, not at its first connect.
    """
    if not addr.tls:
        return
    client.tls_set(ca_certs=str(addr.ca_file) if addr.ca_file is not None else None)

"""TLS for Firewatch's own MQTT clients: what an ``mqtts://`` address means.

Every client that connects from a configured URL (the ingest consumers, the simulator's
links) parses it with ``BrokerAddress.parse(url, ca_file=settings.mqtt_ca_file)`` (the CA
file is passed down from the settings, never read from the environment here). A paho
client calls :func:`apply_tls` right after it is created; the ingest consumer on its own
socket wraps it in :func:`client_context`. Both verify the same way, from one context.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt

from firewatch.core.broker import BrokerAddress


def client_context(addr: BrokerAddress) -> ssl.SSLContext:
    """The TLS context for connecting to ``addr``'s broker: certificate required and host
    name checked, against ``addr.ca_file`` when set, else the system's trust store; TLS 1.2
    at least. Raises ``OSError`` / ``ssl.SSLError`` for an unreadable or empty CA file."""
    ctx = ssl.create_default_context(cafile=str(addr.ca_file) if addr.ca_file is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def apply_tls(client: mqtt.Client, addr: BrokerAddress) -> None:
    """Make ``client`` connect over TLS when ``addr`` is an ``mqtts://`` address; nothing
    for ``mqtt://`` (``addr.ca_file`` is then ignored).

    The broker's certificate is always verified, host name included
    (:func:`client_context`): against ``addr.ca_file`` when set (the CA that ``firewatch
    broker certs`` made, or a deployment's own), else against the system's trust store (a
    broker with a publicly trusted certificate). There is deliberately no "insecure"
    switch: an unverified TLS connection only looks safe. Nothing older than TLS 1.2, the
    floor the broker's listener sets too.

    Raises ``OSError`` (``FileNotFoundError``) if the CA file cannot be read and
    ``ssl.SSLError`` if it holds no certificate, so a bad setting fails where the client is
    made, not at its first connect.
    """
    if not addr.tls:
        return
    client.tls_set_context(client_context(addr))

"""Notification channels: one interface (:class:`Channel`), one adapter per way of reaching
someone, and the set of them a dispatcher uses (:func:`build_channels`; docs/adr/0009).

An outbox row names its channel (``outbox.channel``); the dispatcher hands the claimed row
to that channel's adapter and records the :class:`~firewatch.alerting.delivery.Attempt` it
returns. Every adapter's ``send`` **never raises**: a failure is an attempt with its error,
which the dispatcher retries with backoff and finally gives up on (``dead``). Adapters are
thread-safe: the dispatcher's pool threads share them.

=====================  ===================================  ===========================
channel                adapter                              configured by
=====================  ===================================  ===========================
``command_center``     :class:`WebhookChannel` (signed      ``FIREWATCH_WEBHOOK_COMMAND_
``supervisor``         POST, ``alerting/delivery.py``)      CENTER_URL``, ``…_SUPERVISOR_URL``,
``notify``                                                  ``…_NOTIFY_URL``
``email``              ``EmailChannel`` (SMTP,              ``FIREWATCH_SMTP_HOST`` (+ port,
                       ``alerting/channel_email.py``)       user, password, from, STARTTLS)
``sms``, ``voice``     ``ProviderChannel`` (one generic     ``FIREWATCH_SMS_URL``,
                       HTTP provider,                       ``FIREWATCH_VOICE_URL`` (+ the
                       ``alerting/channel_provider.py``)    provider's token and secret)
=====================  ===================================  ===========================

A channel that is not configured has no adapter: its rows stay ``pending`` (and are sent
once it is configured and the dispatcher restarted), as webhooks always did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from firewatch.alerting.channel_email import EmailChannel
from firewatch.alerting.channel_provider import ProviderChannel, callback_url
from firewatch.alerting.delivery import Attempt, WebhookSender
from firewatch.core.settings import Settings
from firewatch.storage.outbox import (
    CHANNELS,
    COMMAND_CENTER,
    EMAIL,
    NOTIFY,
    SMS,
    SUPERVISOR,
    VOICE,
    OutboxRow,
)

#: What configures each channel (the variable named when its rows wait for it).
SETTING_OF = {
    COMMAND_CENTER: "FIREWATCH_WEBHOOK_COMMAND_CENTER_URL",
    SUPERVISOR: "FIREWATCH_WEBHOOK_SUPERVISOR_URL",
    NOTIFY: "FIREWATCH_WEBHOOK_NOTIFY_URL",
    VOICE: "FIREWATCH_VOICE_URL",
    SMS: "FIREWATCH_SMS_URL",
    EMAIL: "FIREWATCH_SMTP_HOST",
}


class Channel(Protocol):
    """One way of delivering an outbox row."""

    #: the ``outbox.channel`` it delivers
    name: str
    #: the longest one :meth:`send` takes (the dispatcher's lease covers it)
    attempt_bound_s: float

    def send(self, row: OutboxRow) -> Attempt:
        """Deliver ``row`` once. Never raises: every failure is an attempt with its error."""
        ...

    def close(self) -> None:
        """Release what the adapter holds (connections); :meth:`send` is not called after."""
        ...


class WebhookChannel:
    """A webhook channel: the row's signed JSON envelope POSTed to ``url`` by a shared
    :class:`~firewatch.alerting.delivery.WebhookSender` (which its owner closes)."""

    def __init__(self, name: str, url: str, sender: WebhookSender) -> None:
        self.name = name
        self.url = url
        self._sender = sender
        self.attempt_bound_s = sender.attempt_bound_s

    def send(self, row: OutboxRow) -> Attempt:
        return self._sender.send(row, self.url)

    def close(self) -> None:
        """Nothing: the sender is shared (:class:`ChannelSet` closes it)."""


def webhook_urls(settings: Settings) -> dict[str, str]:
    """Webhook channel -> URL, the configured ones only, in priority order."""
    configured = {
        COMMAND_CENTER: settings.webhook_command_center_url,
        SUPERVISOR: settings.webhook_supervisor_url,
        NOTIFY: settings.webhook_notify_url,
    }
    return {ch: url for ch, url in configured.items() if url}


class ChannelSet:
    """The configured channels of one dispatcher, by name in priority order
    (``storage/outbox.py``: ``CHANNELS``), and what they share; :meth:`close` closes all."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float], connections: int) -> None:
        timeout = settings.webhook_timeout_s
        self._sender = WebhookSender(
            settings.webhook_secret, timeout_s=timeout, connections=connections, clock=clock
        )
        found: dict[str, Channel] = {
            name: WebhookChannel(name, url, self._sender)
            for name, url in webhook_urls(settings).items()
        }
        if settings.smtp_host:
            found[EMAIL] = EmailChannel(settings)
        receipts = callback_url(settings)
        for name, url in ((SMS, settings.sms_url), (VOICE, settings.voice_url)):
            if url:
                found[name] = ProviderChannel(
                    name,
                    url,
                    token=settings.provider_token,
                    secret=settings.provider_secret or "",
                    callback_url=receipts,
                    timeout_s=timeout,
                    connections=connections,
                    clock=clock,
                )
        self.by_name: dict[str, Channel] = {ch: found[ch] for ch in CHANNELS if ch in found}
        #: the longest one attempt of any channel takes
        self.attempt_bound_s = max(
            [self._sender.attempt_bound_s, *(c.attempt_bound_s for c in self.by_name.values())]
        )

    def close(self) -> None:
        for channel in self.by_name.values():
            channel.close()
        self._sender.close()


def missing_setting(channel: str) -> str:
    """Why a channel's rows wait: the variable that would configure it."""
    if channel in SETTING_OF:
        return f"{SETTING_OF[channel]} is not set"
    return "it is not a known channel"

"""The e-mail channel: an outbox row of channel ``email`` as one message over SMTP (the
standard library's ``smtplib``; docs/adr/0009).

Per attempt: connect to ``FIREWATCH_SMTP_HOST``:``FIREWATCH_SMTP_PORT``, ``EHLO``,
``STARTTLS`` unless ``FIREWATCH_SMTP_STARTTLS=false`` (the certificate checked against the
system's CAs), ``AUTH`` when ``FIREWATCH_SMTP_USER`` is set, one message, ``QUIT``. A
connection per message is plenty: person notifications are few (rate limited per unit)
and a held connection would need keep-alive handling for no gain.

The message: ``From`` ``FIREWATCH_SMTP_FROM``, ``To`` the recipient's ``to``, the
payload's ``subject`` and ``text`` (``alerting/escalation.py`` writes them) followed by
the alert's facts, and a ``Message-ID`` fixed per outbox row
(``<firewatch.outbox.<id>@<sender's domain>>``), so that a retried message (delivery is
at least once) is recognisably the same one; it is recorded as the attempt's message id.

:meth:`EmailChannel.send` never raises: the server's 250 is a success (status code 250);
a refusal is an attempt with the server's code and text ("SMTP 550: …"), any other failure
(refused connection, timeout, TLS) one with its error and no code; the dispatcher retries
both.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from firewatch.alerting.delivery import Attempt, clean_error
from firewatch.core.settings import Settings
from firewatch.core.signatures import DELIVERY_HEADER
from firewatch.storage.outbox import EMAIL, OutboxRow

log = logging.getLogger(__name__)

SMTP_OK = 250


def _line(text: Any) -> str:
    """Header-safe text: one line."""
    return " ".join(str(text).split())


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def message_id(row: OutboxRow, sender: str) -> str:
    """The row's fixed ``Message-ID``."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<firewatch.outbox.{row.id}@{_line(domain)}>"


def build_message(row: OutboxRow, sender: str, to: str) -> EmailMessage:
    """The e-mail of an outbox row (see the module docstring)."""
    payload = _table(row.payload)
    alert, unit = _table(payload.get("alert")), _table(payload.get("unit"))
    msg = EmailMessage()
    msg["Subject"] = _line(payload.get("subject") or f"[Firewatch] notification {row.id}")
    msg["From"] = _line(sender)
    msg["To"] = _line(to)
    msg["Date"] = format_datetime(row.created_at)
    msg["Message-ID"] = message_id(row, sender)
    msg[DELIVERY_HEADER] = str(row.id)
    facts = [
        ("alert", alert.get("id")),
        ("type", alert.get("type")),
        ("severity", alert.get("severity")),
        ("state", alert.get("state")),
        ("unit", f"{unit.get('name') or ''} ({unit.get('id')})" if unit else None),
        ("device", alert.get("device_id")),
        ("first seen", alert.get("first_seen")),
        ("escalation level", alert.get("escalation_level")),
    ]
    lines = [str(payload.get("text") or payload.get("note") or "")]
    lines += ["", *(f"{k}: {v}" for k, v in facts if v not in (None, ""))]
    lines += ["", "Acknowledge the alert in the Firewatch console to stop the escalation."]
    msg.set_content("\n".join(lines))
    return msg


class EmailChannel:
    """SMTP delivery of ``email`` rows (thread-safe: a connection per message)."""

    name = EMAIL

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("the e-mail channel needs FIREWATCH_SMTP_HOST")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.user = settings.smtp_user
        self.password = settings.smtp_password or ""
        self.sender = settings.smtp_from
        self.starttls = settings.smtp_starttls
        self.timeout_s = settings.webhook_timeout_s
        self.url = f"smtp://{self.host}:{self.port}"
        #: connect, EHLO, STARTTLS, AUTH, the message, QUIT: a timeout each at most
        self.attempt_bound_s = 6 * self.timeout_s

    def send(self, row: OutboxRow) -> Attempt:
        """One SMTP delivery of ``row``. Never raises: every failure is a result."""
        started = time.monotonic()
        to = row.recipient.get("to") if isinstance(row.recipient, dict) else None
        if not isinstance(to, str) or not to:
            return Attempt(row, self.url, None, "the recipient has no e-mail address", 0.0)
        status: int | None = None
        error: str | None = None
        msg_id: str | None = None
        try:
            msg = build_message(row, self.sender, to)
            msg_id = msg["Message-ID"]
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(msg, from_addr=self.sender, to_addrs=[to])
            status = SMTP_OK
        except smtplib.SMTPRecipientsRefused as err:
            code, text = next(iter(err.recipients.values()), (None, b""))
            status = code
            error = f"SMTP {code}: {_decode(text)}"
        except smtplib.SMTPResponseException as err:
            status = err.smtp_code
            error = f"SMTP {err.smtp_code}: {_decode(err.smtp_error)}"
        except (smtplib.SMTPException, OSError) as err:
            error = f"{type(err).__name__}: {err}"
        except Exception as err:  # a bug: still a result, so the row is retried
            log.exception("outbox %d: e-mail to %s failed", row.id, self.url)
            error = f"{type(err).__name__}: {err}"
        duration = time.monotonic() - started
        if error is not None and status is not None and 200 <= status < 300:
            status = None  # never a success with an error
        return Attempt(row, self.url, status, clean_error(error), duration, msg_id)

    def close(self) -> None:
        """Nothing is held between messages."""


def _decode(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())

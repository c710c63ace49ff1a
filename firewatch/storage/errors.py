"""Which database errors mean "the database is unavailable" and which mean "this data".

Every service that writes or reads in a loop must tell the two apart, because they call
for opposite answers. An unavailable database (connection lost, server shutting down, out
of disk, a failover to a read-only standby, a schema not yet migrated) is waited out: retry
with backoff, lose nothing, never skip. An error caused by the rows themselves (a value the
column cannot hold, a constraint, a row too big) would fail again on every retry: retrying
it is a crash loop that stops everything behind it, so the offending rows are isolated,
recorded with the error, and skipped.

The rule, by SQLSTATE class (PostgreSQL appendix A): connection exceptions (08), operator
intervention (57), insufficient resources (53), system errors (58), internal errors (XX),
transaction rollbacks (40: serialisation failures, deadlocks), lock timeouts (55P03) and
query cancellation (57014), plus a few states that say the *schema or role* is not usable
(read-only transaction 25006, insufficient privilege 42501, undefined table, column or
function, invalid catalog 3D000, invalid authorisation 28) are **unavailable**. Everything
else — above all data exceptions (22), integrity violations (23) and program limits (54) —
and any non-database exception raised while adapting a row (an unencodable string, an
integer too large for its column) is **the data's fault**.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg

#: SQLSTATE classes (first two characters) that mean the database cannot serve now.
_UNAVAILABLE_CLASSES = frozenset({"08", "28", "3D", "40", "53", "57", "58", "XX"})
#: Single SQLSTATEs of other classes that mean the same (schema, role or standby).
_UNAVAILABLE_STATES = frozenset(
    {
        "25006",  # read_only_sql_transaction: connected to a standby after a failover
        "42501",  # insufficient_privilege
        "42P01",  # undefined_table: not migrated yet (or being migrated)
        "42703",  # undefined_column
        "42883",  # undefined_function
        "55P03",  # lock_not_available
        "55006",  # object_in_use
    }
)


def database_unavailable(err: BaseException) -> bool:
    """True if ``err`` says the database cannot serve right now (retry later, skip
    nothing); False if it is about the data being written or read (isolate it)."""
    if isinstance(err, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    if isinstance(err, psycopg.Error):
        state = err.sqlstate or ""
        if not state:  # raised by the client library without a server answer
            return isinstance(err, psycopg.InternalError)
        return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES
    return False


def describe(err: BaseException, limit: int = 500) -> str:
    """A one-line account of ``err`` safe to store in a ``text`` column: its class,
    SQLSTATE when it has one, and message, without NUL or unpaired surrogates, at most
    ``limit`` characters."""
    state = getattr(err, "sqlstate", None)
    head = type(err).__name__ + (f" ({state})" if state else "")
    text = f"{head}: {err}".replace("\x00", "\\x00").replace("\n", " ").strip()
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alone(
    conn: psycopg.Connection[Any], work: Callable[[], None], log: logging.Logger, what: str
) -> str | None:
    """Run ``work`` in a savepoint of ``conn``'s transaction, so one item of a batch cannot
    fail the others: None when it is done; when it fails for a reason other than the
    database being unavailable, its writes are undone, the error is logged with its
    traceback (``"<what> could not be handled"``) and its description is returned (for
    ``skipped_rows``). An outage propagates: the whole batch is retried after reconnecting."""
    try:
        with conn.transaction():
            work()
    except Exception as err:
        if isinstance(err, psycopg.Error) and database_unavailable(err):
            raise
        log.exception("%s could not be handled", what)
        return describe(err)
    return None

"""People, API tokens and the audit of both, in PostgreSQL (migration 0012; docs/people.md).

This module owns the SQL of ``people``, ``api_tokens`` and ``auth_events``. Functions run in
the caller's transaction unless they say otherwise; every function that changes an account
or a token writes its ``auth_events`` row in the same transaction, so a change is never
without its audit. Password hashes come from the caller (``firewatch/core/passwords.py``);
token plaintexts leave :func:`create_token` once and are never stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.people import (
    AuthEvent,
    Conflict,
    NotFound,
    PeopleError,
    Person,
    Role,
    TokenInfo,
    check_scope,
    looks_like_token,
    new_token,
    normalise_username,
    token_digest,
    token_prefix,
)
from firewatch.core.sessions import RecentFailures, login_key

#: ``last_used_at`` is written at most this often per token (a busy machine would otherwise
#: write on every request), and a refused known token is audited at most this often.
TOUCH_EVERY = timedelta(minutes=1)
_ATTEMPTS = 5  # new tokens tried when a prefix is taken (30 random bits: rare)

#: The ``people p`` columns :func:`person_of` reads (``storage/sessions.py`` joins them too).
PERSON_COLUMNS = (
    "p.id, p.username, p.display_name, p.role, p.unit_id, p.vendor, p.active,"
    " p.password_hash IS NOT NULL AS has_password, p.created_at, p.password_changed_at"
)


def person_of(row: Any) -> Person:
    """The :class:`Person` of a row holding :data:`PERSON_COLUMNS` (a dict row)."""
    return Person(
        id=int(row["id"]),
        username=row["username"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        unit_id=row["unit_id"],
        vendor=row["vendor"],
        active=bool(row["active"]),
        has_password=bool(row["has_password"]),
        created_at=row["created_at"],
        password_changed_at=row["password_changed_at"],
    )


def _token(row: Any) -> TokenInfo:
    return TokenInfo(
        prefix=row["prefix"],
        username=row["username"],
        name=row["name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def record_auth_event(
    conn: psycopg.Connection[Any],
    *,
    username: str,
    event: AuthEvent,
    actor: str,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one audit row (``at``: default the database's now)."""
    conn.execute(
        "INSERT INTO auth_events (at, username, event, actor, detail)"
        " VALUES (coalesce(%s, now()), %s, %s, %s, %s)",
        (at, username, event.value, actor, Jsonb(detail or {})),
    )


def add_person(
    conn: psycopg.Connection[Any],
    *,
    username: str,
    role: Role,
    actor: str,
    display_name: str = "",
    unit_id: str | None = None,
    vendor: str | None = None,
    password_hash: str | None = None,
) -> Person:
    """A new active person (display name: the username unless given); audited
    ``user_added`` (and ``password_set`` with a hash). :class:`Conflict` when the username
    is taken, :class:`NotFound` for an unknown unit or vendor, :class:`PeopleError` for a
    bad username or scope."""
    name = normalise_username(username)
    unit, vend = check_scope(role, unit_id, vendor)
    # A vendor account names a registered vendor (issue 14): a typo ("Acme" for "acme")
    # would give an account that silently sees nothing.
    if vend is not None and (
        conn.execute("SELECT 1 FROM vendors WHERE id = %s", (vend,)).fetchone() is None
    ):
        raise NotFound(f"no vendor {vend!r}: register it first (firewatch vendor add)")
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "INSERT INTO people AS p (username, display_name, role, unit_id, vendor,"
                " password_hash, password_changed_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)"
                f" RETURNING {PERSON_COLUMNS}",
                (
                    name,
                    display_name.strip() or name,
                    role.value,
                    unit,
                    vend,
                    password_hash,
                    password_hash is not None,
                ),
            ).fetchone()
            assert row is not None
            detail = {"role": role.value, "unit_id": unit, "vendor": vend}
            record_auth_event(
                conn, username=name, event=AuthEvent.USER_ADDED, actor=actor, detail=detail
            )
            if password_hash is not None:
                record_auth_event(conn, username=name, event=AuthEvent.PASSWORD_SET, actor=actor)
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"username {name!r} is taken") from None
    except psycopg.errors.ForeignKeyViolation:
        raise NotFound(f"no unit {unit!r}") from None
    return person_of(row)


def get_person(conn: psycopg.Connection[Any], person_id: int) -> Person | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {PERSON_COLUMNS} FROM people p WHERE p.id = %s", (person_id,)
        ).fetchone()
    return None if row is None else person_of(row)


def get_person_by_username(conn: psycopg.Connection[Any], username: str) -> Person | None:
    """The person with that username (compared in its stored, lowercase form)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {PERSON_COLUMNS} FROM people p WHERE p.username = %s",
            (username.strip().lower(),),
        ).fetchone()
    return None if row is None else person_of(row)


def _require(conn: psycopg.Connection[Any], username: str) -> Person:
    found = get_person_by_username(conn, username)
    if found is None:
        raise NotFound(f"no user {username!r}")
    return found


def list_people(conn: psycopg.Connection[Any]) -> list[Person]:
    """Everyone, active or not, by username."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {PERSON_COLUMNS} FROM people p ORDER BY p.username")
        return [person_of(r) for r in rows.fetchall()]


def set_password(
    conn: psycopg.Connection[Any], username: str, password_hash: str, *, actor: str
) -> Person:
    """Replace a person's password hash (made by the caller); audited ``password_set``."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE people AS p SET password_hash = %s, password_changed_at = now()"
            f" WHERE p.username = %s RETURNING {PERSON_COLUMNS}",
            (password_hash, username.strip().lower()),
        ).fetchone()
        if row is None:
            raise NotFound(f"no user {username!r}")
        record_auth_event(conn, username=row["username"], event=AuthEvent.PASSWORD_SET, actor=actor)
    return person_of(row)


def password_hash_of(conn: psycopg.Connection[Any], username: str) -> str | None:
    """The stored hash of an active person (None: unknown, inactive or no password), for
    the login of a later slice to verify against."""
    row = conn.execute(
        "SELECT password_hash FROM people WHERE username = %s AND active",
        (username.strip().lower(),),
    ).fetchone()
    return None if row is None else row[0]


def set_active(conn: psycopg.Connection[Any], username: str, active: bool, *, actor: str) -> Person:
    """Deactivate (or reactivate) a person. An inactive person's tokens are refused (they
    are kept, not revoked). Audited ``deactivated`` / ``activated`` when it changes."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        before = _require(conn, username)
        if before.active == active:
            return before
        row = cur.execute(
            f"UPDATE people AS p SET active = %s WHERE p.id = %s RETURNING {PERSON_COLUMNS}",
            (active, before.id),
        ).fetchone()
        assert row is not None
        event = AuthEvent.ACTIVATED if active else AuthEvent.DEACTIVATED
        record_auth_event(conn, username=before.username, event=event, actor=actor)
    return person_of(row)


def create_token(
    conn: psycopg.Connection[Any],
    person: Person | str,
    name: str,
    expires_at: datetime,
    *,
    actor: str,
    now: datetime,
) -> str:
    """A new API token for an active person, valid from ``now`` until ``expires_at``;
    audited ``token_created`` (with its prefix). Returns the plaintext: the only time it
    exists outside the caller's hands, since only its SHA-256 and prefix are stored."""
    owner = _require(conn, person if isinstance(person, str) else person.username)
    if not owner.active:
        raise Conflict(f"user {owner.username!r} is deactivated")
    if not name.strip():
        raise PeopleError("a token needs a name (what uses it)")
    if expires_at <= now:
        raise PeopleError("a token must expire after it is created")
    for _ in range(_ATTEMPTS):
        token = new_token()
        try:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO api_tokens (person_id, name, prefix, token_sha256,"
                    " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        owner.id,
                        name.strip(),
                        token_prefix(token),
                        token_digest(token),
                        now,
                        expires_at,
                    ),
                )
                record_auth_event(
                    conn,
                    username=owner.username,
                    event=AuthEvent.TOKEN_CREATED,
                    actor=actor,
                    detail={
                        "prefix": token_prefix(token),
                        "name": name.strip(),
                        "expires_at": expires_at.isoformat(),
                    },
                    at=now,
                )
        except psycopg.errors.UniqueViolation:
            continue  # the prefix is taken: draw another token
        return token
    raise RuntimeError(f"no free token prefix in {_ATTEMPTS} attempts")


def token_owner(conn: psycopg.Connection[Any], token: str, now: datetime) -> Person | None:
    """The active person a token belongs to at ``now``, or None: unknown, malformed,
    revoked, expired, or its person inactive (the caller must not say which). Records
    ``last_used_at`` (at most once per :data:`TOUCH_EVERY`); a known token refused is
    audited (``token_used_expired`` / ``token_rejected``, at most once per
    :data:`TOUCH_EVERY` per token and event)."""
    if not looks_like_token(token):
        return None
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {PERSON_COLUMNS}, t.id AS token_id, t.prefix, t.expires_at, t.revoked_at"
            " FROM api_tokens t JOIN people p ON p.id = t.person_id"
            " WHERE t.token_sha256 = %s",
            (token_digest(token),),
        ).fetchone()
        if row is None or row["prefix"] != token_prefix(token):
            return None
        refused: tuple[AuthEvent, str] | None = None
        if row["revoked_at"] is not None and row["revoked_at"] <= now:
            refused = AuthEvent.TOKEN_REJECTED, "revoked"
        elif row["expires_at"] <= now:
            refused = AuthEvent.TOKEN_USED_EXPIRED, "expired"
        elif not row["active"]:
            refused = AuthEvent.TOKEN_REJECTED, "user deactivated"
        if refused is not None:
            event, why = refused
            cur.execute(
                "INSERT INTO auth_events (at, username, event, actor, detail)"
                " SELECT %(at)s, %(username)s, %(event)s, 'api',"
                " jsonb_build_object('prefix', %(prefix)s::text, 'reason', %(why)s::text)"
                " WHERE NOT EXISTS (SELECT 1 FROM auth_events WHERE username = %(username)s"
                " AND event = %(event)s AND detail->>'prefix' = %(prefix)s"
                " AND at > %(since)s)",
                {
                    "at": now,
                    "username": row["username"],
                    "event": event.value,
                    "prefix": row["prefix"],
                    "why": why,
                    "since": now - TOUCH_EVERY,
                },
            )
            return None
        cur.execute(
            "UPDATE api_tokens SET last_used_at = %s WHERE id = %s"
            " AND (last_used_at IS NULL OR last_used_at <= %s)",
            (now, row["token_id"], now - TOUCH_EVERY),
        )
    return person_of(row)


def revoke_token(
    conn: psycopg.Connection[Any], prefix: str, *, actor: str, now: datetime
) -> TokenInfo:
    """Revoke the token named by ``prefix`` from ``now`` on; audited ``token_revoked``.
    Revoking it again changes nothing and keeps the first revocation time."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE api_tokens t SET revoked_at = %s FROM people p"
            " WHERE p.id = t.person_id AND t.prefix = %s AND t.revoked_at IS NULL"
            " RETURNING t.*, p.username",
            (now, prefix.strip()),
        ).fetchone()
        if row is not None:
            record_auth_event(
                conn,
                username=row["username"],
                event=AuthEvent.TOKEN_REVOKED,
                actor=actor,
                detail={"prefix": row["prefix"], "name": row["name"]},
                at=now,
            )
            return _token(row)
        row = cur.execute(
            "SELECT t.*, p.username FROM api_tokens t JOIN people p ON p.id = t.person_id"
            " WHERE t.prefix = %s",
            (prefix.strip(),),
        ).fetchone()
    if row is None:
        raise NotFound(f"no token with prefix {prefix!r}")
    return _token(row)


def list_tokens(conn: psycopg.Connection[Any], username: str) -> list[TokenInfo]:
    """A person's tokens, newest first (revoked and expired ones too)."""
    owner = _require(conn, username)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT t.*, p.username FROM api_tokens t JOIN people p ON p.id = t.person_id"
            " WHERE t.person_id = %s ORDER BY t.created_at DESC, t.id DESC",
            (owner.id,),
        ).fetchall()
    return [_token(r) for r in rows]


# --- login: rehash and throttling reads (issue 12, second slice; docs/people.md) -----------


def update_password_hash(
    conn: psycopg.Connection[Any], username: str, old_hash: str, new_hash: str
) -> bool:
    """Replace a hash that still verifies but was made with other parameters (pwdlib's
    ``verify_and_update`` at login) by ``new_hash`` of the same password. Only if the stored
    hash is still ``old_hash`` (a concurrent ``user passwd`` wins). Not audited and
    ``password_changed_at`` kept: the password is the same. True if it was replaced."""
    cur = conn.execute(
        "UPDATE people SET password_hash = %s WHERE username = %s AND password_hash = %s",
        (new_hash, username.strip().lower(), old_hash),
    )
    return cur.rowcount == 1


def recent_failures(
    conn: psycopg.Connection[Any], username: str, ip: str, since: datetime
) -> RecentFailures:
    """The ``login_failed`` audit rows after ``since``, oldest first: those of ``username``
    (in its :func:`login_key` form, as the login audits it) and those from ``ip``."""
    by_user = conn.execute(
        "SELECT at FROM auth_events WHERE username = %s AND event = %s AND at > %s ORDER BY at",
        (login_key(username), AuthEvent.LOGIN_FAILED.value, since),
    ).fetchall()
    by_ip = conn.execute(
        "SELECT at FROM auth_events WHERE detail->>'ip' = %s AND event = %s AND at > %s"
        " ORDER BY at",
        (ip, AuthEvent.LOGIN_FAILED.value, since),
    ).fetchall()
    return RecentFailures(tuple(r[0] for r in by_user), tuple(r[0] for r in by_ip))

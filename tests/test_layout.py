"""The layout rules that imports cannot express (import-linter checks the others).

**Where SQL lives** (CONTRIBUTING.md): every SQL statement the running services execute is
in ``firewatch/storage/``, one module per table family; services call its functions. Outside
``storage/``, ``lab/`` and ``simulators/`` no module may hold a string that is an SQL
statement, nor call ``execute`` / ``executemany`` itself. The one exception is ``LISTEN``
(a worker subscribing to a channel whose name storage defines).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import firewatch

PACKAGE = Path(firewatch.__file__).parent
#: May hold and run SQL: the owner, and what measures or simulates (not a running service).
SQL_HOMES = ("storage", "lab", "simulators")

#: The start of an SQL statement, as this code base writes them (keywords in capitals).
#: Prose that merely mentions a keyword ("Time to COPY and commit") does not match.
_SQL = re.compile(
    r"""\s*(?:
        SELECT\s | INSERT\s+INTO\s | UPDATE\s+\S+\s+SET\s | DELETE\s+FROM\s | MERGE\s+INTO\s
      | WITH\s+(?:RECURSIVE\s+)?\w+(?:\s*\([^)]*\))?\s+AS\s*(?:(?:NOT\s+)?MATERIALIZED\s*)?\(
      | COPY\s.*\b(?:FROM|TO)\s+(?:STDIN|STDOUT)\b
      | (?:CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+|TEMP(?:ORARY)?\s+|UNIQUE\s+)*
            (?:TABLE|INDEX|VIEW|MATERIALIZED|FUNCTION|PROCEDURE|TRIGGER|SEQUENCE|SCHEMA
             |EXTENSION|TYPE|DATABASE|ROLE|USER|POLICY)\b
      | TRUNCATE\s | (?:UN)?LISTEN\s | NOTIFY\s | CALL\s+\w+\s*\( | EXPLAIN\s | LOCK\s+TABLE\s
      | SET\s+(?:LOCAL\s+|SESSION\s+)?\w+\s*(?:=|TO\s)
      | (?:BEGIN|COMMIT|ROLLBACK|VACUUM|ANALYZE)\b[\w\s,.()]*;?\s*$
    )""",
    re.VERBOSE | re.DOTALL,
)
_RUNS_SQL = frozenset({"execute", "executemany"})
_ALLOWED = re.compile(r"\s*LISTEN\s")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _text(node: ast.expr) -> str | None:
    """The text of a string literal or f-string (``{}`` for each replacement field)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def sql_findings(source: str, path: str = "<string>") -> list[Finding]:
    """SQL statements held in string literals and f-strings of ``source`` (not in its
    docstrings or other string statements: those are never executed), and calls of
    ``execute`` / ``executemany``. ``LISTEN`` statements are allowed."""
    tree = ast.parse(source, path)
    skip: set[int] = set()  # nodes that are not candidate statements
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and _text(node.value) is not None:
            skip.add(id(node.value))  # a docstring, or a string used as a comment
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)  # judged as part of the whole f-string
    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _RUNS_SQL:
                first = _text(node.args[0]) if node.args else None
                if first is None or not _ALLOWED.match(first):
                    found.append(Finding(path, node.lineno, f"calls .{node.func.attr}()"))
            continue
        if id(node) in skip or not isinstance(node, ast.expr):
            continue
        text = _text(node)
        if text is not None and _SQL.match(text) and not _ALLOWED.match(text):
            snippet = " ".join(text.split())[:60]
            found.append(Finding(path, node.lineno, f"holds SQL {snippet!r}"))
    return found


def test_sql_lives_in_storage() -> None:
    """CONTRIBUTING.md, "Where SQL lives": move the statement into its table family's
    module in firewatch/storage/ and call a function of it."""
    found: list[Finding] = []
    for file in sorted(PACKAGE.rglob("*.py")):
        rel = file.relative_to(PACKAGE)
        if rel.parts[0] in SQL_HOMES:
            continue
        found += sql_findings(file.read_text("utf-8"), f"firewatch/{rel.as_posix()}")
    assert not found, "SQL outside firewatch/storage/:\n" + "\n".join(map(str, found))


def test_sql_homes_exist() -> None:
    """A renamed home would silently stop being exempt (the check above would then fail
    loudly, which is fine) or, worse, a typo here would exempt nothing: keep them real."""
    assert all((PACKAGE / home).is_dir() for home in SQL_HOMES)


_FLAGGED = '''
_Q = "SELECT id FROM devices"
_W = """
WITH inserted AS (INSERT INTO t SELECT * FROM s RETURNING *) SELECT count(*) FROM inserted
"""
def f(conn, table, cols):
    conn.execute("SELECT 1")
    cur.copy(f"COPY _stage_{table} ({cols}) FROM STDIN (FORMAT BINARY)")
    conn.execute(_Q)
    cur.executemany(statement, rows)
    x = "INSERT INTO analytics_models (kind) VALUES (%s)"
    y = f"CREATE TEMP TABLE IF NOT EXISTS _stage_{table} (LIKE {table})"
    z = "UPDATE alerts SET state = %s" + where
    n = "SELECT pg_notify('firewatch_ingest', '')"
'''

_CLEAN = '''
"""Module docstring: SELECT id FROM devices; COPY _stage FROM STDIN; INSERT INTO x."""
HELP = "Time to COPY and commit one batch"
DESCRIPTION = "Rows per COPY flush."
OTHER = "select the scenario to run"
WORDS = "UPDATE the README when you change this"
def f(conn, channel):
    """SELECT * FROM telemetry is what this would do."""
    "INSERT INTO x -- a string statement is never executed"
    conn.execute(f"LISTEN {channel}")
    arr = values.copy()
    snapshot = dict(state).copy()
    # SELECT in a comment
'''


def test_the_check_flags_sql_and_nothing_else() -> None:
    flagged = sql_findings(_FLAGGED)
    assert sorted({f.line for f in flagged}) == [2, 3, 7, 8, 9, 10, 11, 12, 13, 14]
    assert sql_findings(_CLEAN) == []

"""The vendor guide (docs/vendor-guide.md and its Chinese twin docs/vendor-guide.zh.md)
checked against the code, so that it cannot drift (issue 14).

* Every example payload (``docs/examples/vendor/*.json``, and every payload block of both
  guides, which must be those files) is accepted by ingest's codec on the topic the guide
  shows it on, for the devices of ``docs/examples/vendor/devices.csv``, which the registry's
  CSV parser accepts; the mosquitto_pub example's payloads too.
* Every API answer the guides show fits its response model; the dead letter shown is what
  the codec makes of its payload; the conformance report shown is what the check prints.
* Every dead-letter reason is explained in both guides (the English table word for word as
  ``DEAD_LETTER_REASONS``); every finding code they name exists.
* Every API route and query parameter they name is in the app's OpenAPI schema; every
  ``firewatch`` command they show parses; the Python example compiles.
* The two guides have the same sections and the same code (comments aside), and the limits
  they quote are the configured ones.

Pure: no database, no broker (the app is created, never started).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shlex
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from firewatch.api.auth_schemas import MeOut
from firewatch.api.credential_schemas import CredentialOut, IssuedOut
from firewatch.api.registry_schemas import DeviceIn, ImportReportOut, ImportRowOut, VendorOut
from firewatch.api.vendor_schemas import ConformanceOut, DeadLetterOut
from firewatch.core.conformance import check
from firewatch.core.conformance_report import Device, Limits, Message
from firewatch.core.dead_letter_help import DEAD_LETTER_REASONS, explain
from firewatch.core.device_import import device_row, parse_devices_csv
from firewatch.core.domain import DeviceKind
from firewatch.core.rows import DeadLetter, EventRow, Reason, StatusRow, TelemetryRow
from firewatch.core.settings import Settings
from firewatch.ingest import codec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EN = DOCS / "vendor-guide.md"
ZH = DOCS / "vendor-guide.zh.md"
GUIDES = (EN, ZH)
EXAMPLES = DOCS / "examples" / "vendor"
TOPIC_ROOT = "firewatch/v1"
SETTINGS = Settings.model_construct()  # the defaults; the environment is not read
LIMITS = codec.Limits.from_settings(SETTINGS)

#: Each example file: the device and channel it is for, and the flags of a panel event.
PAYLOADS: dict[str, tuple[str, str, list[str] | None]] = {
    "water-telemetry.json": ("D-WD-002-W3", "telemetry", None),
    "water-tank-telemetry.json": ("D-WD-002-T3", "telemetry", None),
    "water-status.json": ("D-WD-002-W3", "status", None),
    "ebike-shed-telemetry.json": ("D-WD-002-E3", "telemetry", None),
    "ebike-shed-status.json": ("D-WD-002-E3", "status", None),
    "panel-event-system-status.json": ("D-WD-002-P3", "event", []),
    "panel-event-component-status.json": ("D-WD-002-P3", "event", ["fire"]),
    "panel-event-operation.json": ("D-WD-002-P3", "event", ["silence"]),
    "panel-status.json": ("D-WD-002-P3", "status", None),
    "last-will.json": ("D-WD-002-W3", "status", None),
}
ROW_OF_CHANNEL = {"telemetry": TelemetryRow, "event": EventRow, "status": StatusRow}

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_TOPIC = re.compile(r"firewatch/v1/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/(?:telemetry|event|status)")


# --- reading the guides ----------------------------------------------------------------------


@cache
def text(path: Path) -> str:
    return path.read_text("utf-8")


def blocks(path: Path, lang: str | None = None) -> Iterator[tuple[int, str, str]]:
    """The fenced code blocks of ``path``: (offset, language, body), in order."""
    for m in _FENCE.finditer(text(path)):
        if lang is None or m.group(1) == lang:
            yield m.start(), m.group(1), m.group(2)


def sections(path: Path) -> list[str]:
    """The text before the first ``## `` heading, then each ``## `` section."""
    return re.split(r"^(?=## )", text(path), flags=re.MULTILINE)


def shell_lines(path: Path) -> Iterator[str]:
    """The commands of the ``sh`` blocks, continuation lines joined, comments dropped."""
    for _, _, body in blocks(path, "sh"):
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                yield line


def table_rows(section: str) -> list[list[list[str]]]:
    """Each table of ``section``: its body rows, each a list of cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if current is None:
                current = []
                tables.append(current)
                continue  # the header
            if not set(line) <= set("|-: "):
                current.append(cells)
        else:
            current = None
    return tables


def plain(cell: str) -> str:
    return cell.replace("`", "")


def received(payload: dict[str, Any], after: timedelta = timedelta(seconds=2)) -> datetime:
    """A receive time ``after`` the payload's ``ts``."""
    ts = payload["ts"]
    if isinstance(ts, int | float):
        at = datetime.fromtimestamp(ts / 1000 if ts > 2e10 else ts, UTC)
    else:
        at = datetime.fromisoformat(ts)
    return at + after


# --- the example registry ----------------------------------------------------------------------


@cache
def registry() -> dict[str, codec.DeviceInfo]:
    parsed = parse_devices_csv((EXAMPLES / "devices.csv").read_text("utf-8"))
    return {r.id: codec.DeviceInfo(r.unit_id, r.kind) for r in parsed.rows}


def decode(topic: str, payload: bytes, at: datetime) -> codec.Row | DeadLetter:
    return codec.decode(topic, payload, at, root=TOPIC_ROOT, lookup=registry().get, limits=LIMITS)


def topic_of(device: str, channel: str) -> str:
    return f"{TOPIC_ROOT}/{registry()[device].unit_id}/{device}/{channel}"


def test_the_example_devices_file_is_a_valid_import() -> None:
    parsed = parse_devices_csv((EXAMPLES / "devices.csv").read_text("utf-8"))
    assert parsed.rejected == []
    assert {r.kind for r in parsed.rows} == set(DeviceKind)
    assert "vendor" not in parsed.columns, "a vendor's own file leaves the vendor out"
    for path in GUIDES:  # the guides show the file as it is
        assert (EXAMPLES / "devices.csv").read_text("utf-8") in text(path), path.name


# --- payloads ----------------------------------------------------------------------------------


def test_the_example_files_are_the_listed_ones() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted(PAYLOADS)


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_every_example_payload_is_accepted(name: str) -> None:
    device, channel, flags = PAYLOADS[name]
    raw = (EXAMPLES / name).read_bytes()
    row = decode(topic_of(device, channel), raw, received(json.loads(raw)))
    assert isinstance(row, ROW_OF_CHANNEL[channel]), row
    if flags is not None:
        assert isinstance(row, EventRow)
        assert row.flags == flags


def test_a_last_will_is_accepted_however_old_its_connection() -> None:
    will = (EXAMPLES / "last-will.json").read_bytes()
    weeks = timedelta(days=30)
    row = decode(topic_of("D-WD-002-W3", "status"), will, received(json.loads(will), weeks))
    assert isinstance(row, StatusRow)
    assert row.seq == 0
    assert row.state == "offline"
    data = (EXAMPLES / "water-telemetry.json").read_bytes()
    late = decode(topic_of("D-WD-002-W3", "telemetry"), data, received(json.loads(data), weeks))
    assert isinstance(late, DeadLetter)
    assert late.reason is Reason.TS_TOO_OLD


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_the_guides_show_the_example_payloads_on_their_topics(path: Path) -> None:
    files = {name: json.loads((EXAMPLES / name).read_bytes()) for name in PAYLOADS}
    shown: set[str] = set()
    for at, _, body in blocks(path, "json"):
        doc = json.loads(body)
        if not (isinstance(doc, dict) and "seq" in doc):
            continue
        same = [name for name, example in files.items() if example == doc]
        assert same, f"{path.name}: a payload that is no example file: {body}"
        shown.update(same)
        topics = _TOPIC.findall(text(path)[:at])
        assert topics, f"{path.name}: no topic before {body}"
        row = decode(topics[-1], body.encode(), received(doc))
        assert not isinstance(row, DeadLetter), (topics[-1], row)
        for name in same:  # the topic shown is the example's own
            assert topics[-1] == topic_of(*PAYLOADS[name][:2]), (name, topics[-1])
    assert shown == set(PAYLOADS), f"{path.name} does not show {set(PAYLOADS) - shown}"


def _mosquitto_pub(path: Path) -> list[str]:
    [line] = [li for li in shell_lines(path) if li.startswith("mosquitto_pub")]
    return shlex.split(line.replace("$TS", "2026-12-07T08:30:15Z"))


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_the_mosquitto_pub_example_is_accepted(path: Path) -> None:
    args = _mosquitto_pub(path)
    device = _option(args, "-i")
    assert _option(args, "-u") == device, "username = client id"
    assert _option(args, "-q") == _option(args, "--will-qos") == "1"
    assert _option(args, "-p") == "8883"
    assert "--cafile" in args
    for topic, payload in (
        (_option(args, "-t"), _option(args, "-m")),
        (_option(args, "--will-topic"), _option(args, "--will-payload")),
    ):
        assert topic.split("/")[3] == device
        row = decode(topic, payload.encode(), received(json.loads(payload)))
        assert not isinstance(row, DeadLetter), row
    assert _option(args, "--will-topic").endswith("/status")


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_the_python_example_compiles(path: Path) -> None:
    [(_, _, code)] = list(blocks(path, "python"))
    compile(code, f"{path.name}:python", "exec")
    assert "protocol=mqtt.MQTTv5" in code
    assert "tls_set(" in code
    assert "qos=1" in code


# --- API answers -------------------------------------------------------------------------------


def _check_model(model: type[BaseModel], doc: dict[str, Any]) -> None:
    assert set(doc) <= set(model.model_fields), (model.__name__, set(doc) - set(model.model_fields))
    model.model_validate(doc)


def _check_dead_letter(doc: dict[str, Any]) -> None:
    _check_model(DeadLetterOut, doc)
    payload = doc["payload_text"].encode()
    assert base64.b64decode(doc["payload_base64"]) == payload
    assert doc["payload_size"] == len(payload)
    assert not doc["payload_truncated"]
    assert doc["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert doc["meaning"] == explain(doc["reason"])
    unit, device, channel = doc["topic"].split("/")[2:]
    assert (doc["unit_id"], doc["device_id"], doc["channel"]) == (unit, device, channel)
    found = decode(doc["topic"], payload, datetime.fromisoformat(doc["received_at"]))
    assert isinstance(found, DeadLetter)
    assert (found.reason.value, found.detail) == (doc["reason"], doc["detail"])


def _check_issued(doc: dict[str, Any]) -> None:
    _check_model(IssuedOut, doc)
    device = doc["device_id"]
    assert doc["username"] == doc["client_id"] == device
    prefix = f"{TOPIC_ROOT}/{doc['unit_id']}/{device}/"
    assert doc["publish_topics"] == [prefix + c for c in ("telemetry", "event", "status")]
    assert doc["command_topic"] == prefix + "command"
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", doc["password"]), "secrets.token_urlsafe(24)"


def _check_device_in(doc: dict[str, Any]) -> None:
    body = DeviceIn.model_validate_json(json.dumps(doc))
    device_row(
        line=1,
        device_id=body.id,
        unit_id=body.unit_id,
        kind=body.kind,
        vendor=body.vendor,
        model=body.model,
        meta=body.metadata,
    )


def _check_import(doc: dict[str, Any]) -> None:
    _check_model(ImportReportOut, doc)
    for row in doc["rows"]:
        _check_model(ImportRowOut, row)
    outcomes = [r["outcome"] for r in doc["rows"]]
    assert doc["summary"] == {k: outcomes.count(k) for k in doc["summary"]}


def _kind_of(doc: Any) -> str:
    """Which API body an example is (a payload has ``seq``: checked above)."""
    if isinstance(doc, list):
        assert doc
        assert all("payload_base64" in d for d in doc)
        return "dead letters"
    if "seq" in doc:
        return "payload"
    keys = set(doc)
    if "password" in keys:
        return "issued"
    if "summary" in keys:
        return "import"
    if "role" in keys:
        return "me"
    if "units" in keys:
        return "vendor"
    if keys >= {"state", "device_id"}:
        return "credential"
    if keys >= {"id", "unit_id", "kind"}:
        return "device"
    raise AssertionError(f"a JSON example the test does not know: {doc}")


def _check_dead_letters(doc: list[dict[str, Any]]) -> None:
    for entry in doc:
        _check_dead_letter(entry)


def _checker(model: type[BaseModel]) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _check_model(model, doc)


#: How each kind of JSON example is checked (payloads: by the test of the payloads).
CHECKS: dict[str, Callable[[Any], None]] = {
    "payload": lambda doc: None,
    "me": _checker(MeOut),
    "vendor": _checker(VendorOut),
    "device": _check_device_in,
    "import": _check_import,
    "issued": _check_issued,
    "credential": _checker(CredentialOut),
    "dead letters": _check_dead_letters,
}


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_the_api_examples_fit_the_api(path: Path) -> None:
    seen = set()
    for _, _, body in blocks(path, "json"):
        doc = json.loads(body)
        kind = _kind_of(doc)
        CHECKS[kind](doc)
        seen.add(kind)
    assert seen == set(CHECKS)


# --- dead letters, the check ----------------------------------------------------------------


def test_every_reason_has_an_explanation() -> None:
    assert set(DEAD_LETTER_REASONS) == {r.value for r in Reason}


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_every_dead_letter_reason_is_in_the_guide(path: Path) -> None:
    for reason in Reason:
        assert f"| `{reason.value}` |" in text(path), reason


def test_the_english_reasons_are_the_codes_words() -> None:
    [reasons] = [
        t for s in sections(EN) for t in table_rows(s) if t and plain(t[0][0]) == "oversized"
    ]
    assert {plain(r[0]): (plain(r[1]), plain(r[2])) for r in reasons} == {
        k: (v.meaning, v.fix) for k, v in DEAD_LETTER_REASONS.items()
    }


def _finding_codes() -> set[str]:
    source = (ROOT / "firewatch" / "core" / "conformance_findings.py").read_text("utf-8")
    return set(re.findall(r'Finding\(\s*(?:[^"()]|\([^()]*\))*?"(\w+)"', source))


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_the_check_section_names_real_fields_and_findings(path: Path) -> None:
    check_section = sections(path)[7]
    fields, findings = table_rows(check_section)
    named = [n for row in fields for n in re.findall(r"`(\w+)`", row[0])]
    assert named
    assert set(named) <= set(ConformanceOut.model_fields), named
    codes = [n for row in findings for n in re.findall(r"`(\w+)`", row[0])]
    assert "dead_letters" in codes
    assert set(codes) <= _finding_codes(), codes


def _sample_report() -> str:
    """The report the guides show: D-WD-002-W3 over 15 minutes, a reading every minute,
    one of them (seq 1850) sent in local time without offset and dead-lettered."""
    from firewatch.cli.vendor import print_report

    start = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    delay = [0.42, 0.61, 0.55, 0.48, 0.9, 0.52, 0.47, 0.58, 0, 0.44, 0.63, 0.5, 0.49, 0.71, 0.46]
    messages = [Message("status", 1841, start, start + timedelta(seconds=0.38))]
    for k, late in enumerate(delay):
        ts = start + timedelta(seconds=15 + 60 * k)
        if k != 8:
            messages.append(Message("telemetry", 1842 + k, ts, ts + timedelta(seconds=late)))
    [entry] = next(
        json.loads(body) for _, _, body in blocks(EN, "json") if body.lstrip().startswith("[")
    )
    dead = DeadLetter(
        datetime.fromisoformat(entry["received_at"]),
        entry["topic"],
        entry["payload_text"].encode(),
        Reason(entry["reason"]),
        entry["detail"],
    )
    report = check(
        Device("D-WD-002-W3", "U-WD-002", "water", "acme"),
        messages,
        [dead],
        start,
        start + timedelta(minutes=15),
        Limits.of(SETTINGS),
    )
    out = io.StringIO()
    print_report(report, out)
    return out.getvalue()


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_the_report_shown_is_what_the_check_prints(path: Path) -> None:
    [shown] = [b for _, _, b in blocks(path, "text") if b.startswith("D-WD-002-W3  water")]
    assert shown == _sample_report()


# --- routes and commands -------------------------------------------------------------------


@cache
def openapi() -> dict[str, Any]:
    from firewatch.api.app import create_app

    return create_app(SETTINGS, "postgresql://unused").openapi()


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The schema's path and OpenAPI operation of ``method`` on a path that matches ``path``
    (whose own placeholders and concrete ids both match the schema's ``{...}``)."""
    for template, item in openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None


#: What a vendor must find in the guide (issue 14's "done when").
VENDOR_ROUTES = {
    ("POST", "/devices"),
    ("POST", "/devices/import"),
    ("POST", "/devices/{device_id}/credentials"),
    ("GET", "/devices/{device_id}/credentials"),
    ("DELETE", "/devices/{device_id}/credentials"),
    ("POST", "/devices/{device_id}/decommission"),
    ("GET", "/dead-letters"),
    ("GET", "/devices/{device_id}/conformance"),
}


def _mentions(path: Path) -> Iterator[tuple[str, str, set[str]]]:
    """(method, path, query names) of every route the guide names: ``METHOD /path`` in the
    prose and the curl commands."""
    for m in re.finditer(r"\b(GET|POST|PATCH|PUT|DELETE) (/[\w{}./-]*)(\?[\w=&.-]*)?", text(path)):
        names = {q.split("=")[0] for q in (m.group(3) or "?")[1:].split("&") if q}
        yield m.group(1), m.group(2), names
    for line in shell_lines(path):
        if not line.startswith("curl "):
            continue
        args = shlex.split(line)
        [url] = [a for a in args if a.startswith("$API/")]
        route, _, query = url.removeprefix("$API").partition("?")
        names = {q.split("=")[0] for q in query.split("&") if q}
        if "-G" in args:
            names |= {
                args[i + 1].split("=")[0] for i, a in enumerate(args) if a.startswith("--data")
            }
            method = "GET"
        elif "-X" in args:
            method = args[args.index("-X") + 1]
        else:
            method = "POST" if any(a.startswith(("--data", "-d")) for a in args) else "GET"
        yield method, route, names


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_every_route_the_guide_names_exists(path: Path) -> None:
    covered = set()
    for method, route, names in _mentions(path):
        found = _operation(method, route)
        assert found is not None, f"{method} {route} is not in the API"
        template, op = found
        params = {p["name"] for p in op.get("parameters", ()) if p["in"] == "query"}
        assert names <= params, (method, route, names - params)
        covered.add((method, template))
    assert covered >= VENDOR_ROUTES, VENDOR_ROUTES - covered


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_every_firewatch_command_parses(path: Path) -> None:
    from firewatch.cli import build_parser

    commands = [line for line in shell_lines(path) if line.startswith("firewatch ")]
    assert len(commands) >= 7
    for line in commands:
        try:
            build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit as err:
            raise AssertionError(f"{line!r} does not parse") from err


# --- the two guides ---------------------------------------------------------------------------


def _code(path: Path) -> list[tuple[str, str]]:
    """The code blocks, comments dropped from shell and Python (they are translated)."""
    out = []
    for _, lang, body in blocks(path):
        if lang in ("sh", "python"):
            body = "\n".join(
                kept
                for line in body.splitlines()
                if (kept := re.sub(r"(^|\s+)#(?!!).*$", "", line).rstrip())
            )
        out.append((lang, body))
    return out


def test_the_guides_link_each_other_at_the_top() -> None:
    assert "[中文](vendor-guide.zh.md)" in "\n".join(text(EN).splitlines()[:4])
    assert "[English](vendor-guide.md)" in "\n".join(text(ZH).splitlines()[:4])


def _numbers(path: Path) -> list[str]:
    """The numbers of the ``## N. ...`` headings."""
    return re.findall(r"^## (\d+)\. ", text(path), flags=re.MULTILINE)


def test_the_guides_have_the_same_sections_and_code() -> None:
    for level in ("## ", "### "):
        en = [h for h in text(EN).splitlines() if h.startswith(level)]
        zh = [h for h in text(ZH).splitlines() if h.startswith(level)]
        assert len(en) == len(zh), (level, en, zh)
    assert _numbers(EN) == _numbers(ZH) == [str(n) for n in range(1, 9)]
    assert len(sections(EN)) == len(sections(ZH)) == 9, "no unnumbered ## section"
    assert _code(EN) == _code(ZH)
    assert [len(t) for s in sections(EN) for t in table_rows(s)] == [
        len(t) for s in sections(ZH) for t in table_rows(s)
    ], "the same tables, row for row"


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text(path)):
        if not re.match(r"[a-z]+:", target):
            assert (path.parent / target).exists(), target


def test_the_limits_the_guides_quote_are_the_configured_ones() -> None:
    s = SETTINGS
    assert s.topic_root == TOPIC_ROOT
    assert s.max_payload_bytes == 64 * 1024
    assert (s.ingest_device_rate_per_s, s.ingest_device_burst) == (20, 200)
    assert (s.max_clock_skew_future_s, s.max_backlog_age_s) == (300, 7 * 86_400)
    assert s.alert_offline_after_s == {"panel": 900, "water": 300, "ebike_shed": 300}
    assert (s.dead_letter_quota_per_device, s.dead_letter_window_s) == (20, 600)
    assert s.dead_letter_payload_cap_bytes == 4096
    assert (s.ingest_registry_refresh_s, s.analytics_registry_refresh_s) == (10, 30)
    assert (s.api_max_body_bytes, s.token_default_days, s.token_max_days) == (65_536, 90, 366)
    assert s.record_retention_days == 400
    broker = (ROOT / "mosquitto" / "conf.d" / "firewatch.conf").read_text("utf-8")
    assert re.search(r"^message_size_limit 262144$", broker, re.MULTILINE)  # 256 KiB
    assert re.search(r"^max_keepalive 300$", broker, re.MULTILINE)
    listener = (ROOT / "mosquitto" / "mosquitto.conf").read_text("utf-8")
    assert re.search(r"^listener 8883$", listener, re.MULTILINE)
    assert re.search(r"^tls_version tlsv1\.2$", listener, re.MULTILINE)
    assert re.search(r"^listener 1883 127\.0\.0\.1$", listener, re.MULTILINE)

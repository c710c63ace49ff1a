"""``firewatch gateway``: the GB/T 26875.3 gateway (firewatch/gateway/), until SIGTERM.

``firewatch/cli/__init__.py`` calls :func:`add_commands` with its top-level subparsers; the
service is imported inside the handler only, so ``firewatch --help`` stays quick.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from firewatch.cli.signals import stop_on_signals
from firewatch.core.settings import Settings
from firewatch.runtime.postgres import resolve_database_url


def cmd_gateway(settings: Settings, args: argparse.Namespace) -> int:
    """Serve devices until SIGTERM/SIGINT, then the stop sequence (firewatch/gateway/server.py)."""
    from firewatch.gateway.server import serve

    if not settings.mqtt_url:
        print(
            "firewatch: FIREWATCH_MQTT_URL is not set (the gateway publishes to the broker)",
            file=sys.stderr,
        )
        return 2
    update: dict[str, object] = {}
    if args.port is not None:
        update["gateway_port"] = args.port
    if args.host is not None:
        update["gateway_host"] = args.host
    if update:
        settings = settings.model_copy(update=update)
    stop = stop_on_signals()
    asyncio.run(serve(settings, resolve_database_url(settings), stop))
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65_535:
        raise argparse.ArgumentTypeError(f"port {port} is not in 0..65535")
    return port


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``firewatch gateway``."""
    gw = sub.add_parser(
        "gateway",
        help="the GB/T 26875.3 gateway: legacy transmission devices over TCP -> MQTT panel "
        "events, clock sync and duty checks, until SIGTERM",
    )
    gw.add_argument("--port", type=_port, help="TCP port (default: FIREWATCH_GATEWAY_PORT, 9026)")
    gw.add_argument("--host", help="bind address (default: FIREWATCH_GATEWAY_HOST, 0.0.0.0)")
    gw.set_defaults(func=cmd_gateway)

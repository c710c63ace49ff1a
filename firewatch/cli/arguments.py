"""Argument types that several command groups of the ``firewatch`` CLI share."""

from __future__ import annotations

import argparse


def duration(text: str) -> float:
    """A span of simulated time (``90``, ``90s``, ``30m``, ``6h``, ``2d``) in seconds."""
    from firewatch.simulators.scenario import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err

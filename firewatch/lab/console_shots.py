"""Screenshots of the console for the README and docs/console.md:
``python -m firewatch.lab.console_shots [--out docs/screenshots]``.

Starts the console over a scratch database with the demo city in a plausible state
(``console_stack.demo_state``: alerts, one of them claimed, a day of telemetry, risk scores,
units placed on the map), logs an operator in with a headless chromium at 1920x1080 and saves
``queue.png`` (the queue with the fire alarm open beside it), ``unit-card.png`` and
``map.png``. Chinese text needs a CJK font on the machine (Debian: ``fonts-noto-cjk``); the
script says so when there is none.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from playwright.sync_api import Page, expect

from firewatch.lab.console_stack import WALL, start_stack

DEFAULT_OUT = Path("docs/screenshots")


def has_cjk_font() -> bool:
    if shutil.which("fc-list") is None:
        return True  # cannot tell; do not nag
    out = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    return bool(out.stdout.strip())


def _shoot(page: Page, path: Path) -> None:
    # The ticking timers are the only motion; fonts must be in before the picture.
    page.evaluate("document.fonts.ready")
    page.screenshot(path=str(path), full_page=False)
    print(f"wrote {path}")


def take_screenshots(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        console = start_stack(stack)
        context = console.seat(viewport=WALL)
        page = context.new_page()
        page.goto("/console/#/queue")
        fire = page.locator(".alert-row", has_text="火警").first
        expect(fire).to_be_visible(timeout=20_000)
        fire.click()
        # claimed, so the picture shows the actions an operator has on a fire alarm
        page.locator(".detail .claim-bar").get_by_role("button", name="认领").click()
        expect(page.locator(".detail button[data-action=confirm_fire]")).to_be_enabled()
        page.locator("#action-note").fill("已电话联系消控室，核实中")
        expect(page.locator(".detail .chart").first).to_be_visible(timeout=20_000)
        expect(page.locator(".detail .history table").first).to_be_visible()
        shots = [out / "queue.png"]
        _shoot(page, shots[-1])

        page.goto("/console/#/unit/U-WD-001")
        expect(page.locator(".unit-page .chart").first).to_be_visible(timeout=20_000)
        expect(page.locator(".unit-page .device-state").first).to_be_visible()
        shots.append(out / "unit-card.png")
        _shoot(page, shots[-1])

        page.goto("/console/#/map")
        expect(page.locator("svg.map circle").first).to_be_visible(timeout=20_000)
        shots.append(out / "map.png")
        _shoot(page, shots[-1])
        context.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firewatch.lab.console_shots")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the PNGs go")
    args = parser.parse_args(argv)
    if not has_cjk_font():
        print(
            "console_shots: no Chinese font found (fc-list :lang=zh): the pictures would show "
            "boxes; apt-get install fonts-noto-cjk",
            file=sys.stderr,
        )
    take_screenshots(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

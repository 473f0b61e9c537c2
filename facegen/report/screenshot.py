"""Render an HTML file in headless Chromium and save a PNG screenshot (how a person would see it)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    raise FileNotFoundError(
        f"no headless browser found (looked for {', '.join(BROWSERS)}); install one, e.g. `apt-get install chromium`"
    )


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 2400, timeout: float = 120) -> Path:
    """Load `html` in headless Chromium at width x height and write the screenshot to `png`."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facegen-chromium-") as profile:
        command = [
            find_browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png.resolve()}",
            html.resolve().as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode or not png.is_file():
        raise RuntimeError(f"chromium could not screenshot {html} (exit {result.returncode}): {result.stderr[-2000:]}")
    return png

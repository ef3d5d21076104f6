"""Headless Chromium for the browser tests, the benchmark and the README screenshot (Debian's ``chromium``)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(url: str, *args: str, timeout: float = 60.0) -> tuple[str, float]:
    """Run headless Chromium on ``url`` with a fresh profile; returns (stdout, wall seconds)."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        start = time.perf_counter()
        proc = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args, url], capture_output=True,
                              text=True, timeout=timeout, check=False)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout, wall


def dump_dom(page: Path, fragment: str = "", budget_ms: int = 5000) -> str:
    """The DOM of a page from disk after its scripts ran (virtual time, so no real waiting)."""
    out, _ = run_chromium(page.resolve().as_uri() + fragment, f"--virtual-time-budget={budget_ms}", "--dump-dom")
    return out


def screenshot(page: Path, png: Path, fragment: str = "", size: str = "1280,900", budget_ms: int = 5000) -> Path:
    run_chromium(page.resolve().as_uri() + fragment, f"--virtual-time-budget={budget_ms}", f"--window-size={size}",
                 f"--screenshot={png.resolve()}")
    return png

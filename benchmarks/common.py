"""What the benchmark scripts share: a live `alto serve` and the Chromium flags."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ALTO = Path(sys.executable).with_name("alto")
CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium, headless; without the networking flags it tries to reach Google.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def serving(env: dict[str, str], port: int, workers: int = 1) -> Iterator[str]:
    """`alto serve` (no tuning worker) on loopback; yields its base URL once it answers."""
    env = {
        **os.environ,
        **env,
        "ALTO_PORT": str(port),
        "ALTO_HOST": "127.0.0.1",
        "ALTO_WORKERS": str(workers),
    }
    server = subprocess.Popen(
        [ALTO, "serve", "--no-migrate", "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=60)

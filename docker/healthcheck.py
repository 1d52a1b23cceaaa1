"""The image's HEALTHCHECK: is the role docker/entrypoint.sh started healthy?

Standard library only, since the slim runtime image has no curl. Exit 0 is healthy.
- api: GET /healthz answers {"status": "ok"} (liveness; /readyz would turn every
  API container unhealthy during a database outage, which a restart cannot fix).
- ray-head: Ray's GCS accepts connections, so `ray-worker`s can join (the dispatcher
  is the container's main process: if it ends, so does the container).
- anything else: the container's main process ends when the role fails, which Docker
  sees anyway; a one-off (migrate) or a plain command has nothing to probe.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import urllib.request
from pathlib import Path

TIMEOUT_S = 4.0


def _probe_host(host: str) -> str:
    # A wildcard bind is reachable on loopback; a specific address only on itself.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def check_api() -> str | None:
    host = _probe_host(os.environ.get("ALTO_HOST", "127.0.0.1"))
    port = int(os.environ.get("ALTO_PORT", "8000"))
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with urllib.request.urlopen(f"http://{netloc}/healthz", timeout=TIMEOUT_S) as reply:
            body = json.load(reply)
    except (OSError, ValueError) as exc:
        return f"api on {netloc}: {exc}"
    if body.get("status") != "ok":
        return f"api on {netloc}: /healthz said {body}"
    return None


def _gcs_address() -> tuple[str, int]:
    # Ray's GCS listens on the node's address (the container's, not loopback); `ray start`
    # writes it where `ray.init(address="auto")` looks for it too.
    address_file = Path(
        os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray", "ray_current_cluster"
    )
    try:
        host, _, port = address_file.read_text().strip().rpartition(":")
        return host.strip("[]"), int(port)
    except (OSError, ValueError):
        return "127.0.0.1", int(os.environ.get("RAY_PORT", "6379"))


def check_ray_head() -> str | None:
    host, port = _gcs_address()
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return None
    except OSError as exc:
        return f"ray GCS on {host}:{port}: {exc}"


CHECKS = {"api": check_api, "ray-head": check_ray_head}


def main() -> int:
    role_file = Path(os.environ.get("ALTO_RUN_DIR", "/tmp/alto")) / "role"
    try:
        role = role_file.read_text().strip()
    except FileNotFoundError:
        role = ""
    check = CHECKS.get(role)
    problem = check() if check else None
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    print(f"healthy ({role or 'no role'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How a report was made: the command, the exact sweep files, wall time and job times,
package versions and the git commit, so that anyone can see what produced the numbers and
regenerate them."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from service.jobs.repository import Job

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Provenance:
    """How the report was made: the command, the sweep files and this run's wall time."""

    command: str
    sweep_files: dict[str, str] = field(default_factory=dict)  # path -> exact text
    wall_time_s: float | None = None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return head + (" (with uncommitted changes)" if dirty else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _jobs_time(jobs: Sequence[Job]) -> tuple[float | None, float]:
    """First start to last finish, and the sum of the jobs' own durations."""
    spans = [(j.started_at, j.finished_at) for j in jobs if j.started_at and j.finished_at]
    if not spans:
        return None, 0.0
    total = sum((f - s).total_seconds() for s, f in spans)
    return (max(f for _, f in spans) - min(s for s, _ in spans)).total_seconds(), total

"""`alto sweep ...`: submit a sweep file and follow it, as a client of the REST API.

The file is YAML. Errors point at its lines: syntax errors by YAML's own marks, and the
API's 422 problem (whose errors are placed in the sweep, e.g. ``tasks[1]`` or
``budgets[0].trials``) by walking those locations through the composed YAML nodes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from service.client import ApiError, Client
from service.jobs.cli import fail, with_api

TOP_LEVEL = {
    "name",
    "defaults",
    "tasks",
    "batch_sizes",
    "optimizers",
    "budgets",
    "group_batch_sizes",
}
LISTS = ("tasks", "batch_sizes", "optimizers", "budgets")
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class SweepFileError(Exception):
    """Errors of a sweep file, each with the line it is on."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(m for _, m in errors))
        self.errors = errors


def load(text: str) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree (which keeps every value's line)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise SweepFileError([(line, f"YAML: {exc.problem or exc.context}")]) from exc
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, field: str) -> int:
    """The line of the deepest node a location like ``budgets[0].trials`` reaches."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for name, index in _PART.findall(field):
        child = None
        if name and isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == name), None)
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            child = node.value[int(index)]
        if child is None:
            break  # e.g. a union's branch name in a pydantic location: stay where we are
        node = child
        line = node.start_mark.line + 1
    return line


def check_structure(data: Any, node: yaml.Node | None) -> None:
    """What can be checked without the catalogue: the shape of the file."""
    if not isinstance(data, dict):
        raise SweepFileError([(1, "a sweep file is a mapping (name:, tasks:, batch_sizes: ...)")])
    errors = []
    for key in data:
        if key not in TOP_LEVEL:
            known = ", ".join(sorted(TOP_LEVEL))
            errors.append((line_of(node, str(key)), f"{key}: unknown key (known: {known})"))
    for key in ("name", "tasks", "batch_sizes"):
        if key not in data:
            errors.append((1, f"{key}: missing"))
    for key in LISTS:
        if key in data and not isinstance(data[key], list):
            errors.append((line_of(node, key), f"{key}: must be a list"))
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        errors.append((1, f"not representable as JSON: {exc}"))
    if errors:
        raise SweepFileError(errors)


def _report(path: Path, errors: list[tuple[int, str]]) -> None:
    for line, message in sorted(errors, key=lambda e: e[0]):
        click.echo(f"{path}:{line}: {message}", err=True)


@click.group("sweep")
def sweep() -> None:
    """Submit a sweep (tasks x batch sizes x optimizers x budgets) and follow its jobs."""


@sweep.command("submit")
@click.argument("sweep_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--idempotency-key", default=None)
@with_api
def submit(sweep_file: Path, idempotency_key: str | None, url: str, token: str | None) -> None:
    """Submit a sweep file (YAML): all of its jobs are queued, or none."""
    try:
        data, node = load(sweep_file.read_text())
        check_structure(data, node)
    except SweepFileError as exc:
        _report(sweep_file, exc.errors)
        sys.exit(1)
    with Client(url, token) as client:
        try:
            created = client.submit_sweep(data, idempotency_key)
        except ApiError as exc:
            if exc.status != 422 or not exc.problem.get("errors"):
                fail(exc)
            _report(
                sweep_file,
                [
                    (line_of(node, e.get("field", "")), f"{e.get('field')}: {e.get('message')}")
                    for e in exc.problem["errors"]
                ],
            )
            click.echo("the sweep was refused as a whole; nothing was queued", err=True)
            sys.exit(1)
    jobs = created["jobs"]
    click.echo(
        f"sweep {created['id']} {created['name']}: {len(jobs)} jobs, "
        f"{created['totals']['trials_total']} trials"
    )
    click.echo("jobs: " + " ".join(str(j["id"]) for j in jobs))


def _counts(totals: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in totals["by_status"].items() if v) or "no jobs"


def _budget(spec: dict[str, Any]) -> str:
    epochs = spec.get("epochs_per_trial") or "default"
    return f"{spec.get('trials_per_study')} trials x {epochs} epochs"


@sweep.command("status")
@click.argument("sweep_id", type=int, required=False)
@click.option("--limit", type=int, default=20, show_default=True, help="Sweeps to list.")
@with_api
def status(sweep_id: int | None, limit: int, url: str, token: str | None) -> None:
    """A sweep's jobs and totals; without an id, the newest sweeps."""
    with Client(url, token) as client:
        try:
            if sweep_id is None:
                page = client.sweeps(limit=limit)
            else:
                found = client.sweep(sweep_id)
        except ApiError as exc:
            fail(exc)
    if sweep_id is None:
        click.echo(f"{'id':>6} {'name':<28} {'jobs':>5} {'progress':>8}  created")
        for s in page["items"]:
            t = s["totals"]
            click.echo(
                f"{s['id']:>6} {s['name'][:28]:<28} {t['jobs']:>5} "
                f"{t['progress']:>8.0%}  {s['created_at'][:19]}"
            )
        click.echo(f"({len(page['items'])} of {page['total']})")
        return
    t = found["totals"]
    click.echo(
        f"sweep {found['id']} {found['name']}: {t['jobs']} jobs, "
        f"{t['trials_done']}/{t['trials_total']} trials ({t['progress']:.0%})"
    )
    click.echo(
        f"{'job':>6} {'task':<18} {'batch sizes':<20} {'budget':<26} {'status':<10} progress"
    )
    for job in found["jobs"]:
        batches = ",".join(str(b) for b in job["spec"]["batch_sizes"])
        click.echo(
            f"{job['id']:>6} {job['task'][:18]:<18} {batches[:20]:<20} "
            f"{_budget(job['spec'])[:26]:<26} {job['status']:<10} {job['progress']:>7.0%}"
        )
    click.echo(f"totals: {_counts(t)}")


@sweep.command("cancel")
@click.argument("sweep_id", type=int)
@with_api
def cancel(sweep_id: int, url: str, token: str | None) -> None:
    """Cancel every unfinished job of a sweep."""
    with Client(url, token) as client:
        try:
            found = client.cancel_sweep(sweep_id)
        except ApiError as exc:
            fail(exc)
    click.echo(
        f"sweep {sweep_id}: "
        + ", ".join(f"{k} {v}" for k, v in found["totals"]["by_status"].items() if v)
    )

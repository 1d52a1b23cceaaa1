"""`alto report run` and `alto report make`: create and run the evidence sweeps in this
process, then write the report. The only module of the report that speaks click: the
others raise `ReportError`, which the commands show as click errors."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml

from service.core.config import Settings, redacted
from service.core.db import utcnow
from service.core.errors import InvalidInputs
from service.core.statuses import JOB_TERMINAL, JobStatus
from service.jobs.repository import Job
from service.storage import Database
from service.sweeps.planning import plan, queue
from service.sweeps.schemas import SweepSpec
from service.trials.repository import Trial
from workers.cli import settings_for
from workers.report.claims import claims
from workers.report.evidence import Evidence, ReportError, collect
from workers.report.provenance import REPO, Provenance, _duration
from workers.report.tables import results_table, write_report
from workers.report.units import _num

if TYPE_CHECKING:
    from workers.dispatcher import Dispatcher
    from workers.runtime import Runtime

EXAMPLES = REPO / "examples"
FULL_SWEEPS = (EXAMPLES / "evidence.yaml", EXAMPLES / "evidence-charlm.yaml")
QUICK_SWEEPS = (EXAMPLES / "evidence-quick.yaml",)


# --- creating and running the sweeps -------------------------------------------------------


def load_sweep(path: Path) -> tuple[SweepSpec, str]:
    """The sweep file's spec and its exact text; errors name the file and the field."""
    from pydantic import ValidationError

    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{path}: YAML: {exc}") from exc
    try:
        return SweepSpec.model_validate(data), text
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise click.ClickException("invalid sweep file\n" + "\n".join(lines)) from exc


def create_sweeps(database: Database, files: Sequence[tuple[Path, SweepSpec]]) -> list[int]:
    """All sweeps and their jobs in one transaction, checked as POST /api/v1/sweeps checks
    them: every file is valid, or none is queued."""
    ids = []
    with database.unit_of_work(write=True) as uow:
        planned = []
        errors = []
        for path, spec in files:
            try:
                planned.append((spec, plan(uow, spec)))
            except InvalidInputs as exc:
                errors += [f"{path}: {c.field}: {c.detail}" for c in exc.causes]
        if errors:
            raise click.ClickException(
                "the sweep was refused as a whole; nothing was queued\n" + "\n".join(errors)
            )
        ids = [queue(uow, spec, jobs).id for spec, jobs in planned]
    return ids


def _claim(dispatcher: Dispatcher, runtime: Runtime, job_id: int) -> Job | None:
    """Claim one job of ours; a job an interrupted run left behind is claimable once its
    lease runs out, so wait for that."""
    while True:
        job = dispatcher.claim(job_id)
        with dispatcher.database.unit_of_work() as uow:
            current = uow.jobs.get(job_id)
        if job is not None or current is None or current.status != JobStatus.RUNNING:
            return job
        if runtime.shutdown.is_set():
            return None
        wait = dispatcher.settings.lease_seconds
        if current.lease_expires_at is not None:
            wait = (current.lease_expires_at - utcnow()).total_seconds() + 0.5
        click.echo(f"job {job_id} is held by {current.lease_owner}; waiting {wait:.0f} s")
        runtime.shutdown.wait(max(0.5, wait))


def run_sweeps(settings: Settings, sweep_ids: Sequence[int]) -> tuple[str, list[str]]:
    """Run every unfinished job of the sweeps here; returns (outcome, lines to print).
    Ctrl-C hands the running job back to the queue at its next step, so `--resume-sweep`
    continues at once."""
    # Ray and torch load here, not with the command line (`alto --help`, `alto report make`).
    from tqdm import tqdm

    from workers.dispatcher import Dispatcher, publish_catalogue
    from workers.runtime import Runtime

    dispatcher = Dispatcher(settings, worker_id=f"alto-report:{os.getpid()}")
    publish_catalogue(dispatcher.database, dispatcher.worker)
    with dispatcher.database.unit_of_work() as uow:
        jobs = [j for s in sweep_ids for j in uow.sweeps.jobs(s)]
    todo = [j for j in jobs if j.status not in JOB_TERMINAL]
    lines = [f"job {j.id} ({j.task}) already {j.status}" for j in jobs if j.status in JOB_TERMINAL]
    outcome: str = JobStatus.SUCCEEDED
    total = sum(j.trials_total for j in todo)
    try:
        if not todo:
            return outcome, lines
        with (
            Runtime(settings) as runtime,
            tqdm(total=total, initial=sum(j.trials_done for j in todo), unit="trial") as bar,
        ):
            for job in todo:
                if runtime.shutdown.is_set():
                    outcome = "shutdown"
                    break
                claimed = _claim(dispatcher, runtime, job.id)
                if claimed is None:
                    lines.append(f"job {job.id} could not be claimed (it finished meanwhile?)")
                    continue
                bar.set_description(f"job {job.id} {job.task}")

                def advance(trial: Trial) -> None:
                    bar.update(1)
                    bar.set_postfix_str(f"{trial.status} {_num(trial.final_metric, 4)}")

                result = dispatcher.run_job(claimed, runtime, on_trial_end=advance)
                with dispatcher.database.unit_of_work() as uow:
                    final = uow.jobs.get(job.id)
                lines.append(
                    f"job {job.id} ({job.task}) {result}"
                    + (f": {final.error}" if final and final.error else "")
                )
                if result != JobStatus.SUCCEEDED:
                    outcome = result
                if result == "shutdown":
                    break
    finally:
        dispatcher.database.dispose()
    return outcome, lines


# --- the commands -------------------------------------------------------------------------


@click.group("report")
def report() -> None:
    """Evidence: run the sweeps behind the paper's claims and write docs/results."""


def _command_line() -> str:
    return "alto " + shlex.join(sys.argv[1:])


@report.command("run")
@click.option("--quick", is_flag=True, help="The small configuration (a few minutes).")
@click.option(
    "--sweep-file",
    "sweep_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Sweep files (repeatable). Default: examples/evidence.yaml and "
    "examples/evidence-charlm.yaml; with --quick examples/evidence-quick.yaml.",
)
@click.option(
    "--resume-sweep",
    "resume",
    multiple=True,
    type=int,
    help="Continue these sweeps' unfinished jobs instead of creating new sweeps.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/results"),
    show_default=True,
)
@click.option("--ray-address", default=None, help="An existing Ray cluster (or RAY_ADDRESS).")
def run(
    quick: bool,
    sweep_files: tuple[Path, ...],
    resume: tuple[int, ...],
    out: Path,
    ray_address: str | None,
) -> None:
    """Create the evidence sweeps, run their jobs here, then write the report."""
    import logging

    from service.core.migrate import upgrade

    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    settings = settings_for(ray_address)
    upgrade(settings.url)
    database = Database.from_settings(settings)
    texts: dict[str, str] = {}
    try:
        if resume:
            sweep_ids = list(resume)
            with database.unit_of_work() as uow:
                missing = [i for i in sweep_ids if uow.sweeps.get(i) is None]
            if missing:
                raise click.ClickException(f"no sweep {missing[0]} in {redacted(settings.url)}")
        else:
            paths = list(sweep_files) or list(QUICK_SWEEPS if quick else FULL_SWEEPS)
            loaded = []
            for path in paths:
                spec, text = load_sweep(path)
                loaded.append((path, spec))
                texts[_shown(path)] = text
            from workers.dispatcher import publish_catalogue

            publish_catalogue(database, "alto-report")
            sweep_ids = create_sweeps(database, loaded)
        click.echo(f"sweep(s) {', '.join(map(str, sweep_ids))} in {redacted(settings.url)}")
    finally:
        database.dispose()
    outcome, lines = run_sweeps(settings, sweep_ids)
    for line in lines:
        click.echo(line)
    if outcome == "shutdown":
        again = " ".join(f"--resume-sweep {i}" for i in sweep_ids)
        click.echo(f"interrupted; continue with: alto report run {again} --out {out}", err=True)
        sys.exit(130)
    wall = time.monotonic() - started
    database = Database.from_settings(settings)
    try:
        evidence = collect(database, sweep_ids)
        readme = write_report(evidence, Provenance(_command_line(), texts, wall), out)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()
    _summary(evidence, readme, wall)
    if outcome != JobStatus.SUCCEEDED:
        sys.exit(1)


@report.command("make")
@click.option("--sweep", "sweeps", multiple=True, type=int, required=True, help="Repeatable.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/results"),
    show_default=True,
)
def make(sweeps: tuple[int, ...], out: Path) -> None:
    """Write the report of sweeps already in the database (no tuning)."""
    settings = Settings()
    database = Database.from_settings(settings)
    try:
        evidence = collect(database, sweeps)
        readme = write_report(evidence, Provenance(_command_line()), out)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()
    _summary(evidence, readme, None)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _summary(evidence: Evidence, readme: Path, wall: float | None) -> None:
    click.echo("")
    for t in evidence.tasks:
        click.echo(f"{t.task}:")
        for line in results_table(t)[2:]:
            click.echo(line)
        click.echo("")
    for i, claim in enumerate(claims(evidence), 1):
        click.echo(f"claim {i} ({claim.title}): {claim.verdict}")
    if wall is not None:
        click.echo(f"wall time {_duration(wall)}")
    click.echo(f"report: {readme}")

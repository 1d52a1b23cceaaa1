"""The ``alto`` command line.

The service's own commands (db, serve, token, jobs, sweep) are defined here and in
the feature folders. Other packages add subcommands through the
``alto.commands`` entry point group (``workers`` adds ``demo``, ``worker``...),
loaded only when asked for, so this module never imports workers or torch.
"""

from __future__ import annotations

import os
import signal
import sys
from importlib.metadata import EntryPoint, entry_points

import click

from service.auth.cli import token
from service.core.config import Settings, redacted
from service.jobs.cli import jobs
from service.sweeps.cli import sweep

ENTRY_POINT_GROUP = "alto.commands"


class _PluginGroup(click.Group):
    """A click group whose extra subcommands are loaded lazily from entry points."""

    def _plugins(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in (plugins := self._plugins()):
            command = plugins[name].load()
        return command


@click.group(cls=_PluginGroup)
@click.version_option(package_name="alto-tune")
def main() -> None:
    """ALTO Tune: find and serve alpha, beta1 and lr for the ALTO optimizer.

    Settings come from ALTO_* environment variables (ALTO_DATABASE_URL,
    ALTO_DATA_DIR, ALTO_HOST, ALTO_PORT, ...).
    """


@main.group("db")
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the database to a revision (default: the newest)."""
    from service.core.migrate import upgrade

    settings = Settings()
    upgrade(settings.url, revision)
    click.echo(f"database at {revision}: {redacted(settings.url)}")


@db.command("current")
def db_current() -> None:
    """Print the database's schema revision and the newest one."""
    from service.core.migrate import current_revision, head_revision
    from service.storage import Database

    database = Database.from_settings(Settings())
    click.echo(f"current: {current_revision(database.engine)}  head: {head_revision()}")


@main.command("serve")
@click.option("--host", default=None, help="Default: ALTO_HOST or 127.0.0.1.")
@click.option("--port", type=int, default=None, help="Default: ALTO_PORT or 8000.")
@click.option("--workers", type=int, default=None, help="uvicorn processes (ALTO_WORKERS).")
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Upgrade the database schema before serving.",
)
@click.option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Also run a tuning worker (`alto worker`, local Ray) in its own process.",
)
@click.option(
    "--demo", is_flag=True, help="On an empty database, have the worker queue a small demo job."
)
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    migrate: bool,
    worker: bool,
    demo: bool,
) -> None:
    """Serve the REST API with uvicorn (and, unless --no-worker, a tuning worker)."""
    import subprocess

    import uvicorn

    from service.core.migrate import upgrade
    from service.storage import Database

    # The app reads its settings from the environment in each uvicorn process.
    for name, value in (("ALTO_HOST", host), ("ALTO_PORT", port), ("ALTO_WORKERS", workers)):
        if value is not None:
            os.environ[name] = str(value)
    settings = Settings()
    if migrate:
        upgrade(settings.url)
    if not settings.loopback_only:
        database = Database.from_settings(settings)
        with database.unit_of_work() as uow:
            has_token = uow.tokens.any_active()
        database.dispose()
        if not has_token:
            click.echo(
                f"refusing to listen on {settings.host}: no API token exists, so anyone who "
                "can reach this address could submit jobs. Create one with "
                "`alto token create NAME`, or listen on 127.0.0.1.",
                err=True,
            )
            sys.exit(2)
    if demo and not worker:
        raise click.UsageError(
            "--demo needs the worker: it queues the job once it has published the "
            "catalogue that the job is checked against"
        )
    # The worker is a separate process: the API process never imports torch or ray.
    command = [sys.executable, "-m", "service.cli", "worker"] + (["--queue-demo"] if demo else [])
    child = subprocess.Popen(command) if worker else None

    def stop(signum: int, _frame: object) -> None:
        # uvicorn re-raises the signal that stopped it once it has shut down; ending
        # here, rather than by the signal's default action, lets `finally` stop the worker.
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        uvicorn.run(
            "service.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
        )
    finally:
        if child is not None:
            child.terminate()  # SIGTERM: the worker hands its job back to the queue
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()


main.add_command(token)
main.add_command(jobs)
main.add_command(sweep)

if __name__ == "__main__":
    main()

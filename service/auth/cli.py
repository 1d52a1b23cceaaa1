"""`alto token ...`: administer API tokens in the database (an operator's command)."""

from __future__ import annotations

import sys

import click

from service.core.config import Settings
from service.core.errors import ServiceError
from service.storage import Database


@click.group("token")
def token() -> None:
    """Create, list and revoke API tokens (only their hashes are stored)."""


@token.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May see and cancel every token's jobs.")
def create(name: str, admin: bool) -> None:
    """Create a token and print it once."""
    database = Database.from_settings(Settings())
    try:
        with database.unit_of_work(write=True) as uow:
            plain, info = uow.tokens.create(name, admin=admin)
    except ServiceError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)
    click.echo(plain)
    click.echo(
        f"token {info.name!r} created{' (admin)' if info.admin else ''}; "
        "it is shown only this once",
        err=True,
    )


@token.command("list")
def list_() -> None:
    """List tokens (never their values)."""
    database = Database.from_settings(Settings())
    with database.unit_of_work() as uow:
        tokens = uow.tokens.list()
    click.echo(f"{'name':<24} {'prefix':<14} {'admin':<6} {'state':<8} created")
    for t in tokens:
        state = "active" if t.active else "revoked"
        click.echo(
            f"{t.name:<24} {t.prefix:<14} {str(t.admin):<6} {state:<8} "
            f"{t.created_at:%Y-%m-%d %H:%M}"
        )


@token.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a token; requests with it get 403 from now on."""
    database = Database.from_settings(Settings())
    try:
        with database.unit_of_work(write=True) as uow:
            uow.tokens.revoke(name)
    except ServiceError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)
    click.echo(f"token {name!r} revoked")

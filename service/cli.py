"""The ``alto`` command line.

Subcommands come from the ``alto.commands`` entry point group, so the service
package never imports ``workers`` (nor torch): each package registers its own
commands in pyproject.toml and they are loaded only when the CLI starts.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

ENTRY_POINT_GROUP = "alto.commands"


class _PluginGroup(click.Group):
    """A click group whose subcommands are loaded lazily from entry points."""

    def _plugins(self) -> dict[str, object]:
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
    """ALTO Tune: find and serve alpha, beta1 and lr for the ALTO optimizer."""

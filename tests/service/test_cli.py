"""The `alto` command line: plugin commands, and no torch in the service process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ALTO = Path(sys.executable).with_name("alto")


def test_help_lists_plugin_commands():
    out = subprocess.run([ALTO, "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out


def test_service_cli_does_not_import_torch():
    code = (
        "import sys, service.cli\n"
        "service.cli.main.list_commands(None)\n"
        "bad = [m for m in ('torch', 'ray', 'workers', 'alto_core') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

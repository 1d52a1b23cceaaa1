"""`alto demo` writes the landscape figure and reports the f2 grid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image

ALTO = Path(sys.executable).with_name("alto")


def test_demo_writes_a_png_and_a_report(tmp_path):
    out = tmp_path / "figs" / "landscapes.png"
    result = subprocess.run(
        [ALTO, "demo", "--out", out, "--steps", "60", "--escape-steps", "60"],
        capture_output=True,
        text=True,
        check=True,
    )
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 500 and image.shape[1] > 1000
    assert "E(Adam) alpha=-90" in result.stdout
    assert "plain Adam reaches the wide minimum in" in result.stdout
    assert f"wrote {out}" in result.stdout


def test_demo_rejects_bad_options(tmp_path):
    result = subprocess.run([ALTO, "demo", "--steps", "0"], capture_output=True, text=True)
    assert result.returncode == 2 and "--steps" in result.stderr

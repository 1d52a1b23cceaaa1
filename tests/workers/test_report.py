"""`alto report`: a real (tiny) evidence sweep run end to end, the report checked against
the database, and the claim verdicts on hand-made numbers."""

from __future__ import annotations

import math
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from service.storage import Database
from tests.workers.test_engine import FINISHED, wait_for
from workers.report.claims import (
    FlatPoint,
    UpliftPoint,
    combine,
    judge_alpha_sign,
    judge_flatness,
    judge_uplift_growth,
)
from workers.report.plots import _c, _log_one_minus_beta1

ALTO = Path(sys.executable).with_name("alto")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SWEEP = """\
name: report-test
defaults: {trials: 2, epochs: 1, seeds: [0, 1], reevaluate_top: 1, resources: {cpu: 1, gpu: 0}}
tasks: [digits-mlp]
batch_sizes: [32, 256]
optimizers: [alto, lamb, adamw]
"""
ARMS = ["alto", "lamb", "adamw"]
CELL = re.compile(r"^(-?\d+\.\d+)(?: ± (\d+\.\d+))?$")


def _alto(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ALTO, "report", *args], env=env, capture_output=True, text=True, timeout=600
    )


def _table(readme: str, task: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the first table under the task's heading."""
    section = readme.split(f"## {task}\n", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, rows = split[0], []
    for cells in split[2:]:
        if not cells[0].isdigit() or len(cells) != len(header):
            break
        rows.append(cells)
    return header, rows


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    data = tmp_path_factory.mktemp("report")
    sweep_file = data / "tiny.yaml"
    sweep_file.write_text(SWEEP)
    env = {**os.environ, "ALTO_DATA_DIR": str(data)}
    result = _alto("run", "--sweep-file", str(sweep_file), "--out", str(data / "out"), env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return data, env, result


def test_report_run_matches_the_database(ran):
    data, _, result = ran
    readme = (data / "out" / "README.md").read_text()
    database = Database(f"sqlite:///{data / 'alto.db'}")
    try:
        with database.unit_of_work() as uow:
            (sweep,), _ = uow.sweeps.list()
            jobs = uow.sweeps.jobs(sweep.id)
            assert [j.status for j in jobs] == ["succeeded"]
            recs = {(r.batch_size, r.optimizer): r for r in uow.recommendations.for_job(jobs[0].id)}
    finally:
        database.dispose()
    assert sorted(recs) == sorted((b, a) for b in (32, 256) for a in ARMS)
    header, rows = _table(readme, "digits-mlp")
    assert [r[0] for r in rows] == ["32", "256"]
    for row in rows:
        batch = int(row[0])
        for arm in ARMS:
            rec = recs[(batch, arm)]
            match = CELL.match(row[header.index(arm)])
            assert match, row
            # Accuracy in % with two decimals: the shown number is the stored one, rounded.
            assert float(match.group(1)) == pytest.approx(100 * rec.metric, abs=0.0051)
            assert rec.metric_std is not None  # re-evaluated with both seeds
            assert float(match.group(2)) == pytest.approx(100 * rec.metric_std, abs=0.0051)
            assert float(row[header.index(f"lr {arm}")]) == pytest.approx(
                rec.settings["lr"], rel=0.005
            )
        alto = recs[(batch, "alto")]
        assert float(row[header.index("alto − lamb")]) == pytest.approx(
            100 * alto.uplift, abs=0.0051
        )
        assert float(row[header.index("best alpha")]) == pytest.approx(
            alto.settings["alpha"], rel=0.005
        )
        assert float(row[header.index("best beta1")]) == pytest.approx(
            alto.settings["beta1"], rel=0.0005
        )
    for name in ("metric_vs_batch.png", "best_alpha_beta1.png", "eigenvalue.png"):
        png = (data / "out" / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 10_000, name
    claims = readme.split("## Paper claims vs what we measured", 1)[1]
    verdicts = re.findall(
        r"^\*\*Verdict: (holds|does not hold|mixed|not measured)\*\*$", claims, re.M
    )
    assert len(verdicts) == 3
    assert "/dashboard?task=digits-mlp" in readme
    assert "alto report run --sweep-file" in readme and "torch" in readme
    assert "trial" in result.stderr  # the progress bar


def test_report_make_regenerates_the_same_table(ran, tmp_path):
    data, env, _ = ran
    first = (data / "out" / "README.md").read_text()
    again = _alto("make", "--sweep", "1", "--out", str(tmp_path), env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    second = (tmp_path / "README.md").read_text()

    def tables(text: str) -> str:
        return text.split("## Plots", 1)[0]

    def verdicts(text: str) -> str:
        return text.split("## Paper claims vs what we measured", 1)[1].split("## How", 1)[0]

    assert tables(second) == tables(first)
    assert verdicts(second) == verdicts(first)
    assert "alto report make --sweep 1" in second


def test_report_run_refuses_an_invalid_sweep_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SWEEP.replace("[32, 256]", "[32, 4096]").replace("adamw", "adamx"))
    env = {**os.environ, "ALTO_DATA_DIR": str(tmp_path)}
    result = _alto("run", "--sweep-file", str(bad), "--out", str(tmp_path / "out"), env=env)
    assert result.returncode == 1
    assert "batch_sizes[1]" in result.stderr and "maximum 1024" in result.stderr
    assert "optimizers[2].optimizer" in result.stderr and "adamx" in result.stderr
    assert not (tmp_path / "out").exists()


def _finished_trials(data):
    database = Database(f"sqlite:///{data / 'alto.db'}")
    try:
        with database.unit_of_work() as uow:
            trials = uow.trials.for_job(1, limit=500)[0]
    except OperationalError:  # the run has not created its tables yet
        return {}
    finally:
        database.dispose()
    return {(t.study_id, t.number): t for t in trials if t.status in FINISHED}


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    """Ctrl-C hands the job back and prints the command that continues it; that command
    finishes the sweep, keeps the trials already finished and writes the report."""
    sweep_file = tmp_path / "resume.yaml"
    sweep_file.write_text(
        SWEEP.replace("trials: 2", "trials: 8")
        .replace("[32, 256]", "[64]")
        .replace("[alto, lamb, adamw]", "[alto, lamb]")
    )
    env = {**os.environ, "ALTO_DATA_DIR": str(tmp_path)}
    out = tmp_path / "out"
    first = subprocess.Popen(
        [ALTO, "report", "run", "--sweep-file", str(sweep_file), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _finished_trials(tmp_path), 240, "a finished trial")
    finally:
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr[-3000:]
    command = re.search(r"continue with: alto (report run .*)$", stderr, re.M)
    assert command, stderr[-3000:]
    kept = _finished_trials(tmp_path)
    assert not out.exists()

    second = subprocess.run(
        [ALTO, *shlex.split(command.group(1))], env=env, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr[-3000:]
    database = Database(f"sqlite:///{tmp_path / 'alto.db'}")
    try:
        with database.unit_of_work() as uow:
            (job,) = uow.sweeps.jobs(1)
            trials = uow.trials.for_job(job.id, limit=500)[0]
    finally:
        database.dispose()
    assert job.status == "succeeded" and job.attempts == 2
    after = {(t.study_id, t.number): t for t in trials}
    for key, trial in kept.items():  # kept as they were, not run again
        assert after[key].final_metric == trial.final_metric
        assert after[key].updated_at == trial.updated_at
    assert "alto report run --resume-sweep 1" in (out / "README.md").read_text()


# --- the verdict rules on hand-made numbers -------------------------------------------------


def test_alpha_sign_verdicts():
    assert judge_alpha_sign([(32, 0.5), (512, 0.1), (8192, -5.0)]).verdict == "holds"
    assert judge_alpha_sign([(32, -1.0), (8192, 2.0)]).verdict == "does not hold"
    assert judge_alpha_sign([(32, 0.5), (8192, 3.0)]).verdict == "mixed"
    assert judge_alpha_sign([(32, 0.5), (8192, None)]).verdict == "not measured"
    # The order of the input does not matter, the batch size does.
    assert judge_alpha_sign([(8192, -5.0), (32, 0.5)]).verdict == "holds"


def test_uplift_growth_verdicts():
    grows = [UpliftPoint(32, -0.2, 0.1), UpliftPoint(512, 0.5, 0.1), UpliftPoint(8192, 3.0, 0.2)]
    assert judge_uplift_growth(grows).verdict == "holds"
    shrinks = [UpliftPoint(32, 1.0, 0.1), UpliftPoint(8192, 0.2, 0.1)]
    assert judge_uplift_growth(shrinks).verdict == "does not hold"
    noisy = [UpliftPoint(32, 0.0, 1.0), UpliftPoint(8192, 0.5, 1.0)]
    verdict = judge_uplift_growth(noisy)
    assert verdict.verdict == "mixed" and "noise" in verdict.detail
    behind = [UpliftPoint(32, -3.0), UpliftPoint(8192, -1.0)]
    verdict = judge_uplift_growth(behind)
    assert verdict.verdict == "mixed" and "not ahead" in verdict.detail
    assert judge_uplift_growth([UpliftPoint(32, 1.0)]).verdict == "not measured"


def test_flatness_verdicts():
    flatter = [FlatPoint(32, 5.0, 6.0), FlatPoint(8192, 1.0, 4.0, 2.0, 1.0)]
    verdict = judge_flatness(flatter)
    assert verdict.verdict == "holds" and "drift" in verdict.detail
    assert judge_flatness([FlatPoint(32, 7.0, 6.0), FlatPoint(8192, 5.0, 4.0)]).verdict == (
        "does not hold"
    )
    # Flatter at the largest batch size only, not at most sizes.
    mixed = [FlatPoint(32, 7.0, 6.0), FlatPoint(128, 7.0, 6.0), FlatPoint(8192, 1.0, 4.0)]
    assert judge_flatness(mixed).verdict == "mixed"
    # An infinite eigenvalue is data, but it cannot be compared.
    assert judge_flatness([FlatPoint(8192, float("inf"), 4.0)]).verdict == "not measured"
    # One estimate each, no seeds: a difference of under 10% is no evidence either way.
    close = judge_flatness(
        [FlatPoint(32, 100.0, 212.0), FlatPoint(128, 119.0, 162.0), FlatPoint(512, 234.5, 236.2)]
    )
    assert close.verdict == "mixed" and "as sharp, within 10%" in close.detail


def test_verdicts_combine_over_tasks():
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["does not hold", "not measured"]) == "does not hold"
    assert combine(["holds", "does not hold"]) == "mixed"
    assert combine(["not measured"]) == "not measured"


def test_alpha_beta1_plot_shows_c_and_log10_one_minus_beta1():
    # The plotted values are what the search samples: alpha 471 at beta1 0.9989 is c = +0.52.
    assert _c(471.0, 0.9989) == pytest.approx(0.5181)
    assert _log_one_minus_beta1(0.9989) == pytest.approx(math.log10(0.0011))
    assert _log_one_minus_beta1(0.9) == pytest.approx(-1.0)
    assert math.isnan(_c(math.nan, 0.9)) and math.isnan(_c(1.0, math.inf))
    assert math.isnan(_log_one_minus_beta1(1.0)) and math.isnan(_log_one_minus_beta1(math.nan))

"""`alto report`: run the evidence sweeps with the product itself and write what they show.

``alto report run`` expands sweep files exactly as ``POST /api/v1/sweeps`` does, creates
the sweeps and their jobs in the local database, runs each job in this process as
``alto tune`` does (claim, ``Dispatcher.run_job``, local Ray) and then writes the report.
``alto report make`` writes the same report for sweeps already in the database (also
ones a cluster ran after ``alto sweep submit``). Everything in the report comes from the
database: the recommendations (mean and standard deviation over seeds after the
re-evaluation), the flatness of each recommended trial, and the paper's three claims,
each judged from those numbers by the rules in `judge_alpha_sign`, `judge_uplift_growth`
and `judge_flatness`.
"""

from __future__ import annotations

import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click
import yaml

from service.catalogue.repository import TaskInfo
from service.core.config import Settings, redacted
from service.core.errors import InvalidInputs
from service.jobs.repository import TERMINAL, Job
from service.storage import Database, UnitOfWork
from service.sweeps.planning import plan, queue
from service.sweeps.schemas import SweepSpec
from workers.cli import settings_for

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FULL_SWEEPS = (EXAMPLES / "evidence.yaml", EXAMPLES / "evidence-charlm.yaml")
QUICK_SWEEPS = (EXAMPLES / "evidence-quick.yaml",)
FINISHED = ("completed", "pruned", "diverged")
ALTO, BASELINE = "alto", "lamb"
VERDICTS = ("holds", "does not hold", "mixed", "not measured")
PNGS = ("metric_vs_batch.png", "best_alpha_beta1.png", "eigenvalue.png")


# --- what the database holds about a sweep ------------------------------------------------


@dataclass(frozen=True)
class ArmPoint:
    """The recommended setting of one arm at one batch size, with its evidence."""

    optimizer: str
    batch_size: int
    metric: float | None  # mean over seeds when re-evaluated
    metric_std: float | None
    n_seeds: int
    settings: dict[str, float]
    n_trials: int
    uplift: float | None  # over Lamb, positive = this arm better (None for Lamb itself)
    best_trial_id: int | None
    recommendation_id: int
    top_eigenvalue: float | None = None
    eigen_converged: bool = False
    drift_from_start: float | None = None
    drift_over_window: float | None = None
    flatness_method: str | None = None


@dataclass(frozen=True)
class TaskEvidence:
    task: str
    metric: str
    direction: str
    arms: tuple[str, ...]
    points: dict[tuple[int, str], ArmPoint]  # (batch size, arm)
    batch_sizes: tuple[int, ...]
    newest_on_dashboard: bool  # these recommendations are what the dashboard shows


@dataclass(frozen=True)
class Evidence:
    sweep_ids: tuple[int, ...]
    sweeps: tuple[dict[str, Any], ...]  # id, name, spec
    tasks: tuple[TaskEvidence, ...]
    jobs: tuple[Job, ...]
    database_url: str


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _task_info(uow: UnitOfWork, name: str) -> TaskInfo:
    info = uow.catalogue.task(name)
    if info is None:
        raise click.ClickException(f"task {name!r} is not in the database's catalogue")
    return info


def collect(database: Database, sweep_ids: Sequence[int]) -> Evidence:
    """Read the sweeps' recommendations, seeds and flatness through the storage layer."""
    sweeps, jobs = [], []
    with database.unit_of_work() as uow:
        for sweep_id in sweep_ids:
            sweep = uow.sweeps.get(sweep_id)
            if sweep is None:
                raise click.ClickException(f"no sweep {sweep_id} in {redacted(database.url)}")
            sweeps.append({"id": sweep.id, "name": sweep.name, "spec": sweep.spec})
            jobs.extend(uow.sweeps.jobs(sweep_id))
        by_task: dict[str, dict[tuple[int, str], ArmPoint]] = {}
        arms: dict[str, list[str]] = {}
        for job in jobs:
            task_arms = arms.setdefault(job.task, [])
            task_arms.extend(
                a["optimizer"] for a in job.spec["arms"] if a["optimizer"] not in task_arms
            )
            points = by_task.setdefault(job.task, {})
            for rec in uow.recommendations.for_job(job.id):
                trials = uow.trials.for_study(rec.study_id) if rec.study_id else []
                best = next((t for t in trials if t.id == rec.best_trial_id), None)
                seeds = [
                    t
                    for t in trials
                    if best is not None and t.params == best.params and t.status in FINISHED
                ]
                flat = uow.trials.flatness(rec.best_trial_id) if rec.best_trial_id else None
                points[(rec.batch_size, rec.optimizer)] = ArmPoint(
                    optimizer=rec.optimizer,
                    batch_size=rec.batch_size,
                    metric=rec.metric,
                    metric_std=rec.metric_std,
                    n_seeds=max(1, len(seeds)),
                    settings=dict(rec.settings),
                    n_trials=rec.n_trials,
                    uplift=rec.uplift,
                    best_trial_id=rec.best_trial_id,
                    recommendation_id=rec.id,
                    top_eigenvalue=flat.top_eigenvalue if flat else None,
                    eigen_converged=bool(flat and flat.eigen_converged),
                    drift_from_start=flat.drift_from_start if flat else None,
                    drift_over_window=flat.drift_over_window if flat else None,
                    flatness_method=flat.method if flat else None,
                )
        tasks = []
        for name, points in by_task.items():
            info = _task_info(uow, name)
            latest = {r.id for r in uow.recommendations.latest(name)}
            tasks.append(
                TaskEvidence(
                    task=name,
                    metric=info.metric,
                    direction=info.direction,
                    arms=tuple(arms[name]),
                    points=points,
                    batch_sizes=tuple(sorted({b for b, _ in points})),
                    newest_on_dashboard=bool(points)
                    and all(p.recommendation_id in latest for p in points.values()),
                )
            )
    return Evidence(
        sweep_ids=tuple(sweep_ids),
        sweeps=tuple(sweeps),
        tasks=tuple(tasks),
        jobs=tuple(jobs),
        database_url=database.url,
    )


# --- the paper's claims, judged from numbers ------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    verdict: str  # one of VERDICTS
    detail: str


@dataclass(frozen=True)
class Claim:
    title: str
    verdict: str
    per_task: tuple[tuple[str, Verdict], ...]
    rule: str


def combine(verdicts: Sequence[str]) -> str:
    """One verdict for several tasks: unanimous, else mixed (unmeasured tasks abstain)."""
    measured = [v for v in verdicts if v != "not measured"]
    if not measured:
        return "not measured"
    if all(v == measured[0] for v in measured):
        return measured[0]
    return "mixed"


def _from_parts(parts: Sequence[bool]) -> str:
    if all(parts):
        return "holds"
    return "does not hold" if not any(parts) else "mixed"


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Rank correlation (average ranks for ties); 0 for fewer than two points."""
    if len(xs) < 2:
        return 0.0

    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return 0.0 if sx == 0 or sy == 0 else cov / (sx * sy)


def judge_alpha_sign(alphas: Sequence[tuple[int, float | None]]) -> Verdict:
    """Claim 1 for one task: the best alpha is positive at the smallest batch size and
    negative at the largest. Both ends as claimed: holds; neither: does not hold."""
    series = sorted((b, a) for b, a in alphas if _finite(a))
    if len(series) < 2:
        return Verdict("not measured", "fewer than two batch sizes with a recommended alpha")
    (small_b, small_a), (large_b, large_a) = series[0], series[-1]
    verdict = _from_parts([small_a > 0, large_a < 0])
    listed = ", ".join(f"{_num(a)} at {b}" for b, a in series)
    rho = spearman([math.log2(b) for b, _ in series], [a for _, a in series])
    return Verdict(
        verdict,
        f"best alpha {listed}: {'positive' if small_a > 0 else 'not positive'} at batch "
        f"{small_b}, {'negative' if large_a < 0 else 'not negative'} at batch {large_b} "
        f"(rank correlation of alpha with batch size {rho:+.2f})",
    )


@dataclass(frozen=True)
class UpliftPoint:
    batch_size: int
    uplift: float | None  # ALTO minus Lamb, positive = ALTO better, in display units
    noise: float | None = None  # standard error of that difference (None: one seed)


def judge_uplift_growth(points: Sequence[UpliftPoint]) -> Verdict:
    """Claim 2 for one task: ALTO's gain over Lamb grows with batch size. Holds when the
    gain at the largest batch size exceeds the gain at the smallest by more than their
    combined standard error, the gains rise with batch size overall (rank correlation
    > 0) and ALTO is ahead at the largest size; does not hold when the gain at the
    largest size is not above the smallest; mixed otherwise."""
    series = sorted((p for p in points if _finite(p.uplift)), key=lambda p: p.batch_size)
    if len(series) < 2:
        return Verdict("not measured", "fewer than two batch sizes with both ALTO and Lamb")
    first, last = series[0], series[-1]
    growth = last.uplift - first.uplift
    noise = (
        math.hypot(first.noise, last.noise)
        if first.noise is not None and last.noise is not None
        else 0.0
    )
    rho = spearman([p.batch_size for p in series], [p.uplift for p in series])
    listed = ", ".join(f"{p.uplift:+.3g} at {p.batch_size}" for p in series)
    text = (
        f"gain {listed}; change from batch {first.batch_size} to {last.batch_size}: "
        f"{growth:+.3g} (standard error {noise:.2g}), rank correlation {rho:+.2f}"
    )
    if growth <= 0:
        return Verdict("does not hold", text)
    reasons = []
    if growth <= noise:
        reasons.append("the growth is within the seed noise")
    if rho <= 0:
        reasons.append("the gain does not rise with batch size overall")
    if last.uplift <= 0:
        reasons.append("ALTO is not ahead at the largest batch size")
    if reasons:
        return Verdict("mixed", f"{text}; but {', and '.join(reasons)}")
    return Verdict("holds", text)


@dataclass(frozen=True)
class FlatPoint:
    batch_size: int
    alto: float | None  # top Hessian eigenvalue of ALTO's recommended trial
    lamb: float | None
    alto_drift: float | None = None
    lamb_drift: float | None = None


# One power-iteration estimate per arm and batch size, with no seeds behind it: ALTO counts
# as flatter only when its eigenvalue is below Lamb's by more than this fraction.
FLATTER_BY = 0.10


def _flatness_word(alto: float, lamb: float) -> str:
    if abs(alto) < (1 - FLATTER_BY) * abs(lamb):
        return "flatter"
    if abs(lamb) < (1 - FLATTER_BY) * abs(alto):
        return "sharper"
    return f"as sharp, within {FLATTER_BY:.0%}"


def judge_flatness(points: Sequence[FlatPoint]) -> Verdict:
    """Claim 3 for one task: ALTO's minima are flatter, i.e. the top Hessian eigenvalue
    (compared by magnitude: power iteration returns the eigenvalue of largest magnitude)
    of ALTO's best trial is more than 10% below Lamb's. Judged at the largest batch size
    and over all batch sizes (a majority): both: holds; neither: does not hold."""
    series = sorted(
        (p for p in points if _finite(p.alto) and _finite(p.lamb)), key=lambda p: p.batch_size
    )
    if not series:
        return Verdict("not measured", "no batch size with both eigenvalues measured")
    last = series[-1]
    flatter = [_flatness_word(p.alto, p.lamb) == "flatter" for p in series]
    at_largest, majority = flatter[-1], sum(flatter) * 2 > len(flatter)
    drift = ""
    if _finite(last.alto_drift) and _finite(last.lamb_drift):
        drift = (
            f"; drift from the start there: ALTO {_num(last.alto_drift)}, "
            f"Lamb {_num(last.lamb_drift)}"
        )
    return Verdict(
        _from_parts([at_largest, majority]),
        f"at batch {last.batch_size} top eigenvalue ALTO {_num(last.alto, 4)} vs Lamb "
        f"{_num(last.lamb, 4)} ({_flatness_word(last.alto, last.lamb)}); ALTO flatter "
        f"at {sum(flatter)} of {len(flatter)} batch sizes{drift}",
    )


def _scale(task: TaskEvidence) -> float:
    return 100.0 if task.metric == "accuracy" else 1.0


def claims(evidence: Evidence) -> list[Claim]:
    tasks_alto = [t for t in evidence.tasks if ALTO in t.arms]
    per1, per2, per3 = [], [], []
    for t in tasks_alto:
        alphas = [(b, t.points[(b, ALTO)].settings.get("alpha")) for b in _with(t, ALTO)]
        per1.append((t.task, judge_alpha_sign(alphas)))
        if BASELINE in t.arms:
            ups, flats = [], []
            for b in t.batch_sizes:
                a, lamb = t.points.get((b, ALTO)), t.points.get((b, BASELINE))
                if a is None or lamb is None:
                    continue
                ups.append(UpliftPoint(b, _uplift(t, a), _noise(t, a, lamb)))
                flats.append(
                    FlatPoint(
                        b,
                        a.top_eigenvalue,
                        lamb.top_eigenvalue,
                        a.drift_from_start,
                        lamb.drift_from_start,
                    )
                )
            per2.append((t.task, judge_uplift_growth(ups)))
            per3.append((t.task, judge_flatness(flats)))
    out = []
    for title, per, rule in (
        (
            "Best alpha is positive at small batch and negative at large batch",
            per1,
            judge_alpha_sign.__doc__,
        ),
        ("ALTO's gain over Lamb grows with batch size", per2, judge_uplift_growth.__doc__),
        (
            "ALTO finds flatter minima (smaller top Hessian eigenvalue) than Lamb",
            per3,
            judge_flatness.__doc__,
        ),
    ):
        out.append(
            Claim(title, combine([v.verdict for _, v in per]), tuple(per), _oneline(rule or ""))
        )
    return out


def _oneline(doc: str) -> str:
    return " ".join(doc.split())


def _with(task: TaskEvidence, arm: str) -> list[int]:
    return [b for b in task.batch_sizes if (b, arm) in task.points]


def _uplift(task: TaskEvidence, point: ArmPoint) -> float | None:
    return None if point.uplift is None else point.uplift * _scale(task)


def gain(task: TaskEvidence, batch_size: int, rival: str) -> float | None:
    """ALTO's gain over another arm in display units, positive = ALTO better: the stored
    uplift for Lamb (the dispatcher's baseline), the same difference for any other arm."""
    a, b = task.points.get((batch_size, ALTO)), task.points.get((batch_size, rival))
    if a is None or b is None:
        return None
    if rival == BASELINE and a.uplift is not None:
        return _uplift(task, a)
    if a.metric is None or b.metric is None:
        return None
    sign = 1.0 if task.direction == "max" else -1.0
    return sign * (a.metric - b.metric) * _scale(task)


def _noise(task: TaskEvidence, a: ArmPoint, b: ArmPoint) -> float | None:
    """Standard error of the difference of two means over seeds (None with one seed)."""
    if a.metric_std is None or b.metric_std is None or min(a.n_seeds, b.n_seeds) < 2:
        return None
    if not (_finite(a.metric_std) and _finite(b.metric_std)):
        return None
    variance = a.metric_std**2 / a.n_seeds + b.metric_std**2 / b.n_seeds
    return math.sqrt(variance) * _scale(task)


# --- formatting ---------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def metric_cell(task: TaskEvidence, point: ArmPoint | None) -> str:
    """'98.97 ± 0.12' (accuracy in %, perplexity as is), or the single value."""
    if point is None or point.metric is None:
        return "-"
    scale = _scale(task)
    if not math.isfinite(point.metric):
        return str(point.metric)
    text = f"{point.metric * scale:.2f}"
    if point.n_seeds < 2:
        return f"{text} (1 seed)"
    if point.metric_std is not None and math.isfinite(point.metric_std):
        text += f" ± {point.metric_std * scale:.2f}"
    return text


def _signed(value: float | None) -> str:
    return "-" if value is None else (str(value) if not math.isfinite(value) else f"{value:+.2f}")


def _metric_label(task: TaskEvidence) -> str:
    return "accuracy, %" if task.metric == "accuracy" else task.metric


def _uplift_unit(task: TaskEvidence) -> str:
    return "points" if task.metric == "accuracy" else f"{task.metric} difference"


def results_table(task: TaskEvidence) -> list[str]:
    arms = task.arms
    seeds = sorted({p.n_seeds for p in task.points.values()})
    seed_text = "/".join(str(s) for s in seeds)
    rivals = [a for a in arms if a != ALTO] if ALTO in arms else []
    head = ["batch size", *arms] + [f"{ALTO} − {a}" for a in rivals]
    if ALTO in arms:
        head += ["best alpha", "best beta1"]
    head += [f"lr {a}" for a in arms] + ["trials " + " / ".join(arms)]
    lines = [
        f"{_metric_label(task)}: mean ± std over {seed_text} seeds of the recommended setting "
        f"of each arm; `{ALTO} − x` is ALTO's gain over arm x in {_uplift_unit(task)} "
        f"(positive = ALTO better; over {BASELINE} it is the recommendation's uplift).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for b in task.batch_sizes:
        row = [str(b)] + [metric_cell(task, task.points.get((b, a))) for a in arms]
        row += [_signed(gain(task, b, a)) for a in rivals]
        if ALTO in arms:
            s = task.points[(b, ALTO)].settings if (b, ALTO) in task.points else {}
            row += [_num(s.get("alpha")), _num(s.get("beta1"), 4)]
        for a in arms:
            p = task.points.get((b, a))
            row.append(_num(p.settings.get("lr")) if p else "-")
        row.append(
            " / ".join(
                str(task.points[(b, a)].n_trials) if (b, a) in task.points else "-" for a in arms
            )
        )
        lines.append("| " + " | ".join(row) + " |")
    return lines


def flatness_table(task: TaskEvidence, batch_sizes: Sequence[int]) -> list[str]:
    lines = [
        "| batch size | arm | top eigenvalue | converged | drift from start | drift over window |",
        "|---|---|---|---|---|---|",
    ]
    for b in batch_sizes:
        for a in task.arms:
            p = task.points.get((b, a))
            if p is None:
                continue
            lines.append(
                f"| {b} | {a} | {_num(p.top_eigenvalue)} | "
                f"{'yes' if p.eigen_converged else 'no'} | {_num(p.drift_from_start)} | "
                f"{_num(p.drift_over_window)} |"
            )
    return lines


# --- plots --------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log2_axis(ax: Any, batch_sizes: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    # Fixed limits: an arm with no result at any batch size leaves nothing to scale by.
    ax.set_xlim(min(batch_sizes) / 1.5, max(batch_sizes) * 1.5)
    ax.set_xticks(list(batch_sizes))
    ax.set_xticklabels([str(b) for b in batch_sizes])
    ax.set_xlabel("batch size")
    ax.grid(True, alpha=0.3)


def plot_metric(evidence: Evidence, path: Path) -> None:
    plt = _pyplot()
    tasks = evidence.tasks
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        scale = _scale(t)
        for a in t.arms:
            pts = [t.points[(b, a)] for b in _with(t, a)]
            pts = [p for p in pts if _finite(p.metric)]
            ax.errorbar(
                [p.batch_size for p in pts],
                [p.metric * scale for p in pts],
                yerr=[(p.metric_std or 0.0) * scale for p in pts],
                marker="o",
                capsize=3,
                label=a,
            )
        _log2_axis(ax, t.batch_sizes)
        ax.set_ylabel(_metric_label(t))
        ax.set_title(f"{t.task}: best setting per arm (mean ± std over seeds)", fontsize=9)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alpha_beta1(evidence: Evidence, path: Path) -> None:
    plt = _pyplot()
    tasks = [t for t in evidence.tasks if ALTO in t.arms] or list(evidence.tasks)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 6.5), squeeze=False)
    for col, t in enumerate(tasks):
        bs = _with(t, ALTO)
        alphas = [t.points[(b, ALTO)].settings.get("alpha", math.nan) for b in bs]
        beta1s = [t.points[(b, ALTO)].settings.get("beta1", math.nan) for b in bs]
        ax = axes[0][col]
        ax.plot(bs, alphas, marker="o", color="C0")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel("best alpha (symlog)")
        ax.set_title(f"{t.task}: ALTO's recommended alpha and beta1", fontsize=9)
        _log2_axis(ax, t.batch_sizes)
        ax = axes[1][col]
        ax.plot(bs, beta1s, marker="o", color="C1")
        ax.set_ylim(0, 1)
        ax.set_ylabel("best beta1")
        _log2_axis(ax, t.batch_sizes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_eigenvalue(evidence: Evidence, path: Path) -> None:
    plt = _pyplot()
    tasks = evidence.tasks
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        for a in t.arms:
            pts = [t.points[(b, a)] for b in _with(t, a)]
            pts = [p for p in pts if _finite(p.top_eigenvalue) and p.top_eigenvalue != 0]
            ax.plot(
                [p.batch_size for p in pts],
                [abs(p.top_eigenvalue) for p in pts],
                marker="o",
                label=a,
            )
        ax.set_yscale("log")
        _log2_axis(ax, t.batch_sizes)
        ax.set_ylabel("|top Hessian eigenvalue| (log)")
        ax.set_title(f"{t.task}: sharpness of each arm's best trial", fontsize=9)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- provenance ---------------------------------------------------------------------------


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


# --- the report ---------------------------------------------------------------------------


def render(evidence: Evidence, provenance: Provenance) -> str:
    out = [
        "# Evidence: ALTO against Lamb and AdamW across batch sizes",
        "",
        "Generated by `alto report` from the database (sweep "
        + ", ".join(str(i) for i in evidence.sweep_ids)
        + "). Every trial is real training run by the product itself: one Optuna study per "
        "task, batch size and optimizer arm with the same trial budget per arm, then the "
        "best setting of each arm re-run with the other seeds. Do not edit by hand: "
        "regenerate with the command at the end.",
        "",
    ]
    for t in evidence.tasks:
        largest = t.batch_sizes[-1:] if t.batch_sizes else ()
        out += [f"## {t.task}", "", *results_table(t), ""]
        out += [
            f"Flatness of each arm's recommended trial at the largest batch size ({largest[0]})"
            if largest
            else "Flatness: nothing measured",
            "(top Hessian eigenvalue by power iteration on a fixed validation batch; "
            "parameter drift ||θ_k − θ_0|| and over the last window):",
            "",
            *flatness_table(t, largest),
            "",
            "Method: "
            + "; ".join(sorted({p.flatness_method for p in t.points.values() if p.flatness_method}))
            + ". A drift over the window is NaN when a trial ran fewer epochs than the window.",
            "",
            "<details><summary>Flatness at every batch size</summary>",
            "",
            *flatness_table(t, t.batch_sizes),
            "",
            "</details>",
            "",
        ]
        where = f"`/dashboard?task={t.task}`"
        if t.newest_on_dashboard:
            out.append(
                f"The dashboard's overview page {where} (served by `alto serve` on this "
                "database) shows these same recommendations: they are the newest of this task."
            )
        else:
            out.append(
                f"Newer recommendations of {t.task} exist in this database, so the dashboard "
                f"overview {where} shows those, not the ones above."
            )
        out.append("")
    out += [
        "## Plots",
        "",
        "![metric vs batch size](metric_vs_batch.png)",
        "",
        "![best alpha and beta1 vs batch size](best_alpha_beta1.png)",
        "",
        "![top Hessian eigenvalue per arm](eigenvalue.png)",
        "",
        "## Paper claims vs what we measured",
        "",
        "Each verdict is computed from the numbers above by the rule shown; a claim over "
        "several tasks holds only where every task agrees (otherwise: mixed). The metric of "
        "a recommended setting is the mean over seeds of the setting that won the search, "
        "so it is optimistic by the selection; Lamb and AdamW are selected the same way.",
        "",
    ]
    for i, claim in enumerate(claims(evidence), 1):
        out += [f"### {i}. {claim.title}", "", f"**Verdict: {claim.verdict}**", ""]
        for task, v in claim.per_task:
            out.append(f"- {task}: **{v.verdict}**: {v.detail}.")
        out += ["", f"Rule: {claim.rule}", ""]
    span, job_sum = _jobs_time(evidence.jobs)
    counts: dict[str, int] = {}
    for job in evidence.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
    sweeps = ", ".join(f"{s['id']} ({s['name']})" for s in evidence.sweeps)
    out += [
        "## How this was made",
        "",
        "```sh",
        provenance.command,
        "```",
        "",
        f"- Wall time of this command: {_duration(provenance.wall_time_s)}"
        if provenance.wall_time_s is not None
        else "- This report was regenerated from the database (no tuning in this command).",
        f"- Jobs ({statuses}): first start to last finish {_duration(span)}, "
        f"{_duration(job_sum)} in all (from the database).",
        f"- Sweeps: {sweeps}; jobs: {', '.join(str(j.id) for j in evidence.jobs)}.",
        f"- Database: `{redacted(evidence.database_url)}`.",
        f"- Machine: {os.cpu_count()} CPUs, {platform.platform()}.",
        f"- Versions: Python {platform.python_version()}, torch {_version('torch')}, "
        f"ray {_version('ray')}, optuna {_version('optuna')}, "
        f"alto-tune {_version('alto-tune')}; git commit {_git_commit()}.",
        "- Regenerate: `alto report make "
        + " ".join(f"--sweep {i}" for i in evidence.sweep_ids)
        + " --out DIR`.",
        "",
    ]
    if provenance.sweep_files:
        for path, text in provenance.sweep_files.items():
            out += [f"`{path}`:", "", "```yaml", text.rstrip(), "```", ""]
    else:
        for s in evidence.sweeps:
            spec = yaml.safe_dump(s["spec"], sort_keys=False).rstrip()
            out += [f"Sweep {s['id']} as stored:", "", "```yaml", spec, "```", ""]
    return "\n".join(out)


def write_report(evidence: Evidence, provenance: Provenance, out_dir: Path) -> Path:
    if not evidence.tasks:
        raise click.ClickException("the sweep(s) have no jobs, so there is nothing to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_metric(evidence, out_dir / PNGS[0])
    plot_alpha_beta1(evidence, out_dir / PNGS[1])
    plot_eigenvalue(evidence, out_dir / PNGS[2])
    readme = out_dir / "README.md"
    readme.write_text(render(evidence, provenance))
    return readme


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


def _claim(dispatcher: Any, job_id: int) -> Job | None:
    """Claim one job of ours; a job an interrupted run left behind is claimable once its
    lease runs out, so wait for that."""
    while True:
        with dispatcher.database.unit_of_work(write=True) as uow:
            job = uow.jobs.claim(
                dispatcher.worker,
                dispatcher.settings.lease_seconds,
                job_id=job_id,
                max_abandoned=dispatcher.settings.job_max_abandoned,
            )
            current = uow.jobs.get(job_id)
        if job is not None or current is None or current.status != "running":
            return job
        if dispatcher.shutdown.is_set():
            return None
        wait = dispatcher.settings.lease_seconds
        if current.lease_expires_at is not None:
            from service.core.db import utcnow

            wait = (current.lease_expires_at - utcnow()).total_seconds() + 0.5
        click.echo(f"job {job_id} is held by {current.lease_owner}; waiting {wait:.0f} s")
        dispatcher.shutdown.wait(max(0.5, wait))


def run_sweeps(settings: Settings, sweep_ids: Sequence[int]) -> tuple[str, list[str]]:
    """Run every unfinished job of the sweeps here; returns (outcome, lines to print)."""
    from tqdm import tqdm

    from workers import tuning
    from workers.dispatcher import Dispatcher, publish_catalogue

    dispatcher = Dispatcher(settings, worker_id=f"alto-report:{os.getpid()}")
    publish_catalogue(dispatcher.database, dispatcher.worker)
    with dispatcher.database.unit_of_work() as uow:
        jobs = [j for s in sweep_ids for j in uow.sweeps.jobs(s)]
    todo = [j for j in jobs if j.status not in TERMINAL]
    lines = [f"job {j.id} ({j.task}) already {j.status}" for j in jobs if j.status in TERMINAL]
    if not todo:
        dispatcher.database.dispose()
        return "succeeded", lines
    resources = tuning.init_ray(settings.ray_address, settings.ray_num_cpus)
    # After ray.init (it installs handlers of its own): Ctrl-C hands the job back to the
    # queue at the next step, so `--resume-sweep` continues at once.
    signal.signal(signal.SIGTERM, dispatcher._on_signal)
    signal.signal(signal.SIGINT, dispatcher._on_signal)
    outcome = "succeeded"
    total = sum(j.trials_total for j in todo)
    try:
        with tqdm(total=total, initial=sum(j.trials_done for j in todo), unit="trial") as bar:
            for job in todo:
                if dispatcher.shutdown.is_set():
                    outcome = "shutdown"
                    break
                claimed = _claim(dispatcher, job.id)
                if claimed is None:
                    lines.append(f"job {job.id} could not be claimed (it finished meanwhile?)")
                    continue
                bar.set_description(f"job {job.id} {job.task}")

                def advance(trial: Any) -> None:
                    bar.update(1)
                    bar.set_postfix_str(f"{trial.status} {_num(trial.final_metric, 4)}")

                result = dispatcher.run_job(claimed, resources.get("CPU"), on_trial_end=advance)
                with dispatcher.database.unit_of_work() as uow:
                    final = uow.jobs.get(job.id)
                lines.append(
                    f"job {job.id} ({job.task}) {result}"
                    + (f": {final.error}" if final and final.error else "")
                )
                if result != "succeeded":
                    outcome = result
                if result == "shutdown":
                    break
    finally:
        tuning.shutdown_ray()
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
            from workers.dispatcher import publish_catalogue

            paths = list(sweep_files) or list(QUICK_SWEEPS if quick else FULL_SWEEPS)
            loaded = []
            for path in paths:
                spec, text = load_sweep(path)
                loaded.append((path, spec))
                texts[_shown(path)] = text
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
    finally:
        database.dispose()
    _summary(evidence, readme, wall)
    if outcome != "succeeded":
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

"""The report's three plots (metric, ALTO's best alpha and beta1 as the search samples
them, c = alpha (1 - beta1) and log10(1 - beta1), top Hessian eigenvalue, each against
batch size), drawn with matplotlib's Agg backend so that no display is
needed; matplotlib is imported only when a plot is drawn."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.report.claims import ALTO
from workers.report.evidence import Evidence, _with
from workers.report.units import _finite, _metric_label, _scale


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
                [p.metric * scale for p in pts],  # type: ignore[operator]  # all finite
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


def _c(alpha: float, beta1: float) -> float:
    """c = alpha (1 - beta1), what ALTO's stability rule |c| < 1 bounds; NaN if unknown."""
    c = alpha * (1.0 - beta1)
    return c if math.isfinite(c) else math.nan


def _log_one_minus_beta1(beta1: float) -> float:
    """log10(1 - beta1), the scale the search samples beta1 on; NaN if undefined."""
    if not math.isfinite(beta1) or beta1 >= 1.0:
        return math.nan
    return math.log10(1.0 - beta1)


def plot_alpha_beta1(evidence: Evidence, path: Path) -> None:
    """ALTO's best alpha and beta1 as the search samples them: c = alpha (1 - beta1) in
    (-1, 1) (raw alpha 471 at beta1 0.9989 is c = +0.52) and log10(1 - beta1)."""
    plt = _pyplot()
    tasks = [t for t in evidence.tasks if ALTO in t.arms] or list(evidence.tasks)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 6.5), squeeze=False)
    for col, t in enumerate(tasks):
        bs = _with(t, ALTO)
        settings = [t.points[(b, ALTO)].settings for b in bs]
        alphas = [float(s.get("alpha", math.nan)) for s in settings]
        beta1s = [float(s.get("beta1", math.nan)) for s in settings]
        ax = axes[0][col]
        cs = [_c(a, b) for a, b in zip(alphas, beta1s, strict=True)]
        ax.plot(bs, cs, marker="o", color="C0")
        ax.axhline(0.0, color="grey", lw=0.8)
        known = [c for c in cs if math.isfinite(c)]  # (-1, 1) unless a point lies outside
        ax.set_ylim(min([-1.0, *known]) - 0.05, max([1.0, *known]) + 0.05)
        ax.set_ylabel("best c = alpha (1 - beta1)")
        ax.set_title(f"{t.task}: ALTO's recommended c and log10(1 - beta1)", fontsize=9)
        _log2_axis(ax, t.batch_sizes)
        ax = axes[1][col]
        logs = [_log_one_minus_beta1(b) for b in beta1s]
        ax.plot(bs, logs, marker="o", color="C1")
        known = [v for v in logs if math.isfinite(v)]  # the search's 1 - beta1 is in [1e-3, 0.99]
        ax.set_ylim(min([-3.0, *known]) - 0.15, max([0.0, *known]) + 0.15)
        ax.set_ylabel("best log10(1 - beta1)")
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
                [abs(p.top_eigenvalue) for p in pts],  # type: ignore[arg-type]  # all finite
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

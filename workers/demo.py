"""``alto demo``: the paper's toy landscapes, plain Adam against E(Adam) with alpha < 0.

Writes one PNG in the spirit of the paper's Figure 1 and prints what happened,
including the f2 claim (E leaves the sharp minimum at 0.6 for the wide one at
0) across a grid of alpha and learning rates, since a single hand-picked
setting proves little.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap, LogNorm  # noqa: E402
from torch.optim import Optimizer  # noqa: E402

from alto_core import E  # noqa: E402
from alto_core.landscapes import LANDSCAPES, Landscape, trajectory  # noqa: E402

BETA1 = 0.99
DEMO_ALPHA = -90.0
DEMO_LR = 0.01
ESCAPE_ALPHAS = (0.0, -20.0, -40.0, -60.0, -80.0, -85.0, -90.0, -92.0, -93.0, -94.0, -95.0)
ESCAPE_LRS = (0.002, 0.005, 0.01, 0.02, 0.05)
# Plain Adam as a wide pale band underneath, so it stays visible where E follows it.
_STYLES: tuple[dict[str, Any], ...] = ({"lw": 6, "alpha": 0.45}, {"lw": 1.3}, {"lw": 1.3})


def adam(lr: float) -> Callable[[list[torch.Tensor]], Optimizer]:
    return lambda params: torch.optim.Adam(params, lr=lr)


def e_adam(lr: float, alpha: float) -> Callable[[list[torch.Tensor]], Optimizer]:
    return lambda params: E(torch.optim.Adam(params, lr=lr), alpha=alpha, beta=BETA1)


def f2_basin(x: float) -> int:
    """0: the sharp minimum at 0.6, 1: the wide one at 0, 2: elsewhere."""
    if abs(x - 0.6) < 0.1:
        return 0
    if abs(x) < 0.3:
        return 1
    return 2


@dataclass(frozen=True)
class EscapeMap:
    alphas: tuple[float, ...]
    lrs: tuple[float, ...]
    basin: np.ndarray  # (len(lrs), len(alphas))
    final_x: np.ndarray


def f2_escape_map(steps: int) -> EscapeMap:
    f2 = LANDSCAPES["f2"]
    final = np.zeros((len(ESCAPE_LRS), len(ESCAPE_ALPHAS)))
    for i, lr in enumerate(ESCAPE_LRS):
        for j, alpha in enumerate(ESCAPE_ALPHAS):
            make = adam(lr) if alpha == 0 else e_adam(lr, alpha)
            final[i, j] = trajectory(f2, make, steps)[-1, 0].item()
    basin = np.vectorize(f2_basin)(final)
    return EscapeMap(ESCAPE_ALPHAS, ESCAPE_LRS, basin, final)


def _plot_2d(ax: plt.Axes, ls: Landscape, paths: dict[str, torch.Tensor]) -> None:
    (x0, x1), (y0, y1) = ls.bounds
    xs, ys = torch.meshgrid(
        torch.linspace(x0, x1, 300, dtype=torch.float64),
        torch.linspace(y0, y1, 300, dtype=torch.float64),
        indexing="xy",
    )
    zs = ls.fn(torch.stack([xs, ys], dim=-1)).numpy() + 1e-6
    ax.contourf(
        xs.numpy(),
        ys.numpy(),
        zs,
        levels=np.logspace(-6, np.log10(zs.max()), 30),
        norm=LogNorm(),
        cmap="Greys",
    )
    for (label, path), style in zip(paths.items(), _STYLES, strict=False):
        p = path.numpy()
        ax.plot(p[:, 0], p[:, 1], label=label, **style)
        ax.plot(p[-1, 0], p[-1, 1], "o", ms=5, color=ax.lines[-1].get_color())
    ax.plot(*ls.start, "k*", ms=9)
    ax.set_title(f"{ls.name}: {ls.note}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")


def _plot_1d(ax: plt.Axes, ls: Landscape, paths: dict[str, torch.Tensor]) -> None:
    lo, hi = ls.bounds[0]
    grid = torch.linspace(lo, hi, 2000, dtype=torch.float64)[:, None]
    ax.plot(grid[:, 0].numpy(), ls.fn(grid).numpy(), color="0.6", lw=1)
    for (label, path), size in zip(paths.items(), (9, 3, 3), strict=False):
        x = path[:, 0].clamp(lo, hi)
        ax.plot(x.numpy(), ls.fn(x[:, None]).numpy(), ".", ms=size, alpha=0.5, label=label)
        end = path[-1:, :]
        ax.plot(end[0, 0].item(), ls.fn(end).item(), "o", ms=7, color=ax.lines[-1].get_color())
    ax.set_title(f"{ls.name}: {ls.note}", fontsize=9)
    ax.legend(fontsize=8)


def _plot_escape_map(ax: plt.Axes, emap: EscapeMap) -> None:
    cmap = ListedColormap(["#d62728", "#2ca02c", "#bbbbbb"])
    ax.imshow(emap.basin, cmap=cmap, vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(len(emap.alphas)), [f"{a:g}" for a in emap.alphas], fontsize=7)
    ax.set_yticks(range(len(emap.lrs)), [f"{lr:g}" for lr in emap.lrs], fontsize=7)
    ax.set_xlabel(f"alpha (beta1 = {BETA1}; alpha = 0 is plain Adam)", fontsize=8)
    ax.set_ylabel("Adam lr", fontsize=8)
    ax.set_title(
        "f2: where E(Adam) ends (red: sharp 0.6, green: wide 0, grey: elsewhere)", fontsize=8
    )


def run_demo(out: Path, steps: int, escape_steps: int) -> tuple[dict, EscapeMap]:
    settings = {"Adam": adam(DEMO_LR), f"E(Adam) alpha={DEMO_ALPHA:g}": e_adam(DEMO_LR, DEMO_ALPHA)}
    results: dict[str, dict[str, torch.Tensor]] = {}
    for name, ls in LANDSCAPES.items():
        results[name] = {label: trajectory(ls, make, steps) for label, make in settings.items()}
    emap = f2_escape_map(escape_steps)
    # The f2 panel also shows the one alpha of the grid that escapes most often.
    escapes = (emap.basin == 1).sum(axis=0)
    best = int(np.argmax(escapes))
    best_alpha = emap.alphas[best]
    if best_alpha not in (0.0, DEMO_ALPHA):
        label = f"E(Adam) alpha={best_alpha:g}"
        results["f2"][label] = trajectory(LANDSCAPES["f2"], e_adam(DEMO_LR, best_alpha), steps)

    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5), layout="constrained")
    _plot_2d(axes[0, 0], LANDSCAPES["rosenbrock"], results["rosenbrock"])
    _plot_2d(axes[0, 1], LANDSCAPES["squared-cardioid"], results["squared-cardioid"])
    _plot_1d(axes[0, 2], LANDSCAPES["f1"], results["f1"])
    _plot_1d(axes[1, 0], LANDSCAPES["f2"], results["f2"])
    ax = axes[1, 1]
    for (label, path), style in zip(results["f2"].items(), _STYLES, strict=False):
        ax.plot(path[:, 0].numpy(), label=label, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("x")
    ax.set_title("f2: x over steps", fontsize=9)
    ax.legend(fontsize=8)
    _plot_escape_map(axes[1, 2], emap)
    fig.suptitle(
        f"Adam vs E(Adam), lr={DEMO_LR:g}, beta1={BETA1}, {steps} steps (start: black star)",
        fontsize=11,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return results, emap


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("landscapes.png"),
    show_default=True,
    help="PNG to write.",
)
@click.option(
    "--steps",
    type=click.IntRange(10, 100_000),
    default=3000,
    show_default=True,
    help="Steps per trajectory.",
)
@click.option(
    "--escape-steps",
    type=click.IntRange(10, 100_000),
    default=3000,
    show_default=True,
    help="Steps per run of the f2 alpha x lr grid.",
)
def demo(out: Path, steps: int, escape_steps: int) -> None:
    """Run Adam and E(Adam) on the paper's toy landscapes and plot the trajectories."""
    results, emap = run_demo(out, steps, escape_steps)
    click.echo(f"{'landscape':<18} {'optimizer':<22} {'end point':<22} {'loss':>10} {'path':>7}")
    for name, paths in results.items():
        fn = LANDSCAPES[name].fn
        for label, path in paths.items():
            end = path[-1]
            length = (path[1:] - path[:-1]).norm(dim=-1).sum().item()
            point = "(" + ", ".join(f"{v:.3f}" for v in end.tolist()) + ")"
            click.echo(f"{name:<18} {label:<22} {point:<22} {fn(end).item():>10.3g} {length:>7.2f}")
    click.echo(
        "\nf2 from x0 = 0.95: basin reached after "
        f"{escape_steps} steps (S = sharp 0.6, W = wide 0, - = elsewhere)"
    )
    click.echo("lr \\ alpha " + "".join(f"{a:>6g}" for a in emap.alphas))
    for i, lr in enumerate(emap.lrs):
        click.echo(f"{lr:<11g}" + "".join(f"{'SW-'[b]:>6}" for b in emap.basin[i]))
    adam_escapes = int((emap.basin[:, 0] == 1).sum())
    e_escapes = int((emap.basin[:, 1:] == 1).sum())
    click.echo(
        f"plain Adam reaches the wide minimum in {adam_escapes} of {len(emap.lrs)} "
        f"settings; E(Adam) in {e_escapes} of {emap.basin[:, 1:].size}"
    )
    click.echo(f"wrote {out}")

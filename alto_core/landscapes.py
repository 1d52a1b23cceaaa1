"""Toy loss landscapes from the paper (Figure 1 and the appendix) and a trajectory runner.

Every function takes a tensor whose last dimension holds the coordinates and
returns the loss over the leading dimensions, so the same code evaluates one
point (for an optimizer) or a whole grid (for a contour plot).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["LANDSCAPES", "Landscape", "f1", "f2", "rosenbrock", "squared_cardioid", "trajectory"]


def rosenbrock(z: Tensor, a: float = 1.0, b: float = 100.0) -> Tensor:
    """(a - x)^2 + b (y - x^2)^2: a curved valley with its minimum at (a, a^2)."""
    x, y = z[..., 0], z[..., 1]
    return (a - x) ** 2 + b * (y - x**2) ** 2


def squared_cardioid(z: Tensor, a: float = 1.0) -> Tensor:
    """((x^2 + y^2 - a x)^2 - a^2 (x^2 + y^2))^2: zero along the whole cardioid curve.

    A valley of minima (the paper does not give its constants; a = 1 here).
    """
    x, y = z[..., 0], z[..., 1]
    r2 = x**2 + y**2
    return ((r2 - a * x) ** 2 - a**2 * r2) ** 2


def f1(z: Tensor) -> Tensor:
    """1 / (0.05 x sin^2(2x) + ln(x + 1)): ever lower minima further right (x > 0)."""
    x = z[..., 0]
    return 1.0 / (0.05 * x * torch.sin(2 * x) ** 2 + torch.log(x + 1))


def f2(z: Tensor) -> Tensor:
    """1 - exp(-900(x-0.6)^2) - exp(-900(x+0.6)^2) - exp(-25x^2).

    Two sharp minima at +-0.6 and a wide one at 0.
    """
    x = z[..., 0]
    return (
        1.0
        - torch.exp(-900 * (x - 0.6) ** 2)
        - torch.exp(-900 * (x + 0.6) ** 2)
        - torch.exp(-25 * x**2)
    )


@dataclass(frozen=True)
class Landscape:
    """A named landscape with the paper's (or a stated) starting point and plot bounds."""

    name: str
    fn: Callable[[Tensor], Tensor]
    start: tuple[float, ...]
    bounds: tuple[tuple[float, float], ...]
    note: str

    @property
    def dim(self) -> int:
        return len(self.start)


LANDSCAPES: dict[str, Landscape] = {
    ls.name: ls
    for ls in (
        Landscape(
            "rosenbrock",
            rosenbrock,
            (-1.5, 2.0),
            ((-2.0, 2.0), (-1.0, 3.0)),
            "curved valley, minimum at (1, 1)",
        ),
        Landscape(
            "squared-cardioid",
            squared_cardioid,
            (1.0, 1.2),
            ((-0.7, 2.3), (-1.6, 1.6)),
            "a valley of minima along the cardioid r = 1 + cos(t)",
        ),
        Landscape("f1", f1, (2.3,), ((1.5, 12.0),), "from x0 = 2.3; lower minima to the right"),
        Landscape(
            "f2",
            f2,
            (0.95,),
            ((-1.0, 1.0),),
            "from x0 = 0.95; sharp minima at +-0.6, wide minimum at 0",
        ),
    )
}


def trajectory(
    landscape: Landscape,
    make_optimizer: Callable[[list[Tensor]], Optimizer],
    steps: int,
    start: tuple[float, ...] | None = None,
) -> Tensor:
    """Run an optimizer on a landscape in float64; return the path, shape (steps + 1, dim)."""
    point = torch.tensor(start or landscape.start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([point])
    path = [point.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        landscape.fn(point).backward()
        optimizer.step()
        path.append(point.detach().clone())
    return torch.stack(path)

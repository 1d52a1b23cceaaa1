"""A job spec checked against the catalogue the workers published: the check create_job
makes before storing any job, and the one a sweep runs over all of its jobs at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from service.catalogue.repository import OptimizerInfo, TaskInfo
from service.catalogue.service import require_batch_size, require_optimizer, require_task
from service.core.errors import InvalidInput
from service.jobs.spec import ArmSpec, JobSpec, SearchRange
from service.storage import UnitOfWork


def _stability_errors(
    arm_index: int, opt: OptimizerInfo, spec_arm: ArmSpec
) -> Iterator[InvalidInput]:
    """Every (alpha, beta1) the ranges allow must satisfy |alpha (1 - beta1)| < 1."""
    if "alpha" not in opt.searched:
        return
    search_defaults = opt.defaults.get("search", {})
    alpha = spec_arm.search.get("alpha") or search_defaults.get("alpha")
    beta1 = spec_arm.search.get("beta1") or search_defaults.get("beta1")
    if alpha is None or beta1 is None:
        return  # sampled through c = alpha (1 - beta1) in (-1, 1): stable by construction
    a_low, a_high = _bounds(alpha)
    b_low, _ = _bounds(beta1)
    if not 0 <= b_low < 1:
        yield InvalidInput(
            f"beta1 must lie in [0, 1), the range starts at {b_low}",
            field=f"arms[{arm_index}].search.beta1",
            value=b_low,
        )
        return
    worst = max(abs(a_low), abs(a_high)) * (1 - b_low)
    if worst >= 1:
        yield InvalidInput(
            f"the alpha range [{a_low}, {a_high}] with beta1 from {b_low} breaks the stability "
            f"rule |alpha (1 - beta1)| < 1 (worst case {worst:.4g}); narrow alpha to "
            f"|alpha| < {1 / (1 - b_low):.4g} or raise beta1's lower bound",
            field=f"arms[{arm_index}].search.alpha",
            value={"low": a_low, "high": a_high},
        )


def _bounds(r: SearchRange | dict[str, Any]) -> tuple[float, float]:
    if isinstance(r, dict):
        return float(r["low"]), float(r["high"])
    return r.low, r.high


def spec_errors(uow: UnitOfWork, spec: JobSpec) -> Iterator[InvalidInput]:
    """Every way the spec disagrees with the published catalogue, each naming its field
    (a sweep reports them all at once; a single job stops at the first)."""
    try:
        task = require_task(uow, spec.task, "task")
    except InvalidInput as exc:
        yield exc
    else:
        for i, batch in enumerate(spec.batch_sizes):
            try:
                require_batch_size(task, batch, f"batch_sizes[{i}]")
            except InvalidInput as exc:
                yield exc
    for i, arm in enumerate(spec.arms):
        try:
            opt = require_optimizer(uow, arm.optimizer, f"arms[{i}].optimizer")
        except InvalidInput as exc:
            yield exc
            continue
        for name in arm.search:
            if name not in opt.searched:
                yield InvalidInput(
                    f"optimizer {opt.name!r} does not search {name!r} "
                    f"(it searches: {', '.join(opt.searched)})",
                    field=f"arms[{i}].search.{name}",
                    value=name,
                )
        yield from _stability_errors(i, opt, arm)


def validate_spec(uow: UnitOfWork, spec: JobSpec) -> TaskInfo:
    """Check the spec against the published catalogue; raise InvalidInput naming the field."""
    for error in spec_errors(uow, spec):
        raise error
    return require_task(uow, spec.task, "task")

"""A sweep: tasks x batch sizes x optimizer arms x budgets, expanded into job specs.

The sweep reuses the job schema rather than restating it: its ``defaults`` are the
fields of a job spec (with the budget fields named ``trials`` and ``epochs``, as in a
budget), and each expanded job is validated as a `JobSpec`. A job already runs one
study per (batch size, arm), and the tuning engine warm-starts a batch size from the
nearest sizes already tuned in the same job, so by default a sweep makes one job per
(task, budget) holding every batch size and arm; ``group_batch_sizes: false`` makes
one job per (task, batch size, budget) instead, for many workers at once.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from service.core.errors import InvalidInput
from service.jobs.repository import Job
from service.jobs.schemas import Page
from service.jobs.spec import DEFAULT_OPTIMIZERS, ArmSpec, BatchSize, JobSpec
from service.sweeps.repository import Sweep, SweepTotals

MAX_JOBS = 256

_JOB_FIELDS = JobSpec.model_fields
_AXES = ("task", "batch_sizes", "arms")  # the sweep's own lists
# The budget fields of a job, by their shorter names in a sweep.
_SHORT = {"trials_per_study": "trials", "epochs_per_trial": "epochs"}
_LONG = {short: long for long, short in _SHORT.items()}


def _job_field(name: str) -> tuple[Any, Any]:
    info = copy.copy(_JOB_FIELDS[name])
    return info.annotation, info


# Any: the fields are unpacked beside create_model's own keyword arguments.
_SHARED: dict[str, Any] = {_SHORT.get(n, n): _job_field(n) for n in _JOB_FIELDS if n not in _AXES}
SweepDefaults = create_model(
    "SweepDefaults",
    __config__=ConfigDict(extra="forbid", strict=True),
    __doc__="The job spec fields every job of the sweep shares (see POST /jobs).",
    **_SHARED,
)


def _optional(name: str) -> tuple[Any, Any]:
    info = _JOB_FIELDS[name]
    return Annotated[int, *info.metadata] | None, Field(None, description=info.description)


Budget = create_model(
    "Budget",
    __config__=ConfigDict(extra="forbid", strict=True),
    __doc__="Trials per study and epochs per trial; unset ones come from the defaults.",
    trials=_optional("trials_per_study"),
    epochs=_optional("epochs_per_trial"),
)


def _unique(values: list[Any], what: str) -> list[Any]:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ValueError(f"{what} must be unique: {value!r} again at index {i}")
        seen.add(value)
    return values


class SweepSpec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "digits-bs-sweep",
                    "defaults": {"trials": 8, "epochs": 3},
                    "tasks": ["digits-mlp"],
                    "batch_sizes": [32, 128, 512],
                    "optimizers": ["alto", "lamb"],
                    "budgets": [{"trials": 4, "epochs": 2}, {"trials": 8, "epochs": 4}],
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    defaults: SweepDefaults = Field(default_factory=SweepDefaults)
    tasks: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=32
    )
    batch_sizes: list[BatchSize] = Field(min_length=1, max_length=32)
    optimizers: list[Annotated[str, Field(min_length=1, max_length=50)] | ArmSpec] = Field(
        default_factory=lambda: list[str | ArmSpec](DEFAULT_OPTIMIZERS),
        min_length=1,
        max_length=8,
        description="Optimizer arms, by name or as full arm objects of a job spec.",
    )
    budgets: list[Budget] | None = Field(
        None, min_length=1, max_length=16, description="Default: one budget, the defaults."
    )
    group_batch_sizes: bool = Field(
        True,
        description="One job per (task, budget) holding every batch size (the engine "
        "warm-starts each size from its tuned neighbours), or one job per batch size.",
    )

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, value: list[str]) -> list[str]:
        return _unique(value, "tasks")

    @field_validator("batch_sizes")
    @classmethod
    def _unique_batches(cls, value: list[int]) -> list[int]:
        return _unique(value, "batch sizes")

    @field_validator("optimizers")
    @classmethod
    def _unique_arms(cls, value: list[str | ArmSpec]) -> list[str | ArmSpec]:
        _unique([a if isinstance(a, str) else a.optimizer for a in value], "optimizers")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> SweepSpec:
        if (n := self.job_count()) > MAX_JOBS:
            raise ValueError(f"the sweep expands into {n} jobs, more than {MAX_JOBS}")
        return self

    def arms(self) -> list[dict[str, Any]]:
        return [
            {"optimizer": a} if isinstance(a, str) else a.model_dump(mode="json")
            for a in self.optimizers
        ]

    def budget_list(self) -> list[dict[str, Any]]:
        if self.budgets is None:
            return [{}]
        return [b.model_dump(exclude_none=True) for b in self.budgets]

    def job_count(self) -> int:
        per_task = len(self.budget_list())
        return len(self.tasks) * per_task * (1 if self.group_batch_sizes else len(self.batch_sizes))


@dataclass(frozen=True)
class PlannedJob:
    """One expanded job and where its parts came from in the sweep (to place errors)."""

    spec: dict[str, Any]
    task_index: int
    budget_index: int | None
    batch_indices: tuple[int, ...]
    budget_keys: frozenset[str]


def expand(sweep: SweepSpec) -> list[PlannedJob]:
    """The job specs of a sweep, tasks outermost, then budgets, then batch sizes."""
    shared = {
        _LONG.get(k, k): v
        for k, v in sweep.defaults.model_dump(mode="json", exclude_unset=True).items()
    }
    batch_groups = (
        [tuple(range(len(sweep.batch_sizes)))]
        if sweep.group_batch_sizes
        else [(i,) for i in range(len(sweep.batch_sizes))]
    )
    planned = []
    for ti, task in enumerate(sweep.tasks):
        for bi, budget in enumerate(sweep.budget_list()):
            for group in batch_groups:
                spec = {
                    **shared,
                    **{_LONG[k]: v for k, v in budget.items()},
                    "task": task,
                    "batch_sizes": [sweep.batch_sizes[i] for i in group],
                    "arms": sweep.arms(),
                }
                planned.append(
                    PlannedJob(
                        spec=spec,
                        task_index=ti,
                        budget_index=None if sweep.budgets is None else bi,
                        batch_indices=group,
                        budget_keys=frozenset(budget),
                    )
                )
    return planned


_HEAD = re.compile(r"^([A-Za-z_]\w*)(?:\[(\d+)\])?(.*)$")


def sweep_field(job_field: str, job: PlannedJob) -> str:
    """Where in the sweep a job spec's field came from: ``batch_sizes[0]`` of the second
    batch-size job is the sweep's ``batch_sizes[1]``, ``trials_per_study`` is the budget's
    ``trials`` or the defaults', ``arms[1]...`` is ``optimizers[1]...``."""
    match = _HEAD.match(job_field)
    if match is None:
        return job_field
    head, index, rest = match.group(1), match.group(2), match.group(3)
    if head == "task":
        return f"tasks[{job.task_index}]{rest}"
    if head == "batch_sizes":
        if index is None:
            return f"batch_sizes{rest}"
        return f"batch_sizes[{job.batch_indices[int(index)]}]{rest}"
    if head == "arms":
        return f"optimizers{'' if index is None else f'[{index}]'}{rest}"
    short = _SHORT.get(head, head)
    where = f"[{index}]" if index is not None else ""
    if short in job.budget_keys and job.budget_index is not None:
        return f"budgets[{job.budget_index}].{short}{where}{rest}"
    return f"defaults.{short}{where}{rest}"


def _loc_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text


def parse_job(job: PlannedJob) -> tuple[JobSpec | None, list[InvalidInput]]:
    """The job spec of a planned job, or its schema errors placed in the sweep."""
    try:
        return JobSpec.model_validate(job.spec), []
    except ValidationError as exc:
        return None, [
            InvalidInput(
                str(e.get("msg", "invalid")),
                field=sweep_field(_loc_text(tuple(e.get("loc", ()))) or "body", job),
                value=e.get("input"),
            )
            for e in exc.errors()
        ]


class SweepSummary(Sweep):
    totals: SweepTotals


class SweepDetail(SweepSummary):
    jobs: list[Job]


class SweepPage(Page):
    items: list[SweepSummary]

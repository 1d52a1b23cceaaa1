"""What a client sends to create a job: the spec, typed from the API down to storage (a
job's record carries it as a `JobSpec`) and read by the workers. Defaults live here only."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BatchSize = Annotated[int, Field(ge=1, le=1 << 24)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class SearchRange(BaseModel):
    """A search range for one hyperparameter (log-uniform when ``log``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    low: float = Field(ge=-1e6, le=1e6)
    high: float = Field(ge=-1e6, le=1e6)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


class ArmSpec(BaseModel):
    """One optimizer arm: ALTO searches alpha, beta1 and lr; baselines search lr."""

    model_config = ConfigDict(extra="forbid", strict=True)

    optimizer: str = Field(min_length=1, max_length=50, examples=["alto", "lamb", "adamw"])
    search: dict[Annotated[str, Field(max_length=50)], SearchRange] = Field(
        default_factory=dict,
        max_length=16,
        description="Overrides of the default search ranges, by hyperparameter name.",
    )


class Resources(BaseModel):
    """What one trial asks of the Ray cluster (fractions allowed)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cpu: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)


class EarlyStopping(BaseModel):
    """ASHA early stopping of unpromising trials."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = True
    grace_period: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Epochs before a trial may stop. Default: a third of epochs_per_trial, at "
        "least 1 (at a large batch size an epoch is only a few steps, too few to judge a trial).",
    )
    reduction_factor: int = Field(3, ge=2, le=16)


DEFAULT_OPTIMIZERS = ("alto", "lamb")


def _default_arms() -> list[ArmSpec]:
    return [ArmSpec(optimizer=name) for name in DEFAULT_OPTIMIZERS]


class JobSpec(BaseModel):
    """A tuning job: one Optuna study per batch size and optimizer arm."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "task": "digits-mlp",
                    "batch_sizes": [64, 1024],
                    "arms": [{"optimizer": "alto"}, {"optimizer": "lamb"}],
                    "trials_per_study": 8,
                    "epochs_per_trial": 5,
                }
            ]
        },
    )

    task: str = Field(min_length=1, max_length=100)
    batch_sizes: list[BatchSize] = Field(min_length=1, max_length=32)
    arms: list[ArmSpec] = Field(default_factory=_default_arms, min_length=1, max_length=8)
    trials_per_study: int = Field(16, ge=1, le=10_000)
    epochs_per_trial: int | None = Field(
        None, ge=1, le=10_000, description="Default: the task's default epochs."
    )
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=16)
    reevaluate_top: int = Field(
        0, ge=0, le=10, description="Re-run the best N settings of each study with every seed."
    )
    resources: Resources = Field(default_factory=Resources)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    max_concurrent_trials: int | None = Field(None, ge=1, le=1024)
    clip_norm: float | None = Field(
        None, gt=0, le=1e6, description="Clip the gradient norm in the training loop."
    )
    bf16: bool = Field(False, description="bf16 autocast for trials that run on a GPU.")

    @field_validator("batch_sizes")
    @classmethod
    def _unique_batches(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("batch sizes must be unique")
        return value

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, value: list[ArmSpec]) -> list[ArmSpec]:
        names = [a.optimizer for a in value]
        if len(set(names)) != len(names):
            raise ValueError("optimizer arms must be unique")
        return value

    def studies(self) -> int:
        return len(self.batch_sizes) * len(self.arms)

    def trials_total(self) -> int:
        # Re-evaluation re-runs the top settings with every seed but the first.
        per_study = self.trials_per_study + self.reevaluate_top * (len(self.seeds) - 1)
        return self.studies() * per_study

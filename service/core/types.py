"""Types shared by storage records and API schemas."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _parse_float(value: Any) -> Any:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    return value


def _dump_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


# JSON has no NaN or Infinity: a diverged trial's metric or an infinite eigenvalue is
# written as the string "NaN", "Infinity" or "-Infinity" (the convention of Protocol
# Buffers' JSON mapping), and the schema says so.
JSONFloat = Annotated[
    float,
    BeforeValidator(_parse_float),
    PlainSerializer(_dump_float, return_type=Any),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "enum": list(_NON_FINITE)}]}),
]


class Record(BaseModel):
    """A frozen value object: what the storage layer returns instead of ORM rows."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

"""alto_core: the adaptor E, the ALTO optimizer, Lamb, and flatness diagnostics.

Zhao, Li, Zhou, Tan, Jia, "Exploring Landscapes for Better Minima along Valleys",
NeurIPS 2025 (arXiv 2510.27153). This package imports torch and nothing else of
ALTO Tune's.
"""

from alto_core.adaptor import E
from alto_core.flatness import (
    DriftFigures,
    EigenEstimate,
    ParameterDrift,
    top_hessian_eigenvalue,
)
from alto_core.lamb import ALTO, Lamb
from alto_core.registry import (
    OPTIMIZERS,
    OptimizerSpec,
    PaperDefaults,
    create_optimizer,
    param_groups_weight_decay,
    recommended_defaults,
)

__all__ = [
    "ALTO",
    "OPTIMIZERS",
    "DriftFigures",
    "E",
    "EigenEstimate",
    "Lamb",
    "OptimizerSpec",
    "PaperDefaults",
    "ParameterDrift",
    "create_optimizer",
    "param_groups_weight_decay",
    "recommended_defaults",
    "top_hessian_eigenvalue",
]

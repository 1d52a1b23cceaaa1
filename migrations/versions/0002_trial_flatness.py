"""trial flatness: top Hessian eigenvalue and parameter drift of measured trials

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trial_flatness",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("top_eigenvalue", sa.Float(precision=53), nullable=True),
        sa.Column("eigen_converged", sa.Boolean(), nullable=False),
        sa.Column("eigen_iterations", sa.Integer(), nullable=False),
        sa.Column("drift_from_start", sa.Float(precision=53), nullable=True),
        sa.Column("drift_over_window", sa.Float(precision=53), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["trials.id"],
            name=op.f("fk_trial_flatness_trial_id_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trial_id", name=op.f("pk_trial_flatness")),
    )


def downgrade() -> None:
    op.drop_table("trial_flatness")

"""The content policy's scores: per chunk (its stored segments' sampled frames) and per task
(the verdict: flagged, the highest score, the samples), issue 26.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('chunks', sa.Column('content_policy', sa.JSON(), nullable=True))
    op.add_column('tasks', sa.Column('content_policy', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('tasks', 'content_policy')
    op.drop_column('chunks', 'content_policy')

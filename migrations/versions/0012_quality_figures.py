"""The quality gate's figures: per chunk (its stored segments' sampled frames) and per task
(all of them, with the summary reported), issue 27.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('chunks', sa.Column('quality', sa.JSON(), nullable=True))
    op.add_column('tasks', sa.Column('quality', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('tasks', 'quality')
    op.drop_column('chunks', 'quality')

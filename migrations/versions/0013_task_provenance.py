"""Provenance: a task records whether its frames are watermarked and how its output was signed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('provenance', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('tasks', 'provenance')

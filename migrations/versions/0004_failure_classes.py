"""Failure classes: a chunk's lost workers and infrastructure failures are counted apart
from the attempts its work may spend.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('chunks', sa.Column('lost', sa.Integer(), server_default='0', nullable=False))
    op.add_column('chunks', sa.Column('infra_failing_since', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('chunks', 'infra_failing_since')
    op.drop_column('chunks', 'lost')

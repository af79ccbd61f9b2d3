"""Lease fencing: a chunk remembers the token of the lease its running attempt started under,
so that a holder whose lease was taken over cannot end the chunk.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('chunks', sa.Column('lease_token', sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column('chunks', 'lease_token')

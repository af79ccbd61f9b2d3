"""A tenant's s3:// allow-list: the bucket and key prefixes its s3:// inputs must fall under.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tenants', sa.Column('s3_allow', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('tenants', 's3_allow')

"""Tenants and API keys; every task belongs to a tenant (existing ones to ``default``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    tenants = op.create_table('tenants',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('submit_rate', sa.String(length=32), nullable=True),
    sa.Column('max_queued', sa.Integer(), nullable=True),
    sa.Column('max_running', sa.Integer(), nullable=True),
    sa.Column('monthly_frames', sa.BigInteger(), nullable=True),
    sa.Column('webhook_secret', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.execute(
        tenants.insert().values(
            name='default', webhook_secret='whsec_' + secrets.token_urlsafe(32), created_at=sa.func.now()
        )
    )
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant'], ['tenants.name'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_api_keys_tenant'), 'api_keys', ['tenant'], unique=False)
    op.add_column('tasks', sa.Column('tenant', sa.String(length=64), server_default='default', nullable=False))
    op.create_foreign_key('fk_tasks_tenant', 'tasks', 'tenants', ['tenant'], ['name'])
    op.create_index('ix_tasks_tenant_created', 'tasks', ['tenant', 'created_at', 'id'], unique=False)
    op.create_index('ix_tasks_tenant_state', 'tasks', ['tenant', 'state', 'created_at', 'id'], unique=False)
    op.create_foreign_key('fk_usage_tenant', 'usage', 'tenants', ['tenant'], ['name'])


def downgrade() -> None:
    op.drop_constraint('fk_usage_tenant', 'usage', type_='foreignkey')
    op.drop_index('ix_tasks_tenant_state', table_name='tasks')
    op.drop_index('ix_tasks_tenant_created', table_name='tasks')
    op.drop_constraint('fk_tasks_tenant', 'tasks', type_='foreignkey')
    op.drop_column('tasks', 'tenant')
    op.drop_index(op.f('ix_api_keys_tenant'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_table('tenants')

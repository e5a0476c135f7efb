"""circuit breaker: a batch pauses itself when its recent attempts fail wholesale

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-02 02:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('circuit_breaker', sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column('paused_reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
        batch_op.add_column(sa.Column('breaker_trip', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('breaker_buckets', sa.JSON(), nullable=True))
    op.create_table(
        'breaker_trip',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('workspace_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('connection_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('tripped_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['batch_id'], ['batch.id']),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('breaker_trip', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_breaker_trip_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_breaker_trip_workspace_id'), ['workspace_id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('breaker_trip', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_breaker_trip_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_breaker_trip_batch_id'))
    op.drop_table('breaker_trip')
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.drop_column('breaker_buckets')
        batch_op.drop_column('breaker_trip')
        batch_op.drop_column('paused_reason')
        batch_op.drop_column('circuit_breaker')

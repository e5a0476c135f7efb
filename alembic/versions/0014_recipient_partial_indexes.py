"""recipient indexes on attempt_id and ended_at only hold rows that have one

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 06:10:00

Every recipient is inserted without an attempt and without an end, so a full index on either
column got an entry per uploaded row that no query ever looks for: every query on them compares
the column to a value, which a partial index `WHERE … IS NOT NULL` answers (SQLite and
PostgreSQL both prove the comparison implies it). A 50,000-row upload writes two index entries
fewer per row.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('recipient', schema=None) as batch_op:
        batch_op.drop_index('ix_recipient_attempt')
        batch_op.drop_index('ix_recipient_batch_ended')
        batch_op.create_index(
            'ix_recipient_attempt',
            ['attempt_id'],
            unique=False,
            sqlite_where=sa.text('attempt_id IS NOT NULL'),
            postgresql_where=sa.text('attempt_id IS NOT NULL'),
        )
        batch_op.create_index(
            'ix_recipient_batch_ended',
            ['batch_id', 'ended_at'],
            unique=False,
            sqlite_where=sa.text('ended_at IS NOT NULL'),
            postgresql_where=sa.text('ended_at IS NOT NULL'),
        )


def downgrade() -> None:
    with op.batch_alter_table('recipient', schema=None) as batch_op:
        batch_op.drop_index('ix_recipient_batch_ended')
        batch_op.drop_index('ix_recipient_attempt')
        batch_op.create_index('ix_recipient_attempt', ['attempt_id'], unique=False)
        batch_op.create_index('ix_recipient_batch_ended', ['batch_id', 'ended_at'], unique=False)

"""workspace time zone and members: the zone the console shows times in; when each API key
was last used

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-02 02:15:00

`workspace.time_zone` stays null until the first sign-in, which sets it from the browser.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('workspace', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('time_zone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('last_used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
    with op.batch_alter_table('workspace', schema=None) as batch_op:
        batch_op.drop_column('time_zone')

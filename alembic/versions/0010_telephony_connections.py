"""telephony connections: a workspace's accounts at telephony platforms; numbers and agents
linked to them; the platform's call id stored with each attempt; a batch's voicemail option

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:10:00

Existing numbers become linked to a connection of their provider (one per workspace and
provider, named after it), and each agent to its bound number's: the simulator and the HTTP
runtime are connections like any other, and every workspace keeps working with no setup.
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMES = {"simulator": "Simulator", "http": "HTTP voice runtime"}


def upgrade() -> None:
    op.create_table(
        'connection',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('workspace_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('credentials', sa.Text(), nullable=False),
        sa.Column('credential_hints', sa.JSON(), nullable=False),
        sa.Column('base_url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column('calls_per_second', sa.Float(), nullable=False),
        sa.Column('next_call_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('connection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connection_workspace_id'), ['workspace_id'], unique=False)
    with op.batch_alter_table('phone_number', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connection_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.create_foreign_key('fk_phone_number_connection', 'connection', ['connection_id'], ['id'])
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connection_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column('external_agent_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('stream_url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True))
        batch_op.create_foreign_key('fk_agent_connection', 'connection', ['connection_id'], ['id'])
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('voicemail', sa.JSON(), nullable=True))
    with op.batch_alter_table('recipient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_call_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
    _link_existing()


def _link_existing() -> None:
    from batch_dashboard.ids import new_id

    bind = op.get_bind()
    pairs = bind.execute(
        sa.text("SELECT DISTINCT workspace_id, provider FROM phone_number ORDER BY 1, 2")
    ).all()
    now = datetime.now(UTC)
    for workspace_id, provider in pairs:
        connection_id = new_id("conn")
        bind.execute(
            sa.text(
                "INSERT INTO connection (id, workspace_id, provider, name, credentials, "
                "credential_hints, calls_per_second, created_at) VALUES (:id, :ws, :provider, "
                ":name, '', '{}', 0, :now)"
            ),
            {"id": connection_id, "ws": workspace_id, "provider": provider,
             "name": NAMES.get(provider, provider), "now": now},
        )
        bind.execute(
            sa.text(
                "UPDATE phone_number SET connection_id = :id "
                "WHERE workspace_id = :ws AND provider = :provider"
            ),
            {"id": connection_id, "ws": workspace_id, "provider": provider},
        )
    bind.execute(
        sa.text(
            "UPDATE agent SET connection_id = (SELECT phone_number.connection_id FROM phone_number "
            "WHERE phone_number.id = agent.phone_number_id) WHERE phone_number_id IS NOT NULL"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table('recipient', schema=None) as batch_op:
        batch_op.drop_column('provider_call_id')
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.drop_column('voicemail')
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.drop_constraint('fk_agent_connection', type_='foreignkey')
        batch_op.drop_column('stream_url')
        batch_op.drop_column('external_agent_id')
        batch_op.drop_column('connection_id')
    with op.batch_alter_table('phone_number', schema=None) as batch_op:
        batch_op.drop_constraint('fk_phone_number_connection', type_='foreignkey')
        batch_op.drop_column('external_id')
        batch_op.drop_column('connection_id')
    op.drop_table('connection')

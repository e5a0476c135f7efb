"""webhook secrets sealed at rest

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 23:55:00

Secrets stored in plaintext before this revision are sealed with BATCH_SECRET_KEY (or the
SQLite database's generated key file); see batch_dashboard/sealing.py.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from batch_dashboard.services.agents import reseal_webhook_secrets

    connection = op.get_bind()
    reseal_webhook_secrets(
        connection, database_url=connection.engine.url.render_as_string(hide_password=False)
    )


def downgrade() -> None:
    # Sealed secrets stay sealed: writing them back in plaintext is not a downgrade we offer.
    pass

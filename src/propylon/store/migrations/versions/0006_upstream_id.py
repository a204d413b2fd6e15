"""The upstream's own id of a mirrored (Google-hosted agent) interaction.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("upstream_id", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("upstream_id")

"""Tenants: every interaction and webhook belongs to one; API keys (hashed) name theirs.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("tenant", sa.Text, nullable=False, server_default="default"))
        batch.add_column(sa.Column("api_key_id", sa.Text))
    op.create_index("interactions_tenant_created", "interactions", ["tenant", "created"])
    op.create_index("interactions_key_created", "interactions", ["api_key_id", "created"])
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("tenant", sa.Text, nullable=False, server_default="default"))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("policy", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("revoked", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("tenant")
    op.drop_index("interactions_key_created", "interactions")
    op.drop_index("interactions_tenant_created", "interactions")
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("api_key_id")
        batch.drop_column("tenant")

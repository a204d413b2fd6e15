"""Registered webhooks and the outbox of deliveries.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("data", sa.Text, nullable=False),  # the Webhook resource, secrets included
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Text, primary_key=True),  # the `webhook-id` header: stable on retry
        sa.Column("webhook_id", sa.Text),  # None: a per-request `webhook_config.uris` target
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt", sa.Float, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("deliveries_due", "deliveries", ["state", "next_attempt"])


def downgrade() -> None:
    op.drop_index("deliveries_due", "deliveries")
    op.drop_table("deliveries")
    op.drop_table("webhooks")

"""Interactions and their append-only event logs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("updated", sa.Text, nullable=False),
        sa.Column("previous_interaction_id", sa.Text),
        sa.Column("background", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("input", sa.Text),
        sa.Column("input_steps", sa.Text, nullable=False),
        sa.Column("steps", sa.Text, nullable=False, server_default="[]"),
        sa.Column("usage", sa.Text),
        sa.Column("errors", sa.Text, nullable=False, server_default="[]"),
        sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("interactions_status", "interactions", ["status"])
    op.create_table(
        "events",
        sa.Column("interaction_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_index("interactions_status", "interactions")
    op.drop_table("interactions")

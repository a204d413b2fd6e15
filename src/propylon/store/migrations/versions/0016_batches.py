"""Gemini batches: a tenant's batch of generateContent requests (`batches`) and its requests,
in order, each with its result once answered (`batch_requests`).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),  # BATCH_STATE_PENDING, ...
        sa.Column("created", sa.Text, nullable=False),  # wire timestamps
        sa.Column("updated", sa.Text, nullable=False),
        sa.Column("ended", sa.Text),
        sa.Column("caller", sa.Text, nullable=False),  # the creator's key and policy, as JSON
        sa.Column("request_count", sa.Integer, nullable=False),
        sa.Column("succeeded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),  # a failed batch's google.rpc.Status, as JSON
    )
    op.create_index("batches_tenant_id", "batches", ["tenant", "id"])
    op.create_index("batches_state", "batches", ["state"])
    op.create_table(
        "batch_requests",
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("request", sa.Text, nullable=False),  # the GenerateContentRequest, as JSON
        sa.Column("metadata", sa.Text),  # the request's `metadata`, as JSON
        sa.Column("result", sa.Text),  # {"response": ...} or {"error": ...}; None: not run
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("batch_requests")
    op.drop_index("batches_state", "batches")
    op.drop_index("batches_tenant_id", "batches")
    op.drop_table("batches")

"""Cached contents: a tenant's `cachedContents` resources, keyed by (tenant, id), with their
expiry (indexed: the purge deletes by it) and the names of their copies on `gemini` upstreams.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    op.create_table(
        "cached_contents",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=True),
        sa.Column("content", sa.Text, nullable=False),  # contents, systemInstruction, ... (JSON)
        sa.Column("tokens", sa.Integer, nullable=True),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("updated", sa.Text, nullable=False),
        sa.Column("expires", sa.Text, nullable=False),
        sa.Column("upstream", sa.Text, nullable=False, server_default="{}"),  # label -> name
        sqlite_with_rowid=False,
    )
    op.create_index("cached_contents_expires", "cached_contents", ["expires"])


def downgrade() -> None:
    op.drop_index("cached_contents_expires", "cached_contents")
    op.drop_table("cached_contents")

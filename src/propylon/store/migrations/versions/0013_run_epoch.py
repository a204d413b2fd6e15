"""The run epoch of an interaction: bumped by each claim of its run, checked by every fenced
append, so a worker that lost its run cannot write into it. On PostgreSQL, deliveries get the
`rowid` SQLite gives every table (the console lists a webhook's last deliveries by it).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("run_epoch", sa.Integer, nullable=False, server_default="0"))
    if op.get_bind().dialect.name != "sqlite":
        op.execute("ALTER TABLE deliveries ADD COLUMN rowid BIGSERIAL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("ALTER TABLE deliveries DROP COLUMN rowid")
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("run_epoch")

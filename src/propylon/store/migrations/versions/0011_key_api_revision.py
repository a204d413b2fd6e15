"""API keys: a default wire revision (`Api-Revision`) for requests that send none.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("api_revision", sa.Text))  # a date YYYY-MM-DD, or NULL


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("api_revision")

"""The process that made each reservation: several processes share a PostgreSQL database, and
the reconciler settles the open reservations of dead ones only (service/ledger.py). Entries
made before have none: a start of a one-process deployment recovers those, as before.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.add_column(sa.Column("owner", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("owner")

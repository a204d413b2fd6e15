"""The spend and token ledger: one entry per admitted interaction, per key and tenant, that
outlives the interaction (a delete or the retention purge never refunds a budget).

The interactions already stored are carried over as settled entries at their recorded cost,
so an upgrade does not reset what a budget period has spent.

Revision ID: 0008
Revises: 0007
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

_UNFINISHED = ("in_progress", "queued")


def upgrade() -> None:
    ledger = op.create_table(
        "ledger",
        sa.Column("interaction_id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("api_key_id", sa.Text),
        sa.Column("created", sa.Text, nullable=False),  # wire timestamp: the budget period
        sa.Column("reserved_usd", sa.Float, nullable=False),
        sa.Column("reserved_tokens", sa.Integer, nullable=False),
        sa.Column("spent_usd", sa.Float),  # None while the reservation is open
        sa.Column("spent_tokens", sa.Integer),
        sa.Column("settled", sa.Text),  # wire timestamp of the settlement
    )
    op.create_index("ledger_key_created", "ledger", ["api_key_id", "created"])
    op.create_index("ledger_tenant_created", "ledger", ["tenant", "created"])
    op.create_index("ledger_settled", "ledger", ["settled"])
    rows = op.get_bind().execute(
        sa.text(
            "SELECT id, tenant, api_key_id, created, updated, status, cost_usd, usage "
            "FROM interactions"
        )
    )
    entries = []
    for id_, tenant, key, created, updated, status, cost, usage in rows:
        tokens = int(json.loads(usage).get("total_tokens", 0)) if usage else 0
        done = status not in _UNFINISHED  # an unfinished one is settled by start-up recovery
        entries.append(
            {
                "interaction_id": id_,
                "tenant": tenant,
                "api_key_id": key,
                "created": created,
                "reserved_usd": cost,
                "reserved_tokens": tokens,
                "spent_usd": cost if done else None,
                "spent_tokens": tokens if done else None,
                "settled": updated if done else None,
            }
        )
    if entries:
        op.bulk_insert(ledger, entries)


def downgrade() -> None:
    op.drop_index("ledger_settled", "ledger")
    op.drop_index("ledger_tenant_created", "ledger")
    op.drop_index("ledger_key_created", "ledger")
    op.drop_table("ledger")

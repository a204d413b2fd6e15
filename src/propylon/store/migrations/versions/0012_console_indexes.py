"""The operator console's reads, by index: usage per day (virtual columns of the usage and
model, in one covering index with the day and tenant; stored generated columns on
PostgreSQL), the chain forward (`previous_interaction_id`), and a webhook's last deliveries.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"

# Virtual: computed when read, stored only in the index below (no table rewrite, no write
# path change). `usage_model`: the request's `model`, else its `agent`.
_VIRTUAL = {
    "usage_model": "coalesce(json_extract(request, '$.model'), json_extract(request, '$.agent'))",
    "usage_input_tokens": "coalesce(json_extract(usage, '$.total_input_tokens'), 0)",
    "usage_output_tokens": "coalesce(json_extract(usage, '$.total_output_tokens'), 0)",
    "usage_total_tokens": "coalesce(json_extract(usage, '$.total_tokens'), 0)",
}


# PostgreSQL has no virtual columns: the same values, stored (computed on write).
_STORED = {
    "usage_model": "text GENERATED ALWAYS AS "
    "(coalesce(request::jsonb ->> 'model', request::jsonb ->> 'agent'))",
    "usage_input_tokens": "bigint GENERATED ALWAYS AS "
    "(coalesce((usage::jsonb ->> 'total_input_tokens')::bigint, 0))",
    "usage_output_tokens": "bigint GENERATED ALWAYS AS "
    "(coalesce((usage::jsonb ->> 'total_output_tokens')::bigint, 0))",
    "usage_total_tokens": "bigint GENERATED ALWAYS AS "
    "(coalesce((usage::jsonb ->> 'total_tokens')::bigint, 0))",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for name, definition in _STORED.items():
            op.execute(f"ALTER TABLE interactions ADD COLUMN {name} {definition} STORED")
    for name, expression in _VIRTUAL.items() if op.get_bind().dialect.name == "sqlite" else ():
        op.execute(
            f"ALTER TABLE interactions ADD COLUMN {name} GENERATED ALWAYS AS ({expression}) VIRTUAL"
        )
    op.create_index(
        "interactions_usage",
        "interactions",
        ["created", "tenant", *_VIRTUAL, "cost_usd"],
    )
    op.create_index("interactions_previous", "interactions", ["previous_interaction_id"])
    op.create_index("deliveries_webhook", "deliveries", ["webhook_id"])


def downgrade() -> None:
    op.drop_index("deliveries_webhook", "deliveries")
    op.drop_index("interactions_previous", "interactions")
    op.drop_index("interactions_usage", "interactions")
    for name in reversed(list(_VIRTUAL)):
        op.execute(f"ALTER TABLE interactions DROP COLUMN {name}")

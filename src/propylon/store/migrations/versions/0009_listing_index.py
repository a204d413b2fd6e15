"""The listing's keyset index: `(tenant, created, id)` serves a tenant's pages newest first,
`(created, id)` an admin's across tenants. It replaces `(tenant, created)`, its prefix.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_index("interactions_tenant_created_id", "interactions", ["tenant", "created", "id"])
    op.create_index("interactions_created_id", "interactions", ["created", "id"])
    op.drop_index("interactions_tenant_created", "interactions")


def downgrade() -> None:
    op.create_index("interactions_tenant_created", "interactions", ["tenant", "created"])
    op.drop_index("interactions_created_id", "interactions")
    op.drop_index("interactions_tenant_created_id", "interactions")

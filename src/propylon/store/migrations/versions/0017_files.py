"""Files (the Gemini Files API): a tenant's uploaded files, keyed by (tenant, id), and the
resumable upload sessions that become them. The bytes live under the data dir.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("display_name", sa.Text),
        sa.Column("mime_type", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),  # hex; names the blob
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("updated", sa.Text, nullable=False),
        sa.Column("expires", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("files_expires", "files", ["expires"])
    op.create_index("files_blob", "files", ["tenant", "sha256"])
    op.create_table(
        "file_uploads",
        sa.Column("id", sa.Text, primary_key=True),  # the upload URL's upload_id
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("file_id", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text),
        sa.Column("mime_type", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),  # declared at start
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("expires", sa.Text, nullable=False),
    )
    op.create_index("file_uploads_expires", "file_uploads", ["expires"])


def downgrade() -> None:
    op.drop_table("file_uploads")
    op.drop_table("files")

"""Usage records count prompt tokens written to a cache (Anthropic prompt caching), billed at their own rate.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as table:
        table.add_column(sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as table:
        table.drop_column("cache_write_tokens")

"""Keys hold rate limits: requests per minute, tokens per minute and requests in flight (NULL: no limit).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("rpm", "tpm", "max_parallel")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        for name in COLUMNS:
            table.add_column(sa.Column(name, sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        for name in reversed(COLUMNS):
            table.drop_column(name)

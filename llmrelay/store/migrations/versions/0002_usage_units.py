"""Usage records count images, speech characters and audio seconds beside tokens.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UNIT_COLUMNS = ("images", "characters", "audio_seconds")


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as table:
        for name in UNIT_COLUMNS:
            table.add_column(sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as table:
        for name in UNIT_COLUMNS:
            table.drop_column(name)

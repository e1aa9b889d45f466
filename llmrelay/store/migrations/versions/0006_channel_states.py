"""Channel states: what each gateway last saw of a channel's health, and the operator's enable/disable.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_states",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="ok"),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("disabled_by", sa.String(16), nullable=True),
        sa.Column("cooling_until", sa.BigInteger, nullable=True),
        sa.Column("cooling_models", sa.Text, nullable=True),
        sa.Column("in_flight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_error_at", sa.BigInteger, nullable=True),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        sa.Column("successes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failures", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("operator_status", sa.String(16), nullable=True),
        sa.Column("operator_reason", sa.Text, nullable=True),
        sa.Column("operator_revision", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_channel_states_operator_revision", "channel_states", ["operator_revision"])
    op.execute("INSERT INTO revisions (name, value) VALUES ('channels', 0)")


def downgrade() -> None:
    op.execute("DELETE FROM revisions WHERE name = 'channels'")
    op.drop_table("channel_states")

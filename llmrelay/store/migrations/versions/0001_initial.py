"""Initial schema: API keys, usage records and change revisions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("quota_nano", sa.BigInteger, nullable=True),
        sa.Column("used_nano", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("request_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("allowed_models", sa.Text, nullable=True),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("last_used_at", sa.BigInteger, nullable=True),
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),
    )
    live = sa.text("status != 'deleted'")
    op.create_index(
        "uq_api_keys_live_name", "api_keys", ["name"], unique=True, sqlite_where=live, postgresql_where=live
    )
    op.create_index("ix_api_keys_revision", "api_keys", ["revision"])
    op.create_table(
        "usage_records",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.BigInteger, nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("upstream_model", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nano", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("usage_source", sa.String(16), nullable=False),
    )
    op.create_index("ix_usage_records_key_time", "usage_records", ["key_id", "created_ms"])
    op.create_index("ix_usage_records_time", "usage_records", ["created_ms"])
    op.create_index("ix_usage_records_request_id", "usage_records", ["request_id"])
    op.create_table(
        "revisions",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(sa.table("revisions", sa.column("name"), sa.column("value")), [{"name": "keys", "value": 0}])


def downgrade() -> None:
    op.drop_table("revisions")
    op.drop_table("usage_records")
    op.drop_table("api_keys")

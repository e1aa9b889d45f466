"""Tables, defined once with SQLAlchemy Core so the same definitions serve SQLite and PostgreSQL.

Times are integer Unix seconds (keys) or milliseconds (usage); money is integer nano-dollars.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

MAX_MODEL_NAME = 200  # longer model names are refused at the door: a usage record could not hold them

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for a table that grows.
BigId = BigInteger().with_variant(Integer(), "sqlite")

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(32), nullable=False),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("quota_nano", BigInteger, nullable=True),  # NULL: unlimited
    Column("used_nano", BigInteger, nullable=False, server_default="0"),
    Column("request_count", BigInteger, nullable=False, server_default="0"),
    Column("allowed_models", Text, nullable=True),  # JSON list of names/globs; NULL: every model
    Column("expires_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revision", BigInteger, nullable=False, server_default="0"),
    # Rate limits (migration 0005); NULL: no limit. Whole numbers up to 10**9 (store/keys.py checks them).
    Column("rpm", Integer, nullable=True),  # requests per minute
    Column("tpm", Integer, nullable=True),  # tokens per minute
    Column("max_parallel", Integer, nullable=True),  # requests in flight at once
    Index(
        "uq_api_keys_live_name",
        "name",
        unique=True,
        sqlite_where=text("status != 'deleted'"),
        postgresql_where=text("status != 'deleted'"),
    ),
    Index("ix_api_keys_revision", "revision"),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("key_id", BigInteger, nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("model", String(MAX_MODEL_NAME), nullable=False),
    Column("upstream_model", String(MAX_MODEL_NAME), nullable=False),
    Column("channel", String(200), nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default="0"),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("images", BigInteger, nullable=False, server_default="0"),
    Column("characters", BigInteger, nullable=False, server_default="0"),
    Column("audio_seconds", BigInteger, nullable=False, server_default="0"),
    Column("cost_nano", BigInteger, nullable=False),
    Column("overrun_nano", BigInteger, nullable=False, server_default="0"),  # reported cost not charged
    Column("status", String(32), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("usage_source", String(16), nullable=False),  # "upstream" or "tokenizer"
    Index("ix_usage_records_key_time", "key_id", "created_ms"),
    Index("ix_usage_records_time", "created_ms"),
    Index("ix_usage_records_request_id", "request_id"),
)

# What the gateway last saw of each channel (written by it, off the request path, for `channels list`), and
# the operator's last enable/disable, which every gateway applies when `operator_revision` passes its own.
channel_states = Table(
    "channel_states",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("status", String(16), nullable=False, server_default="ok"),  # "ok" or "disabled"
    Column("disabled_reason", Text, nullable=True),
    Column("disabled_by", String(16), nullable=True),  # "operator" or "gateway"
    Column("cooling_until", BigInteger, nullable=True),  # Unix seconds
    Column("cooling_models", Text, nullable=True),  # comma-separated
    Column("in_flight", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", BigInteger, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("successes", BigInteger, nullable=False, server_default="0"),
    Column("failures", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", BigInteger, nullable=False),
    Column("operator_status", String(16), nullable=True),  # "enabled" or "disabled"
    Column("operator_reason", Text, nullable=True),
    Column("operator_revision", BigInteger, nullable=False, server_default="0"),
    Index("ix_channel_states_operator_revision", "operator_revision"),
)

# Responses of translated models, kept for `previous_response_id`: the whole conversation as Responses input
# items (JSON), readable only with the key that made it, until `expires_at` (Unix seconds).
stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", BigInteger, nullable=False),
    Column("model", String(MAX_MODEL_NAME), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("conversation", Text, nullable=False),
    Index("ix_stored_responses_expires_at", "expires_at"),
)

# Monotonic counters; bumping one inside a transaction tells every gateway node what changed.
revisions = Table(
    "revisions",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

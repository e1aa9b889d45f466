"""The same gateway on PostgreSQL (the scale-out store), over a real connection to the local server."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from openai import OpenAI
from sqlalchemy import func, select

from llmrelay.store.db import HEAD_REVISION, make_engine, migrate, schema_revision
from llmrelay.store.schema import api_keys, usage_records
from tests.conftest import Gateway, call, make_gateway, wait_until
from tests.fakes.openai_upstream import FakeOpenAI
from tests.test_unit_store import migrate_keys_through_0005

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    name = f"llmrelay_test_{secrets.token_hex(4)}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{SERVER}/{name}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI, database_url: str) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path_factory.mktemp("pg"), upstream, database_url=database_url).start()
    yield gw
    gw.stop()


def test_migrations_are_idempotent_on_postgres(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == HEAD_REVISION
    engine.dispose()


def test_nodes_migrating_at_once_all_succeed() -> None:
    name = f"llmrelay_race_{secrets.token_hex(4)}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER}/{name}"
    script = "import sys; from llmrelay.store.db import make_engine, migrate; migrate(make_engine(sys.argv[1]))"
    try:
        nodes = [subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE) for _ in range(4)]
        failures = [node.stderr.read().decode() for node in nodes if node.wait(timeout=60) != 0]  # type: ignore[union-attr]
        assert not failures, failures[0]
        engine = make_engine(url)
        assert schema_revision(engine) == HEAD_REVISION
        engine.dispose()
    finally:
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_migration_0005_adds_key_limits_on_postgres() -> None:
    name = f"llmrelay_limits_{secrets.token_hex(4)}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"{SERVER}/{name}")
    try:
        migrate_keys_through_0005(engine)
    finally:
        engine.dispose()
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_chat_billing_and_key_changes_on_postgres(pg_gateway: Gateway, tmp_path: Path) -> None:
    key = pg_gateway.create_key("pg-user", quota_usd="2")
    client = OpenAI(api_key=key, base_url=pg_gateway.base_url, max_retries=0)
    replies = [
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"postgres {i}"}])
        for i in range(3)
    ]
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "pg stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = next(c.usage for c in stream if c.usage)
    expected = sum(r.usage.prompt_tokens * 2500 + r.usage.completion_tokens * 10000 for r in replies)
    expected += usage.prompt_tokens * 2500 + usage.completion_tokens * 10000

    engine = make_engine(pg_gateway.env["LLMRELAY_DATABASE_URL"])

    def totals() -> tuple[int, int, int]:
        with engine.connect() as conn:
            used = conn.execute(select(api_keys.c.used_nano).where(api_keys.c.name == "pg-user")).scalar_one()
            cost, count = conn.execute(
                select(func.coalesce(func.sum(usage_records.c.cost_nano), 0), func.count())
            ).one()
            return int(used), int(cost), int(count)

    assert wait_until(lambda: totals()[2] == 4)
    assert totals() == (expected, expected, 4)
    engine.dispose()

    pg_gateway.cli("keys", "disable", "pg-user")
    assert wait_until(
        lambda: call("GET", f"{pg_gateway.base_url}/user/info", headers={"Authorization": key}).status == 401,
        timeout=1.0,
    )
    listing = pg_gateway.cli("keys", "list").stdout
    assert "pg-user" in listing and "disabled" in listing

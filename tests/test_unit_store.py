"""Schema migrations (the head revision the gateway checks for is the newest migration on disk), and the
key columns they add."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, inspect, select

from llmrelay.store.db import HEAD_REVISION, MIGRATIONS_DIR, make_engine, migrate, schema_revision
from llmrelay.store.keys import KeyOperationError, changed_keys, create_key, get_key, list_keys, update_key
from llmrelay.store.schema import api_keys


def _revisions() -> dict[str, str | None]:
    """revision -> down_revision for every migration file."""
    found: dict[str, str | None] = {}
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        values = {
            node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("revision", "down_revision")
        }
        if "revision" in values:
            found[values["revision"]] = values.get("down_revision")
    return found


def test_head_revision_is_the_newest_migration() -> None:
    revisions = _revisions()
    heads = set(revisions) - {down for down in revisions.values() if down}
    assert heads == {HEAD_REVISION}


def test_migrate_creates_the_schema_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert schema_revision(engine) is None
    migrate(engine)
    migrate(engine)  # the second run finds the head revision and does nothing
    assert schema_revision(engine) == HEAD_REVISION
    assert {"api_keys", "usage_records", "revisions"} <= set(inspect(engine).get_table_names())


def _alembic(engine: Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def migrate_keys_through_0005(engine: Engine) -> None:
    """Migration 0005 on a database holding a key: the key keeps everything and has no limits; the limits
    can then be stored, and the downgrade takes them away again. (test_postgres.py runs it on PostgreSQL.)"""
    _alembic(engine, "upgrade", "0004")
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                name="before-limits", key_hash="a" * 64, key_prefix="sk-a...aaaa", created_at=1, updated_at=1
            )
        )
    _alembic(engine, "upgrade", "0005")
    assert schema_revision(engine) == "0005"
    assert {"rpm", "tpm", "max_parallel"} <= {c["name"] for c in inspect(engine).get_columns("api_keys")}
    before = get_key(engine, "before-limits")
    assert (before.rpm, before.tpm, before.max_parallel, before.status) == (None, None, None, "active")
    assert update_key(engine, "before-limits", rpm=60, tpm=10_000, max_parallel=4).rpm == 60
    _alembic(engine, "downgrade", "0004")
    assert "rpm" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}
    with engine.connect() as conn:
        assert conn.execute(select(api_keys.c.name)).scalar_one() == "before-limits"


def test_migration_0005_adds_key_limits_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'limits.db'}")
    migrate_keys_through_0005(engine)


def test_key_limits_are_stored_changed_and_cleared(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    migrate(engine)
    record, _ = create_key(engine, "limited", None, rpm=60, max_parallel=2)
    assert (record.rpm, record.tpm, record.max_parallel) == (60, None, 2)
    record = update_key(engine, "limited", tpm=100_000, max_parallel=None)  # None clears; rpm is left alone
    assert (record.rpm, record.tpm, record.max_parallel) == (60, 100_000, None)
    assert get_key(engine, record.id).tpm == 100_000
    assert (list_keys(engine)[0].rpm, changed_keys(engine, 0)[1][0].tpm) == (60, 100_000)
    plain, _ = create_key(engine, "plain", None)
    assert (plain.rpm, plain.tpm, plain.max_parallel) == (None, None, None)


@pytest.mark.parametrize("value", [0, -1, 10**9 + 1, True, 1.5, "60", 2**63])
@pytest.mark.parametrize("param", ["rpm", "tpm", "max_parallel"])
def test_the_store_refuses_unusable_limits(tmp_path: Path, param: str, value: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bad.db'}")
    migrate(engine)
    with pytest.raises(KeyOperationError) as raised:
        create_key(engine, "bad", None, **{param: value})  # type: ignore[arg-type]
    assert raised.value.param == param and param in str(raised.value)
    assert list_keys(engine) == []
    create_key(engine, "good", None, **{param: 10**9})
    with pytest.raises(KeyOperationError):
        update_key(engine, "good", **{param: value})  # type: ignore[arg-type]
    assert getattr(get_key(engine, "good"), param) == 10**9

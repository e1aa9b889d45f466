"""Schema migrations: the head revision the gateway checks for is the newest migration on disk."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import inspect

from llmrelay.store.db import HEAD_REVISION, MIGRATIONS_DIR, make_engine, migrate, schema_revision


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

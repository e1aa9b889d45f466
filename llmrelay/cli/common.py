"""What the CLI commands share: the database they work on and how they print tables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sqlalchemy import Engine

from llmrelay.config import load_storage_settings
from llmrelay.store.db import make_engine, migrate


def open_database(args: argparse.Namespace) -> Engine:
    database_url, _data_dir = load_storage_settings(getattr(args, "config", None))
    engine = make_engine(database_url)
    migrate(engine)
    return engine


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

"""What the CLI commands share: the `--config` option, the database they work on, and how they print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import orjson
from sqlalchemy import Engine

from llmrelay.config import load_storage_settings
from llmrelay.metering.money import format_usd
from llmrelay.store import db
from llmrelay.store.db import StorageError, shown_url
from llmrelay.surfaces.http import dumps


class StartupError(Exception):
    """Something outside the config and the database that stops a command, such as a port in use; the message
    is the one line the CLI prints (exit status 2)."""


CONFIG_HELP = "YAML config file (default: $LLMRELAY_CONFIG; accepted before or after the command)"


def package_version() -> str:
    """The installed package's version; the source tree's when it runs uninstalled (PYTHONPATH=checkout)."""
    try:
        return metadata.version("llmrelay")
    except metadata.PackageNotFoundError:
        from llmrelay import __version__

        return __version__


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` on a (sub)command, so it may follow the command as well as precede it. SUPPRESS keeps a
    subcommand that was not given it from overwriting the value given before the command."""
    parser.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)


def announce_database(url: str) -> None:
    """Say on stderr which database a command used: keys created against one database are unknown to a gateway
    on another, and this line is how an operator sees that (stdout stays clean for tables and JSON)."""
    print(f"llmrelay: database {shown_url(url)}", file=sys.stderr)


def ensure_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StorageError(f"cannot create the data directory {data_dir}: {reason[:1].lower()}{reason[1:]}") from None


def open_database(args: argparse.Namespace) -> Engine:
    """The database the command works on, migrated, and announced on stderr. The URL is kept on `args` so that a
    database error later in the command can be explained with it (see main)."""
    database_url, data_dir = load_storage_settings(getattr(args, "config", None))
    args.database_url = database_url
    if database_url == db.default_database_url(data_dir):
        ensure_data_dir(data_dir)  # the SQLite file lives there: a failure is the data directory's
    engine = db.open_database(database_url)
    announce_database(database_url)
    return engine


def usd(nano: int | None) -> str:
    """An amount for a table, exact: all nine decimal places of the nano-dollar integer ($0.000000100), so
    that no amount is rounded away ("unlimited" for None)."""
    return format_usd(nano, 9)


def print_json(payload: object, indent: bool = False) -> None:
    """JSON on stdout with amounts as exact numbers, the way the HTTP API writes them (surfaces.http.dumps)."""
    print(dumps(payload, orjson.OPT_INDENT_2 if indent else 0).decode())


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

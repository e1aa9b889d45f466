"""`llmrelay info`: which config file, database and data directory this command line would use, the channels
(without their keys) and how many prices are loaded. It reads the configuration only and does not connect to
the database, so it also answers when the database is the problem."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from llmrelay.cli.common import add_config_option, package_version, print_json, print_table
from llmrelay.config import Config, load_config
from llmrelay.store.db import shown_url


def config_file(args: argparse.Namespace) -> str | None:
    path = getattr(args, "config", None) or os.environ.get("LLMRELAY_CONFIG") or None
    return str(Path(path).resolve()) if path else None


def describe(config: Config, path: str | None, version: str) -> dict[str, Any]:
    return {
        "version": version,
        "config_file": path,
        "database": shown_url(config.database_url),
        "data_dir": str(config.data_dir),
        "channels": [
            {"name": c.name, "type": c.type, "models": len(c.models), "base_url": c.base_url} for c in config.channels
        ],
        "prices": len(config.prices),
        "default_price": config.prices.default is not None,
    }


def info(args: argparse.Namespace) -> int:
    path = config_file(args)
    facts = describe(load_config(path), path, package_version())
    if args.json:
        print_json(facts, indent=True)
        return 0
    default = "plus a default price for the rest" if facts["default_price"] else "models without one are refused"
    print(f"llmrelay {facts['version']}")
    print(f"config file  {facts['config_file'] or 'none (settings from the environment only)'}")
    print(f"database     {facts['database']}")
    print(f"data dir     {facts['data_dir']}")
    print(f"prices       {facts['prices']} models and patterns priced; {default}")
    channels = facts["channels"]
    if not channels:
        print("channels     none: set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY, or list them in a config")
        return 0
    print(f"channels     {len(channels)}")
    rows = [(c["name"], c["type"], c["models"], c["base_url"]) for c in channels]
    print_table(("  name", "type", "models", "base_url"), [(f"  {name}", *rest) for name, *rest in rows])
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser(
        "info", help="the config file, database, data directory, channels and prices this command line uses"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_config_option(p)
    p.set_defaults(func=info)

"""`llmrelay usage`: requests, tokens and cost per key and per model for a period."""

from __future__ import annotations

import argparse

from llmrelay import operations
from llmrelay.cli.common import open_database, print_table
from llmrelay.metering.money import format_usd, usd_to_nano
from llmrelay.store import keys as key_store
from llmrelay.surfaces.http import dumps


def report(args: argparse.Namespace) -> int:
    engine = open_database(args)
    period = operations.parse_period(args.since, args.until, args.days)
    key_id = key_store.get_key(engine, args.key).id if args.key else None
    data = operations.usage_report(engine, period, key_id)
    if args.json:
        print(dumps(data).decode())
        return 0
    print(f"usage from {data['since']} to {data['until']}")

    def row(label: object, t: dict[str, object]) -> tuple[object, ...]:
        return (
            label,
            t["requests"],
            t["prompt_tokens"],
            t["cached_tokens"],
            t["cache_write_tokens"],
            t["completion_tokens"],
            format_usd(usd_to_nano(t["cost_usd"])),
        )

    columns = ("requests", "prompt", "cached", "cache write", "completion", "cost")
    print("\nper key")
    print_table(("key", *columns), [row(k["name"], k) for k in data["keys"]] + [row("TOTAL", data["total"])])
    print("\nper model")
    print_table(("model", *columns), [row(m["model"], m) for m in data["models"]])
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("usage", help="usage per key and per model for a period")
    p.add_argument("--since", help="start (2026-11-01, ISO time or 7d ago is --days 7); default: this month")
    p.add_argument("--until", help="end (exclusive); default: now")
    p.add_argument("--days", type=int, help="the last N days")
    p.add_argument("--key", help="only this key (name or id)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=report)

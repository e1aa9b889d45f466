"""`llmrelay usage`: requests, tokens, other units and cost per key and per model for a period."""

from __future__ import annotations

import argparse
from typing import Any

from llmrelay import operations
from llmrelay.cli.common import add_config_option, open_database, print_json, print_table, usd
from llmrelay.metering.money import usd_to_nano
from llmrelay.store import keys as key_store

# (heading, field of operations.usage_report): every billed unit, so that the cost of an image, speech or
# transcription model is explained by its row rather than appearing against zero tokens.
COLUMNS = (
    ("requests", "requests"),
    ("prompt", "prompt_tokens"),
    ("cached", "cached_tokens"),
    ("cache write", "cache_write_tokens"),
    ("completion", "completion_tokens"),
    ("images", "images"),
    ("characters", "characters"),
    ("audio seconds", "audio_seconds"),
)


def report(args: argparse.Namespace) -> int:
    engine = open_database(args)
    period = operations.parse_period(args.since, args.until, args.days)
    key_id = key_store.get_key(engine, args.key).id if args.key else None
    data = operations.usage_report(engine, period, key_id)
    if args.json:
        print_json(data)
        return 0
    print(f"usage from {data['since']} to {data['until']}")

    def row(label: object, totals: dict[str, Any]) -> tuple[object, ...]:
        return (label, *(totals[field] for _, field in COLUMNS), usd(usd_to_nano(totals["cost_usd"])))

    headings = (*(heading for heading, _ in COLUMNS), "cost")
    print("\nper key")
    print_table(("key", *headings), [row(k["name"], k) for k in data["keys"]] + [row("TOTAL", data["total"])])
    print("\nper model")
    print_table(("model", *headings), [row(m["model"], m) for m in data["models"]])
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("usage", help="usage per key and per model for a period")
    p.add_argument("--since", help="start (2026-11-01, ISO time or 7d ago is --days 7); default: this month")
    p.add_argument("--until", help="end (exclusive); default: now")
    p.add_argument("--days", type=int, help="the last N days")
    p.add_argument("--key", help="only this key (name or id)")
    p.add_argument("--json", action="store_true", help="print JSON (amounts as exact numbers)")
    add_config_option(p)
    p.set_defaults(func=report)

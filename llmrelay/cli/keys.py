"""`llmrelay keys ...`: create, list, show, disable, enable, top up, update and delete API keys."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from llmrelay import operations
from llmrelay.cli.common import add_config_option, open_database, print_json, print_table, usd
from llmrelay.store import keys as key_store


def _when(ts: int | None) -> str:
    """A stored time for the table; one no date can show (see operations.key_view) is printed as stored."""
    if ts is None:
        return "never"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError):
        return str(ts)


def limit_text(text: str) -> int:
    """A rate limit as typed: a whole number, where 0 (or `none`) is no limit. An argparse type, so that a
    mistake is reported with the flag's name."""
    value = text.strip().lower()
    if value == "none":
        return 0
    if not (value.isascii() and value.isdigit() and len(value) <= 10 and int(value) <= key_store.MAX_LIMIT):
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not a limit: use a whole number up to {key_store.MAX_LIMIT:,}, or 0 for none"
        )
    return int(value)


def _compact(number: int) -> str:
    """60, 10k, 2M: exact, and short enough for a table column."""
    if number >= 1_000_000 and number % 1_000_000 == 0:
        return f"{number // 1_000_000}M"
    if number >= 1000 and number % 1000 == 0:
        return f"{number // 1000}k"
    return str(number)


def limits_cell(record: key_store.KeyRecord) -> str:
    """A key's rate limits for the table, such as `60rpm 10ktpm 4par`; `-` for none."""
    parts = [
        f"{_compact(value)}{unit}"
        for value, unit in ((record.rpm, "rpm"), (record.tpm, "tpm"), (record.max_parallel, "par"))
        if value is not None
    ]
    return " ".join(parts) or "-"


def create(args: argparse.Namespace) -> int:
    record, plaintext = operations.create_key(
        open_database(args),
        args.name,
        args.quota_usd,
        args.unlimited,
        args.expires,
        args.models,
        rpm=args.rpm or None,  # 0: no limit
        tpm=args.tpm or None,
        max_parallel=args.max_parallel or None,
    )
    print(
        f"created key {record.name!r} (id {record.id}), quota {usd(record.quota_nano)}, "
        f"expires {_when(record.expires_at)}"
    )
    print("store it now; it cannot be shown again:")
    print(plaintext)
    return 0


def list_(args: argparse.Namespace) -> int:
    records = key_store.list_keys(open_database(args), include_deleted=args.all)
    views = [operations.key_view(r) for r in records]  # logs (to stderr) any row it cannot fully show
    if args.json:
        print_json(views)
        return 0
    rows = [
        (
            r.id,
            r.name,
            r.key_prefix,
            usd(r.balance_nano),
            usd(r.used_nano),
            r.request_count,
            r.status,
            _when(r.expires_at),
            ",".join(r.allowed_models) if r.allowed_models else "*",
            limits_cell(r),
        )
        for r in records
    ]
    print_table(("id", "name", "prefix", "balance", "used", "requests", "status", "expires", "models", "limits"), rows)
    return 0


def show(args: argparse.Namespace) -> int:
    record = key_store.get_key(open_database(args), args.key)
    print_json(operations.key_view(record), indent=True)  # amounts as exact numbers, as `list --json` has them
    return 0


def _status_command(status: str, verb: str):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        record = key_store.set_status(open_database(args), args.key, status)
        print(f"{verb} key {record.name!r} (id {record.id})")
        return 0

    return run


def topup(args: argparse.Namespace) -> int:
    amount = operations.parse_usd(args.usd, "--usd", allow_negative=True)
    record = key_store.top_up(open_database(args), args.key, amount)
    print(f"key {record.name!r}: quota {usd(record.quota_nano)}, balance {usd(record.balance_nano)}")
    return 0


def update(args: argparse.Namespace) -> int:
    changes: dict[str, object] = {}
    if args.expires is not None:
        changes["expires_at"] = operations.parse_when(args.expires, param="--expires")
    if args.models is not None:
        changes["allowed_models"] = operations.parse_models(args.models)
    if args.quota_usd is not None:
        changes["quota_nano"] = operations.parse_usd(args.quota_usd, "--quota-usd", param="--quota-usd")
    for name in key_store.LIMITS:
        value = getattr(args, name)
        if value is not None:  # given: 0 clears the limit
            changes[name] = value or None
    record = key_store.update_key(open_database(args), args.key, **changes)  # type: ignore[arg-type]
    print(f"updated key {record.name!r} (id {record.id})")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = commands.add_parser("keys", help="manage API keys")
    add_config_option(keys)
    group = keys.add_subparsers(dest="keys_command", required=True)

    p = group.add_parser("create", help="create a key; the key is printed on the last line")
    p.add_argument("--name", required=True)
    p.add_argument("--quota-usd", help="spendable amount in USD")
    p.add_argument("--unlimited", action="store_true", help="no spending limit")
    p.add_argument("--expires", help="2026-12-31, an ISO time, or 30d / 12h from now")
    p.add_argument("--models", help="comma-separated allow-list of models or globs (default: all)")
    add_limit_options(p, "(default: none)")
    add_config_option(p)
    p.set_defaults(func=create)

    p = group.add_parser("list", help="list keys")
    p.add_argument("--all", action="store_true", help="include deleted keys")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_config_option(p)
    p.set_defaults(func=list_)

    p = group.add_parser("show", help="show one key as JSON")
    p.add_argument("key", help="key name or id")
    add_config_option(p)
    p.set_defaults(func=show)

    for name, status, verb in (
        ("disable", "disabled", "disabled"),
        ("enable", "active", "enabled"),
        ("delete", "deleted", "deleted"),
    ):
        p = group.add_parser(name, help=f"{name} a key")
        p.add_argument("key", help="key name or id")
        add_config_option(p)
        p.set_defaults(func=_status_command(status, verb))

    p = group.add_parser("topup", help="add quota to a key")
    p.add_argument("key", help="key name or id")
    p.add_argument("--usd", required=True, help="amount to add (negative takes quota back)")
    add_config_option(p)
    p.set_defaults(func=topup)

    p = group.add_parser("update", help="change a key's expiry, model allow-list, total quota or rate limits")
    p.add_argument("key", help="key name or id")
    p.add_argument("--expires", help="new expiry, or 'never'")
    p.add_argument("--models", help="new allow-list; empty string allows every model")
    p.add_argument("--quota-usd", help="new total quota in USD")
    add_limit_options(p, "(0 removes the limit)")
    add_config_option(p)
    p.set_defaults(func=update)


def add_limit_options(parser: argparse.ArgumentParser, note: str) -> None:
    parser.add_argument("--rpm", type=limit_text, metavar="N", help=f"requests per minute {note}")
    parser.add_argument("--tpm", type=limit_text, metavar="N", help=f"tokens per minute {note}")
    parser.add_argument("--max-parallel", type=limit_text, metavar="N", help=f"requests in flight at once {note}")

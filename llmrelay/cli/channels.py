"""`llmrelay channels ...`: list the channels with their health, test them, enable and disable them."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from llmrelay import operations
from llmrelay.cli.common import add_config_option, open_database, print_json, print_table
from llmrelay.config import load_config
from llmrelay.providers import make_channel
from llmrelay.providers.http import UpstreamPool
from llmrelay.providers.mock import MockUpstream
from llmrelay.relay.probe import ProbeResult, probe_channel
from llmrelay.store import channels as channel_store


def list_(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    views = operations.channel_views(config.channels, channel_store.stored_states(open_database(args)))
    if args.json:
        print_json(views)
        return 0
    rows = [
        (
            view["name"],
            view["type"],
            view["priority"],
            view["weight"],
            _state_text(view),
            view["latency_ms"] if view["latency_ms"] is not None else "-",
            _clip(view["last_error"] or "-"),
        )
        for view in views
    ]
    print_table(("name", "type", "priority", "weight", "state", "latency_ms", "last error"), rows)
    return 0


def _state_text(view: dict[str, object]) -> str:
    if view["state"] == "disabled":
        return f"disabled by {view['disabled_by']}: {_clip(str(view['disabled_reason']))}"
    if view["state"] == "cooling_down":
        until = datetime.fromtimestamp(int(view["cooling_until"]), UTC).strftime("%H:%M:%S")  # type: ignore[call-overload]
        return f"cooling down until {until} UTC ({view['cooling_models']})"
    return "ok"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def test(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    chosen = [c for c in config.channels if args.name in (None, c.name)]
    if not chosen:
        raise operations.ChannelError(f"no channel named {args.name!r}")
    results = asyncio.run(_probe_all(chosen, config.routing))
    rows = [(r.channel, r.model or "-", "ok" if r.ok else "FAILED", r.latency_ms, _clip(r.detail, 80)) for r in results]
    print_table(("channel", "model", "result", "latency_ms", "detail"), rows)
    return 0 if all(r.ok for r in results) else 1


async def _probe_all(configs: list, routing) -> list[ProbeResult]:  # type: ignore[no-untyped-def, type-arg]
    mocks = MockUpstream()  # mock channels answer from this process, as they do from a gateway's
    configs = list(await mocks.start(configs))
    pool = UpstreamPool()
    try:
        channels = [make_channel(config, pool, routing) for config in configs]
        return list(await asyncio.gather(*(probe_channel(channel) for channel in channels)))
    finally:
        await pool.close()
        await mocks.stop()


def _command(enabled: bool):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        config = load_config(args.config)
        operations.known_channel(config.channels, args.name)
        channel_store.record_command(open_database(args), args.name, enabled, getattr(args, "reason", None))
        print(f"{'enabled' if enabled else 'disabled'} channel {args.name!r} (running gateways follow within a second)")
        return 0

    return run


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = commands.add_parser("channels", help="list, test, enable and disable upstream channels")
    add_config_option(group)
    actions = group.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="each channel's state, last error and latency")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_config_option(listing)
    listing.set_defaults(func=list_)

    testing = actions.add_parser("test", help="send a minimal request through each channel (or one)")
    testing.add_argument("name", nargs="?", help="the channel to test (default: all)")
    add_config_option(testing)
    testing.set_defaults(func=test)

    enable = actions.add_parser("enable", help="put a channel back in service")
    enable.add_argument("name")
    add_config_option(enable)
    enable.set_defaults(func=_command(True))

    disable = actions.add_parser("disable", help="take a channel out of service")
    disable.add_argument("name")
    disable.add_argument("--reason", help="why (shown in `channels list`)")
    add_config_option(disable)
    disable.set_defaults(func=_command(False))

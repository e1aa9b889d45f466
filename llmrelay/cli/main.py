"""`llmrelay` command line: run the gateway, manage keys, read usage."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from llmrelay.cli import keys, usage
from llmrelay.config import ConfigError, load_config
from llmrelay.store.db import make_engine, migrate
from llmrelay.store.keys import KeyOperationError


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.config:
        os.environ["LLMRELAY_CONFIG"] = str(args.config)
    config = load_config()  # fail fast, with a clear message, before any worker starts
    # Migrate once here, so that several workers starting at once find the schema current.
    engine = make_engine(config.database_url)
    migrate(engine)
    engine.dispose()
    uvicorn.run(
        "llmrelay.app:create_app",
        factory=True,
        host=args.host or config.host,
        port=args.port or config.port,
        workers=args.workers or config.workers,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="info",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=30,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrelay", description="An OpenAI-format LLM API gateway.")
    parser.add_argument("--config", help="YAML config file (default: $LLMRELAY_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the gateway")
    run.add_argument("--config", dest="config", default=argparse.SUPPRESS, help="YAML config file")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default 8080)")
    run.add_argument("--workers", type=int, help="worker processes (default 1)")
    run.set_defaults(func=serve)

    keys.add_commands(commands)
    usage.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, KeyOperationError) as exc:
        print(f"llmrelay: {exc}", file=sys.stderr)
        return 2

"""`llmrelay` command line: run the gateway, manage keys and channels, read usage, show the setup."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from llmrelay.cli import channels, info, keys, serve, usage
from llmrelay.cli.common import StartupError, package_version
from llmrelay.config import ConfigError, default_data_dir
from llmrelay.operations import ChannelError
from llmrelay.store.db import StorageError, explain_database_error
from llmrelay.store.keys import KeyOperationError

ENVIRONMENT_VARIABLES = (
    ("OPENAI_API_KEY", "creates the `openai` channel when the config lists no channels"),
    ("OPENAI_BASE_URL", "that channel's upstream (default https://api.openai.com/v1)"),
    ("ANTHROPIC_API_KEY", "creates the `anthropic` channel (same rule)"),
    ("ANTHROPIC_BASE_URL", "that channel's upstream (default https://api.anthropic.com)"),
    ("GEMINI_API_KEY", "creates the `gemini` channel (same rule); GOOGLE_API_KEY also works"),
    ("GEMINI_BASE_URL", "that channel's upstream (default https://generativelanguage.googleapis.com)"),
    ("LLMRELAY_CONFIG", "the YAML config file, as --config FILE"),
    ("LLMRELAY_DATA_DIR", "where the SQLite database and the usage spill file live (the config's data_dir wins)"),
    ("LLMRELAY_DATABASE_URL", "sqlite:///path.db or postgresql://user@host:5432/db (wins over database_url)"),
    ("LLMRELAY_ADMIN_KEY", "turns the /admin/ API on (wins over admin_key)"),
    (serve.GRACEFUL_TIMEOUT_ENV, "seconds requests may run at shutdown (default 30; --graceful-timeout wins)"),
)


def environment_help() -> str:
    """The epilog of `llmrelay --help` and `llmrelay serve --help`: every variable llmrelay reads."""
    width = max(len(name) for name, _ in ENVIRONMENT_VARIABLES) + 2
    lines = ["environment variables:"]
    for name, text in ENVIRONMENT_VARIABLES:
        lines.append(f"  {name:<{width}}{text}")
        if name == "LLMRELAY_DATA_DIR":  # the actual default on this machine, which depends on the platform
            lines.append(f"  {'':<{width}}default: {default_data_dir()} (bin/llmrelay: the checkout's data/)")
    return "\n".join([*lines, "", "`llmrelay info` shows what a command would use."])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmrelay",
        description="An OpenAI-format LLM API gateway.",
        epilog=environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llmrelay {package_version()}")
    # Here a plain default (None) rather than SUPPRESS: every command reads args.config.
    parser.add_argument("--config", metavar="FILE", help="YAML config file (default: $LLMRELAY_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_command(commands, environment_help())
    keys.add_commands(commands)
    usage.add_commands(commands)
    channels.add_commands(commands)
    info.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe can still be handled, rather than at exit
        return code
    except (ConfigError, KeyOperationError, ChannelError, StorageError, StartupError) as exc:
        print(f"llmrelay: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        # The database failed after it was opened (it went away mid-command, a disk filled up): one line, as
        # for a failure to open it, naming the database the command announced.
        print(f"llmrelay: {explain_database_error(exc, getattr(args, 'database_url', ''))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of the output went away (`llmrelay usage | head`): not an error worth a traceback. Point
        # stdout at /dev/null so Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

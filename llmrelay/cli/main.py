"""`llmrelay` command line: run the gateway, manage keys, read usage."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from llmrelay.cli import channels, keys, usage
from llmrelay.config import ConfigError, load_config
from llmrelay.operations import ChannelError
from llmrelay.store.db import make_engine, migrate
from llmrelay.store.keys import KeyOperationError

log = logging.getLogger("llmrelay.serve")
GRACEFUL_TIMEOUT_ENV = "LLMRELAY_GRACEFUL_TIMEOUT"
DEFAULT_GRACEFUL_TIMEOUT = 30.0
STARTUP_FAILURE = 3  # uvicorn's exit status when the application fails to start


def graceful_timeout(value: str | None) -> float:
    """Seconds in-flight requests get to finish at shutdown before they are cancelled (and bill what they
    delivered): --graceful-timeout, else $LLMRELAY_GRACEFUL_TIMEOUT, else 30."""
    text = value if value is not None else os.environ.get(GRACEFUL_TIMEOUT_ENV)
    if text is None or text == "":
        return DEFAULT_GRACEFUL_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"the graceful shutdown timeout must be a positive number of seconds, not {text!r}")
    return seconds


def gateway_server_class() -> type[Any]:
    """uvicorn's Server, except that no signal skips the application's shutdown, which flushes usage.

    uvicorn takes a second Ctrl-C as "force exit": it stops waiting for requests and skips the lifespan
    shutdown, so the usage records queued since the last batch were never written. Here a repeated SIGINT or
    SIGTERM cancels the requests still running instead (each bills what it delivered and ends its client's
    reply with an error) and the shutdown goes on: usage is flushed to the database, or spilled to disk when
    the database is away. Only SIGKILL abandons it.
    """
    import uvicorn

    class GatewayServer(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self._loop: asyncio.AbstractEventLoop | None = None
            self._hurried = False

        async def serve(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not self.should_exit:
                super().handle_exit(sig, frame)  # the first signal: the graceful shutdown
                return
            if self._hurried:
                log.warning("already shutting down: usage is being written (SIGKILL abandons it and loses it)")
                return
            self._hurried = True
            log.warning(
                "shutting down now: cancelling %d running request(s), which bill what they delivered; "
                "usage is written before the gateway exits",
                len(self.server_state.tasks),
            )
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._cancel_requests)

        def _cancel_requests(self) -> None:
            for task in list(self.server_state.tasks):
                task.cancel()

    return GatewayServer


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from llmrelay.server import BoundedHttpProtocol

    if args.config:
        os.environ["LLMRELAY_CONFIG"] = str(args.config)
    config = load_config()  # fail fast, with a clear message, before any worker starts
    timeout = graceful_timeout(args.graceful_timeout)
    # Migrate once here, so that several workers starting at once find the schema current.
    engine = make_engine(config.database_url)
    migrate(engine)
    engine.dispose()
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host or config.host,
        "port": args.port or config.port,
        "loop": "uvloop" if sys.platform != "win32" else "asyncio",
        "http": BoundedHttpProtocol,  # httptools, with a cap on request heads (431)
        "lifespan": "on",
        "access_log": False,
        "log_level": "info",
        "server_header": False,
        "date_header": False,
        "timeout_graceful_shutdown": timeout,
    }
    workers = args.workers or config.workers
    if workers > 1:
        # uvicorn's supervisor builds each worker's server itself (see README: a repeated Ctrl-C and workers).
        uvicorn.run("llmrelay.app:create_app", workers=workers, **options)
        return 0
    server = gateway_server_class()(uvicorn.Config("llmrelay.app:create_app", **options))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it shut down for
        server.run()
    return 0 if server.started else STARTUP_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrelay", description="An OpenAI-format LLM API gateway.")
    parser.add_argument("--config", help="YAML config file (default: $LLMRELAY_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the gateway")
    run.add_argument("--config", dest="config", default=argparse.SUPPRESS, help="YAML config file")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default 8080)")
    run.add_argument("--workers", type=int, help="worker processes (default 1)")
    run.add_argument(
        "--graceful-timeout",
        metavar="SECONDS",
        help=f"at shutdown, seconds requests may run before they are cancelled (default ${GRACEFUL_TIMEOUT_ENV}, 30)",
    )
    run.set_defaults(func=serve)

    keys.add_commands(commands)
    usage.add_commands(commands)
    channels.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe can still be handled, rather than at exit
        return code
    except (ConfigError, KeyOperationError, ChannelError) as exc:
        print(f"llmrelay: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of the output went away (`llmrelay usage | head`): not an error worth a traceback. Point
        # stdout at /dev/null so Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

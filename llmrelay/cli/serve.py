"""`llmrelay serve`: check the configuration, the database and the port, then run the gateway under uvicorn.

Everything that can fail on an operator's mistake (the config, the data directory, the database, the port) is
checked here, in this process, before uvicorn starts: each failure is one line on stderr and exit status 2,
instead of a traceback from inside a worker, and "llmrelay ready" can only be logged once the port is held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import socket
import sys
from typing import Any

from sqlalchemy import Engine

from llmrelay import operations
from llmrelay.cli.common import StartupError, add_config_option, announce_database, ensure_data_dir
from llmrelay.config import MAX_PORT, Config, ConfigError, load_config
from llmrelay.logs import setup_logging
from llmrelay.store import keys as key_store
from llmrelay.store.db import open_database

log = logging.getLogger("llmrelay.serve")
GRACEFUL_TIMEOUT_ENV = "LLMRELAY_GRACEFUL_TIMEOUT"
DEFAULT_GRACEFUL_TIMEOUT = 30.0
STARTUP_FAILURE = 2  # the CLI's status for anything the operator must fix, startup failures included
APP = "llmrelay.app:create_app"
DEMO_APP = "llmrelay.cli.serve:create_demo_app"
EVENT_LOOP = "llmrelay.event_loop:GatewayLoop"  # uvloop, accepting waiting connections in batches
DEMO_KEY = "demo"
DEMO_QUOTA_USD = "1"  # enough for thousands of canned replies at real prices, small enough to show quotas
DEMO_MODEL = "gpt-4o-mini"  # what the printed curl line asks for


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


def port_number(text: str) -> int:
    """--port: 1 to 65535. An argparse type, so the mistake is reported with the option's name; 0 or 99999
    would otherwise have the operating system pick a random port."""
    value = text.strip()
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_PORT):
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port: use a whole number from 1 to {MAX_PORT}")
    return int(value)


def worker_count(text: str) -> int:
    """--workers: at least 1 (an argparse type, like port_number)."""
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 6 and int(value) >= 1):
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number of workers: use a whole number from 1")
    return int(value)


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

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # uvicorn announces the address only for sockets it bound itself
                log.info("listening on %s (Ctrl-C to stop)", address(self.config.host, self.config.port))

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


def address(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here rather than inside uvicorn: a busy port is then one line and exit 2
    before the gateway starts, not uvicorn's error after "llmrelay ready" was already logged."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn decides it
    shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog; clients that connect before the first worker is up wait
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)).lower()
        raise StartupError(f"cannot listen on {shown}: {reason}") from None
    sock.set_inheritable(True)  # the workers of --workers N inherit it
    return sock


def prepare(config: Config) -> Engine:
    """Create the data directory (the usage spill file lives there) and migrate the database once, here, so
    that several workers starting at once find the schema current; say which database it is."""
    ensure_data_dir(config.data_dir)
    engine = open_database(config.database_url)
    announce_database(config.database_url)
    return engine


def create_demo_app() -> Any:
    """The ASGI application of `serve --demo`: app.create_app with the demo's config in place of the config
    file (uvicorn calls it in each worker, which reads the storage settings from the environment as usual)."""
    from llmrelay.app import Gateway
    from llmrelay.providers.mock import demo_config

    config = demo_config()
    setup_logging(config.log_format)
    return Gateway(config)


def introduce_demo(config: Config, engine: Engine, host: str, port: int) -> None:
    """Say on stderr that replies are canned, and hand out a key to try them with: the `demo` key, created
    with a small quota the first time (its secret can only be shown then, as for any key)."""
    names = ", ".join(channel.name for channel in config.channels)
    lines = [
        f"llmrelay: demo: every reply is canned, from {len(config.channels)} mock channels ({names}); "
        "no provider is called and no provider key is needed"
    ]
    try:
        record = key_store.get_key(engine, DEMO_KEY)
    except key_store.KeyOperationError:  # none yet (or only a deleted one): make it
        record, secret = operations.create_key(engine, DEMO_KEY, DEMO_QUOTA_USD)
        lines += [
            f"llmrelay: created the key {DEMO_KEY!r} (id {record.id}) with ${DEMO_QUOTA_USD} of quota, shown only now:",
            secret,
        ]
    else:
        secret = "sk-..."
        lines.append(
            f"llmrelay: the key {DEMO_KEY!r} (id {record.id}) exists from an earlier --demo, which printed it; "
            f"for a new one: llmrelay keys delete {DEMO_KEY}, then serve --demo again"
        )
    # 0.0.0.0 and :: listen everywhere but are no address to call: the loopback of the same family is.
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    body = f'{{"model": "{DEMO_MODEL}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
    lines += [
        "llmrelay: try it:",
        f"curl {address(target, port)}/v1/chat/completions -H 'Authorization: Bearer {secret}' "
        f"-H 'Content-Type: application/json' -d '{body}'",
    ]
    print("\n".join(lines), file=sys.stderr)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from llmrelay.server import BoundedHttpProtocol

    if args.demo and args.config:
        raise ConfigError("--demo runs its own config (mock channels only): leave out --config")
    if args.config:
        os.environ["LLMRELAY_CONFIG"] = str(args.config)  # each worker's create_app reads it
    # Fail fast, with a clear message, before any worker starts.
    if args.demo:
        from llmrelay.providers.mock import demo_config

        config = demo_config()
    else:
        config = load_config()
    timeout = graceful_timeout(args.graceful_timeout)
    host, port, workers = args.host or config.host, args.port or config.port, args.workers or config.workers
    sock = listen(host, port)  # first: a busy port is the one line printed, not after the database's
    try:
        engine = prepare(config)
        try:
            if args.demo:
                introduce_demo(config, engine, host, port)
        finally:
            engine.dispose()
    except BaseException:
        sock.close()
        raise
    setup_logging(config.log_format)  # after the database is ready: its migration's chatter is not the log's
    app = DEMO_APP if args.demo else APP
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "loop": EVENT_LOOP if sys.platform != "win32" else "asyncio",
        "http": BoundedHttpProtocol,  # httptools, with a cap on request heads (431)
        "lifespan": "on",
        "access_log": False,
        "log_level": "info",
        "server_header": False,
        "date_header": False,
        # Nothing reads the client's address (keys identify callers), so uvicorn's X-Forwarded-For middleware, a
        # layer around every request, is left out.
        "proxy_headers": False,
        "timeout_graceful_shutdown": timeout,
    }
    if config.log_format == "json":
        options["log_config"] = None  # uvicorn's lines go through the JSON handler set up above
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        # uvicorn's supervisor builds each worker's server itself (see README: a repeated Ctrl-C and workers).
        log.info("starting %d workers on %s", workers, address(host, port))
        with contextlib.suppress(KeyboardInterrupt):
            Multiprocess(uvicorn.Config(app, workers=workers, **options), sockets=[sock]).run()
        return 0
    server = gateway_server_class()(uvicorn.Config(app, **options))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):  # SIGINT re-raised; sys.exit on a failed startup
        server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


def add_command(commands: argparse._SubParsersAction, epilog: str) -> None:  # type: ignore[type-arg]
    run = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway (default 127.0.0.1:8080).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(run)
    run.add_argument("--host", help="address to listen on (default 127.0.0.1, or server.host)")
    run.add_argument("--port", type=port_number, help="port to listen on, 1-65535 (default 8080, or server.port)")
    run.add_argument("--workers", type=worker_count, help="worker processes (default 1, or server.workers)")
    run.add_argument(
        "--graceful-timeout",
        metavar="SECONDS",
        help=f"at shutdown, seconds requests may run before they are cancelled (default ${GRACEFUL_TIMEOUT_ENV}, 30)",
    )
    run.add_argument(
        "--demo",
        action="store_true",
        help="try the gateway without a provider key: mock channels with canned replies in place of the config, "
        f"and a key named {DEMO_KEY!r} (${DEMO_QUOTA_USD}) printed with a curl line to try it",
    )
    run.set_defaults(func=serve)

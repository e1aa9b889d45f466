"""The gateway process: shared state, startup/shutdown, and the ASGI entry point that routes requests."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
from sqlalchemy.exc import SQLAlchemyError

from llmrelay.config import Config, load_config
from llmrelay.logs import setup_logging
from llmrelay.metering.quota import QuotaLedger
from llmrelay.metering.recorder import UsageRecorder
from llmrelay.providers import make_channel
from llmrelay.providers.http import UpstreamPool
from llmrelay.providers.images import ImageFetcher
from llmrelay.providers.mock import MockUpstream
from llmrelay.relay.conversations import ConversationStore
from llmrelay.relay.errors import RelayError
from llmrelay.relay.monitor import ChannelMonitor
from llmrelay.relay.pipeline import Relay, cancellation
from llmrelay.relay.routing import Router
from llmrelay.store.cache import KeyCache
from llmrelay.store.db import StorageError, explain_database_error, make_engine, migrate
from llmrelay.store.keys import changed_keys
from llmrelay.surfaces import admin, anthropic, billing, gemini, openai, openapi
from llmrelay.surfaces.http import HttpRequest, Receive, Scope, Send
from llmrelay.surfaces.paths import PathTable

log = logging.getLogger("llmrelay")
GC_YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections (CPython default: 700)
access_log = logging.getLogger("llmrelay.access")
T = TypeVar("T")
PURGE_SECONDS = 3600.0  # how often stored responses past their retention are deleted
SETTLE_SECONDS = 15.0  # at shutdown, the longest wait for cancelled requests to bill what they delivered

ROUTES = PathTable(
    {
        **openai.ROUTES,
        **anthropic.ROUTES,
        **gemini.ROUTES,
        "/v1/dashboard/billing/subscription": {"GET": billing.subscription},
        "/v1/dashboard/billing/usage": {"GET": billing.usage},
        "/v1/user/info": {"GET": billing.user_info},
        "/openapi.json": {"GET": openapi.serve},
    }
)


class Gateway:
    """Everything one gateway process shares between requests."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine = make_engine(config.database_url)
        # One thread for all database work: writes stay ordered and the event loop never blocks on I/O.
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmrelay-db")
        self.keys = KeyCache()
        self.ledger = QuotaLedger()
        self.prices = config.prices
        self.recorder = UsageRecorder(
            self.engine, self.run_db, config.data_dir / "usage-spill.jsonl", config.usage_flush_seconds
        )
        self.pool = UpstreamPool()
        self.mock_upstream = MockUpstream()  # serves the mock channels, if any
        self.router = Router(())
        self.images = ImageFetcher(config.image_fetch)
        self.relay = Relay(
            self.router,
            self.prices,
            self.ledger,
            self.recorder,
            self.images,
            max_attempts=config.routing.max_attempts,
        )
        self.metrics: Counter[str] = Counter()
        self.overhead_ms_total = 0.0
        self._refresher: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self.monitor = ChannelMonitor((), self.engine, self.run_db)
        self.conversations = ConversationStore(self.engine, self.run_db, config.response_retention)

    async def run_db(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, functools.partial(function, *args))

    async def start(self) -> None:
        await self.run_db(migrate, self.engine)
        await self.recorder.start()  # replays spilled records before keys are loaded
        await self.refresh_keys()
        # Mock channels are bound to the gateway's own mock upstream; from here on they are channels like any other.
        channel_configs = await self.mock_upstream.start(self.config.channels)
        channels = tuple(
            make_channel(channel_config, self.pool, self.config.routing) for channel_config in channel_configs
        )
        if not channels:
            log.warning("no channels: set OPENAI_API_KEY or list channels in a config file (see README)")
        self.router = Router(channels)
        self.relay.router = self.router
        self.monitor = ChannelMonitor(channels, self.engine, self.run_db)
        await self.monitor.load()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="key-refresher")
        if self.config.routing.probe_interval:
            self._prober = asyncio.create_task(
                self.monitor.probe_forever(self.config.routing.probe_interval), name="channel-prober"
            )
        # Everything loaded so far (SQLAlchemy, tokenizer tables, config) lives as long as the process; moving
        # it out of the collector's view turns 40 ms full collections under load into sub-millisecond ones.
        gc.collect()
        gc.freeze()
        # A request's objects live as long as its reply: a stream's for seconds. At the default threshold (700)
        # they outlive two young collections, reach the oldest generation and make full collections run many
        # times a second (8% of the gateway's CPU under 500 token-paced streams, bench/). With the young
        # generation this large they die before they are promoted.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
        log.info(
            "llmrelay ready: %d channel(s), %d key(s), database %s",
            len(channels),
            len(self.keys.by_id),
            self.engine.url.render_as_string(hide_password=True),
        )

    async def stop(self) -> None:
        for task in (self._refresher, self._prober):
            if task is not None:
                task.cancel()
        # Requests the server cancelled at its shutdown limit settle (billing what they delivered) before the
        # usage queue is flushed, so the flush finds their records.
        await self.relay.drain(SETTLE_SECONDS)
        await self.recorder.close()
        await self.conversations.close()
        await self.pool.close()
        await self.mock_upstream.stop()
        await self.images.close()
        await self.run_db(self.engine.dispose)
        self._db_thread.shutdown(wait=True)

    async def refresh_keys(self) -> None:
        revision, records = await self.run_db(changed_keys, self.engine, self.keys.revision)
        self.keys.apply(revision, records, self.recorder.unflushed)

    async def _refresh_forever(self) -> None:
        purged = 0.0
        while True:
            await asyncio.sleep(self.config.key_refresh_seconds)
            try:
                await self.refresh_keys()
            except Exception:
                log.exception("refreshing keys from the database failed; serving the cached keys")
            try:
                await self.monitor.sync()
                if time.monotonic() - purged > PURGE_SECONDS:
                    purged = time.monotonic()
                    await self.conversations.purge()
            except Exception:
                log.exception("syncing channel states or purging stored responses failed")

    # ASGI ---------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            http = HttpRequest(scope, receive, send)
            http.body_timeout = self.config.body_timeout
            await self._http(http)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, http: HttpRequest) -> None:
        task = asyncio.current_task()
        assert task is not None

        def expire() -> None:
            http.deadline_passed = True
            task.cancel()  # the relay bills what was delivered and ends the reply with a 504-coded error

        deadline = asyncio.get_running_loop().call_later(self.config.request_timeout, expire)
        try:
            await self._dispatch(http)
        except asyncio.CancelledError:
            if not http.deadline_passed or task.uncancel() > 0:
                raise  # a shutdown's cancellation goes on
            if not http.response_started:
                await http.respond_error(cancellation(http))
        except RelayError as error:
            if not http.response_started:
                await http.respond_error(error)
        except Exception:
            log.exception("request %s failed", http.request_id)
            if not http.response_started:
                await http.respond_error(
                    RelayError(
                        500,
                        f"The gateway failed to handle this request (request id {http.request_id}).",
                        "server_error",
                        "internal_error",
                    )
                )
        finally:
            deadline.cancel()
        self.metrics[str(http.status)] += 1
        self.overhead_ms_total += http.overhead_reported
        if self.config.access_log:
            access_log.info(
                orjson.dumps(
                    {
                        "ts": time.time(),
                        "id": http.request_id,
                        "method": http.method,
                        "path": http.path,
                        "status": http.status,
                        "overhead_ms": round(http.overhead_reported, 3),
                    }
                ).decode()
            )

    async def _dispatch(self, http: HttpRequest) -> None:
        path = http.path
        matched = ROUTES.match(path, http.method)
        if matched is not None:
            handler, http.path_params = matched
            if handler is None:
                raise RelayError(405, f"Method {http.method} is not allowed on {path}.", code="method_not_allowed")
            await handler(self, http)
        elif path.startswith("/admin/"):
            await admin.handle(self, http, path[len("/admin/") :])
        elif path in ("/health", "/healthz"):
            await http.respond_json(200, {"status": "ok"})
        elif path == "/metrics":
            await http.respond(200, self._metrics_text(), b"text/plain; version=0.0.4")
        else:
            raise RelayError(404, f"Invalid URL ({http.method} {path})", code="unknown_url")

    def _metrics_text(self) -> bytes:
        lines = ["# TYPE llmrelay_requests_total counter"]
        lines += [f'llmrelay_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.metrics.items())]
        count = sum(self.metrics.values())
        lines += [
            "# TYPE llmrelay_overhead_milliseconds summary",
            f"llmrelay_overhead_milliseconds_sum {self.overhead_ms_total:.3f}",
            f"llmrelay_overhead_milliseconds_count {count}",
            "# HELP llmrelay_overrun_nano_total Upstream-reported cost beyond the reservations, not charged.",
            "# TYPE llmrelay_overrun_nano_total counter",
            f"llmrelay_overrun_nano_total {self.relay.overrun_nano_total}",
            "# TYPE llmrelay_overrun_requests_total counter",
            f"llmrelay_overrun_requests_total {self.relay.overrun_requests}",
        ]
        return ("\n".join(lines) + "\n").encode()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except (StorageError, SQLAlchemyError) as exc:
                    # The database failed between `serve`'s own check and this start: one line saying what to
                    # do (uvicorn logs the message), as `serve` would have said it, not a traceback.
                    reason = explain_database_error(exc, self.config.database_url)
                    await send({"type": "lifespan.startup.failed", "message": f"llmrelay: {reason}"})
                    return
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> Gateway:
    """The ASGI application, configured from the environment (uvicorn calls this in each worker)."""
    config = load_config()
    setup_logging(config.log_format)
    return Gateway(config)

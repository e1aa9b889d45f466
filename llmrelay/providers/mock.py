"""Mock channels (`type: mock`): an upstream inside the gateway, so it can be tried, developed against and
load-tested without any provider key.

The gateway starts one `MockUpstream` when a mock channel is configured: an aiohttp server on 127.0.0.1 and an
ephemeral port that answers every mock channel under its own path, `/mock/<channel name>`, with that channel's
options. Each mock channel is then bound to that path (`base_url`) and becomes an ordinary channel of the
provider whose wire format it presents, so routing, translation, failover, health and billing treat it
exactly as a real upstream: its drawn failures are upstream failures, its usage is billed at the model's price.

The replies are canned (mock_openai.py, mock_anthropic.py, mock_gemini.py; docs/mock.md says what they hold).
`demo_config` is what `llmrelay serve --demo` runs: one mock channel per wire format, serving every model of the
built-in price table.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

import yaml
from aiohttp import web

from llmrelay.config import ChannelConfig, Config, MockOptions, parse_config
from llmrelay.metering.pricing import CLAUDE_MODELS, GEMINI_MODELS, OPENAI_MODELS
from llmrelay.providers.mock_anthropic import ANTHROPIC
from llmrelay.providers.mock_common import BadRequest, MockCall, WireFormat
from llmrelay.providers.mock_gemini import GEMINI
from llmrelay.providers.mock_openai import OPENAI

log = logging.getLogger("llmrelay.mock")

WIRE_FORMATS: dict[str, WireFormat] = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}
# Where each format's provider expects its base URL to end, as that provider's SDK takes it.
BASE_PATHS = {"openai": "/v1", "anthropic": "", "gemini": ""}
PREFIX = "/mock/"
# Bodies are bounded by the gateway before they are forwarded (limits.max_body_bytes; a translation may add
# fetched images); this only keeps aiohttp's 1 MiB default from refusing what the gateway let through.
MAX_BODY_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class _Channel:
    """A mock channel as the server answers it: its options, its wire format, and its own failure draws."""

    options: MockOptions
    wire: WireFormat
    draws: random.Random

    def fails(self) -> bool:
        rate = self.options.failure_rate
        return rate > 0 and self.draws.random() < rate


class MockUpstream:
    """The in-process upstream of a gateway's mock channels (nothing runs without one)."""

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self._runner: web.AppRunner | None = None
        self._serials = itertools.count(1)  # for reply ids, unique in the process
        self.origin = ""  # http://127.0.0.1:PORT once started

    async def start(self, configs: Sequence[ChannelConfig]) -> tuple[ChannelConfig, ...]:
        """Serve the mock channels among `configs` and return `configs` with each of them bound to the server
        (the others as they are). Without a mock channel nothing starts."""
        for config in configs:
            if config.mock is not None:
                seeded = random.Random(config.mock.seed)  # no seed: seeded from the OS, a fresh sequence
                self._channels[config.name] = _Channel(config.mock, WIRE_FORMATS[config.mock.format], seeded)
        if self._channels and self._runner is None:
            await self._serve()
        return tuple(self.bind(config) for config in configs)

    def bind(self, config: ChannelConfig) -> ChannelConfig:
        """A mock channel pointed at its path on the running server (any other channel: unchanged)."""
        if config.mock is None:
            return config
        base_path = BASE_PATHS[config.mock.format]
        return replace(config, base_url=f"{self.origin}{PREFIX}{quote(config.name, safe='')}{base_path}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{path:.*}", self._handle)
        # A request the gateway gave up on (its first-byte timeout, a client gone) stops waiting out `latency`;
        # at shutdown nothing the mock does is worth waiting for.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()  # loopback only: nothing outside reaches it
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.origin = f"http://{host}:{port}"
        log.info("mock upstream for %d mock channel(s) on %s", len(self._channels), self.origin)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        name, _, path = raw_path.removeprefix(PREFIX).partition("/")
        channel = self._channels.get(unquote(name)) if raw_path.startswith(PREFIX) else None
        if channel is None:
            return web.json_response({"error": {"message": f"No mock channel at {request.path}."}}, status=404)
        handler = channel.wire.route("/" + unquote(path))
        if handler is None:
            return channel.wire.error(404, f"Invalid URL ({request.method} /{unquote(path)})")
        if request.method != "POST":
            return channel.wire.error(405, f"Method {request.method} is not allowed on /{unquote(path)}.")
        if channel.options.latency:
            await asyncio.sleep(channel.options.latency)
        if channel.fails():
            return channel.wire.overloaded()
        try:
            return await handler(MockCall(request, channel.options, next(self._serials)))
        except BadRequest as problem:
            return channel.wire.error(400, str(problem))


# ---- the demo ------------------------------------------------------------------------------------------------------

# Mock options of the demo's channels: a short wait and a visible stream, as a real model gives.
DEMO_MOCK_OPTIONS = {"latency": 0.2, "token_interval": 0.03}
DEMO_CHANNELS = (
    ("mock-openai", "openai", OPENAI_MODELS),
    ("mock-anthropic", "anthropic", CLAUDE_MODELS),
    ("mock-gemini", "gemini", GEMINI_MODELS),
)


def demo_document() -> dict[str, object]:
    """The demo's config file as data: a mock channel per wire format, each serving every model of the
    built-in price table in that format, so that bills show real prices."""
    channels = [
        {"name": name, "type": "mock", "format": kind, "models": list(models), "mock": dict(DEMO_MOCK_OPTIONS)}
        for name, kind, models in DEMO_CHANNELS
    ]
    return {"channels": channels}


def demo_config_yaml() -> str:
    """The demo's config as a YAML file, e.g. for workers that each read the config file themselves."""
    return str(yaml.safe_dump(demo_document(), sort_keys=False))


def demo_config(environ: dict[str, str] | os._Environ[str] | None = None) -> Config:
    """The demo's config (`llmrelay serve --demo`): the mock channels, with storage (LLMRELAY_DATA_DIR,
    LLMRELAY_DATABASE_URL) and LLMRELAY_ADMIN_KEY from `environ` (default: os.environ) as for any config."""
    return parse_config(demo_document(), environ)

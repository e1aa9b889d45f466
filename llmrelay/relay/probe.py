"""A channel's health check: the smallest chat request its upstream can answer.

Used by `llmrelay channels test`, `POST /admin/channels/{name}/test` and the background probe that brings
back channels the gateway disabled. A check passes when the upstream answers and accepts the gateway's
credentials: a 4xx about the request itself (a model that does not chat, say) still shows the upstream is
up and the key good, so it passes too, with its message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from llmrelay.formats.base import upstream_error_message
from llmrelay.providers.base import Channel
from llmrelay.providers.connections import UpstreamConnectionError
from llmrelay.relay.errors import scrub_bytes, scrub_secrets
from llmrelay.relay.failures import failure_kind
from llmrelay.relay.request import ChatRequest

PROBE_PROMPT = "Reply with the word ok."


@dataclass(frozen=True, slots=True)
class ProbeResult:
    channel: str
    model: str | None
    ok: bool
    latency_ms: int
    detail: str  # "ok", or what went wrong (secrets removed)


def probe_request(model: str) -> ChatRequest:
    body = {"model": model, "messages": [{"role": "user", "content": PROBE_PROMPT}], "max_tokens": 1}
    raw = orjson.dumps(body)
    return ChatRequest("openai", raw, body, model, False, False, 1, 1, native=body)


async def probe_channel(channel: Channel) -> ProbeResult:
    config = channel.config
    model = config.probed_model()
    if model is None:
        return ProbeResult(config.name, None, False, 0, "no model to ask: set probe_model on the channel")
    upstream_model = config.model_map.get(model, model)
    upstream = channel.provider.chat_request(config, probe_request(model), upstream_model, None, 1)
    began = time.perf_counter()
    try:
        connection = await channel.connections.open(
            upstream.url, upstream.headers, upstream.body, config.connect_timeout, config.first_byte_timeout
        )
        try:
            connection.idle_limit(config.idle_timeout)
            status = connection.status
            body = scrub_bytes(await connection.read_all(), channel.secret_bytes)
        finally:
            connection.release()
    except TimeoutError:
        return ProbeResult(config.name, model, False, _ms(began), "timed out")
    except UpstreamConnectionError as exc:
        detail = scrub_secrets(f"unreachable: {exc}", channel.secrets)
        return ProbeResult(config.name, model, False, _ms(began), detail)
    if status < 400:
        return ProbeResult(config.name, model, True, _ms(began), "ok")
    message = scrub_secrets(upstream_error_message(body), channel.secrets)
    return ProbeResult(config.name, model, failure_kind(status, body) is None, _ms(began), f"HTTP {status}: {message}")


def _ms(began: float) -> int:
    return int((time.perf_counter() - began) * 1000)

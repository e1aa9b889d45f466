"""Bad input from the upstream side (issue 9): usage an OpenAI-compatible server reports as 0, and a stream
event that is not JSON. A scripted OpenAI-compatible upstream sends exactly the bytes each test needs.

- Usage: 0 prompt tokens for a non-empty prompt (or 0 completion tokens for a reply with text) cannot be
  true; `usable_usage` says so, and the gateway counts offline instead (usage_source "tokenizer").
- A malformed event: relayed as the upstream sent it when the client speaks the upstream's format (the
  gateway is a relay, not a validator: the client's SDK would have seen the same from the upstream itself);
  skipped when the stream is translated, and the translated stream ends with an error event if the
  upstream never completes it (README, "Errors").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from llmrelay.metering.pricing import Usage
from llmrelay.metering.usage_check import usable_usage
from tests.conftest import Gateway, call, make_gateway, wait_until
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import FakeServer, Received
from tests.test_billing import record_for

SCRIPTED_KEY = "sk-scripted-upstream-000000000000"
REPLY_WORDS = ["Hello", " world"]

# ------------------------------------------------------------------------------------------------ usable_usage


@pytest.mark.parametrize(
    ("usage", "prompt", "reply", "usable"),
    [
        (None, True, True, False),  # nothing reported
        (Usage(0, 0), True, True, False),  # a server that reports zeros
        (Usage(0, 5), True, True, False),  # no prompt tokens for a prompt
        (Usage(7, 0), True, True, False),  # no completion tokens for a reply with text
        (Usage(7, 5), True, True, True),
        (Usage(7, 0), True, False, True),  # a reply without text (cut off at once): 0 is right
        (Usage(0, 0), False, False, True),  # an empty prompt and no reply
        (Usage(0, 3), False, True, True),
        (Usage(7, 0, cached_tokens=7), True, False, True),
    ],
)
def test_usable_usage(usage: Usage | None, prompt: bool, reply: bool, usable: bool) -> None:
    assert usable_usage(usage, prompt, reply) is usable


# ------------------------------------------------------------------------------------------ scripted upstream


def _event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class ScriptedUpstream(FakeServer):
    """An OpenAI-compatible server whose replies follow `#script:NAME` in the last user message:

    zero-usage            the reply "Hello world" with usage of all zeros (streamed or not)
    malformed             a stream with a `data: {not json` event between its two content chunks, then complete
    malformed-unfinished  a stream: one content chunk, `data: {not json`, and the end, without [DONE]

    Embeddings always report usage of zeros.
    """

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.state.requests.append(Received(request.path, dict(request.headers), raw))
        body = orjson.loads(raw)
        text = str(body["messages"][-1].get("content"))
        script = text.split("#script:", 1)[1].split()[0] if "#script:" in text else ""
        common = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(REPLY_WORDS)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response({**common, "object": "chat.completion", "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _event({**common, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        await response.write(chunk({"role": "assistant", "content": ""}))
        await response.write(chunk({"content": REPLY_WORDS[0]}))
        if script.startswith("malformed"):
            await response.write(b"data: {not json\n\n")
        if script == "malformed-unfinished":
            await response.write_eof()
            return response
        await response.write(chunk({"content": REPLY_WORDS[1]}))
        await response.write(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_event({**common, "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.state.requests.append(Received(request.path, dict(request.headers), raw))
        data = [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        return web.json_response({"object": "list", "data": data, "model": "scripted-embed", "usage": usage})


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scripted_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI, scripted: ScriptedUpstream
) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path_factory.mktemp("scripted"), upstream)
    Path(gw.config_path).write_text(
        f"""
channels:
  - name: scripted
    type: openai
    base_url: {scripted.base_url}
    api_key: {SCRIPTED_KEY}
    models: [scripted-chat, scripted-embed]
    timeout: {{connect: 2, read: 5}}
prices:
  scripted-chat: {{input: 1, output: 2}}
  scripted-embed: {{input: 1}}
"""
    )
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def scripted_key(scripted_gateway: Gateway) -> str:
    return scripted_gateway.create_key("scripted-user", quota_usd="5")


def usage_record(gateway: Gateway, request_id: str) -> dict:
    record = wait_until(lambda: record_for(gateway, request_id), timeout=10)
    assert record, "the usage record reaches the database"
    return record


# ---------------------------------------------------------------------------------------- zero usage: billing


def test_embeddings_reported_as_zero_tokens_are_counted(scripted_gateway: Gateway, scripted_key: str) -> None:
    body = {"model": "scripted-embed", "input": "four words of input"}
    reply = call("POST", f"{scripted_gateway.base_url}/embeddings", body, {"Authorization": f"Bearer {scripted_key}"})
    assert reply.status == 200, reply.body
    record = usage_record(scripted_gateway, reply.headers["x-request-id"])
    assert record["usage_source"] == "tokenizer"
    assert record["prompt_tokens"] == 4 and record["cost_nano"] > 0


@pytest.mark.parametrize("stream", [False, True])
def test_chat_reported_as_zero_tokens_is_counted(scripted_gateway: Gateway, scripted_key: str, stream: bool) -> None:
    body = {"model": "scripted-chat", "messages": [{"role": "user", "content": "#script:zero-usage"}], "stream": stream}
    reply = call(
        "POST", f"{scripted_gateway.base_url}/chat/completions", body, {"Authorization": f"Bearer {scripted_key}"}
    )
    assert reply.status == 200, reply.body
    record = usage_record(scripted_gateway, reply.headers["x-request-id"])
    assert record["usage_source"] == "tokenizer"
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0 and record["cost_nano"] > 0


# ------------------------------------------------------------------------------------- malformed stream events


def test_same_format_stream_relays_a_malformed_event_as_sent(scripted_gateway: Gateway, scripted_key: str) -> None:
    body = {"model": "scripted-chat", "messages": [{"role": "user", "content": "#script:malformed"}], "stream": True}
    reply = call(
        "POST", f"{scripted_gateway.base_url}/chat/completions", body, {"Authorization": f"Bearer {scripted_key}"}
    )
    assert reply.status == 200
    assert b"\ndata: {not json\n\n" in reply.body  # exactly what the upstream sent
    assert reply.body.endswith(b"data: [DONE]\n\n") and b'"error"' not in reply.body
    assert usage_record(scripted_gateway, reply.headers["x-request-id"])["status"] == "ok"


def anthropic_stream(gateway: Gateway, key: str, script: str) -> bytes:
    body = {
        "model": "scripted-chat",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": f"#script:{script}"}],
    }
    reply = call("POST", f"{gateway.url}/v1/messages", body, {"x-api-key": key})
    assert reply.status == 200, reply.body
    return reply.body


def test_translated_stream_skips_a_malformed_event(scripted_gateway: Gateway, scripted_key: str) -> None:
    events = anthropic_stream(scripted_gateway, scripted_key, "malformed")
    assert b"not json" not in events and b"event: error" not in events
    texts = [
        orjson.loads(line[6:])["delta"]["text"]
        for line in events.split(b"\n")
        if line.startswith(b"data: ") and b'"text_delta"' in line
    ]
    assert "".join(texts) == "Hello world"
    assert events.rstrip().endswith(b'data: {"type":"message_stop"}')


def test_translated_stream_that_never_completes_ends_with_an_error_event(
    scripted_gateway: Gateway, scripted_key: str
) -> None:
    events = anthropic_stream(scripted_gateway, scripted_key, "malformed-unfinished")
    assert b"not json" not in events
    assert b'"text":"Hello"' in events
    last = events.strip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error\ndata: ")
    assert orjson.loads(last.split(b"data: ", 1)[1])["error"]["type"] == "api_error"


def test_translated_gemini_stream_that_never_completes_ends_with_an_error(
    scripted_gateway: Gateway, scripted_key: str
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "#script:malformed-unfinished"}]}]}
    url = f"{scripted_gateway.url}/v1beta/models/scripted-chat:streamGenerateContent?alt=sse"
    reply = call("POST", url, body, {"x-goog-api-key": scripted_key})
    assert reply.status == 200
    assert b"not json" not in reply.body
    last = reply.body.strip().split(b"\r\n\r\n")[-1]
    assert orjson.loads(last.split(b"data: ", 1)[1])["error"]["code"] == 502

"""The official openai SDK (sync and async) against the gateway, over real HTTP, with a fake upstream."""

from __future__ import annotations

import asyncio
import json

import bpe_openai
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import Gateway, call
from tests.fakes.openai_upstream import UPSTREAM_SECRET, FakeOpenAI


def test_non_stream_chat_returns_the_upstream_reply_and_usage(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "ping non stream"}], temperature=0.2
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "You said: ping non stream"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 3 + 3 + 3  # framing + 3 words, as the fake counts
    assert reply.usage.completion_tokens == 5


def test_body_is_forwarded_byte_for_byte(gateway: Gateway, key: str, upstream: FakeOpenAI) -> None:
    raw = (
        b'{ "messages" : [ {"role":"user", "content":"byte \\u00e9xact-marker-1"} ],\n'
        b'  "temperature": 0.50, "model": "gpt-4o", "seed": 7, "user": "u-1", "stop": ["\\n\\n"] }'
    )
    reply = call("POST", f"{gateway.base_url}/chat/completions", raw=raw, headers={"Authorization": f"Bearer {key}"})
    assert reply.status == 200, reply.body
    (received,) = upstream.requests_with("xact-marker-1")
    assert received.raw == raw
    assert received.headers["Authorization"] == "Bearer " + UPSTREAM_SECRET


def test_mapped_model_and_stream_options_are_the_only_changes(gateway: Gateway, key: str, upstream: FakeOpenAI) -> None:
    raw = b'{"model": "alias-mini", "stream": true, "messages": [{"role": "user", "content": "splice-marker-2"}]}'
    reply = call("POST", f"{gateway.base_url}/chat/completions", raw=raw, headers={"Authorization": f"Bearer {key}"})
    assert reply.status == 200
    (received,) = upstream.requests_with("splice-marker-2")
    assert received.raw == (
        b'{"stream_options":{"include_usage":true},"model":"gpt-4o-mini", "stream": true, '
        b'"messages": [{"role": "user", "content": "splice-marker-2"}]}'
    )
    # The client did not ask for usage, so it sees neither the usage chunk nor "usage":null fields.
    assert b'"usage"' not in reply.body
    assert reply.body.endswith(b"data: [DONE]\n\n")


def test_bare_and_bearer_authorization_are_both_accepted(gateway: Gateway, key: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for header in (f"Bearer {key}", key, f"bearer   {key}"):
        reply = call("POST", f"{gateway.base_url}/chat/completions", body, {"Authorization": header})
        assert reply.status == 200, (header, reply.body)


def test_stream_relays_chunks_with_role_first_and_no_usage(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "one two three four"}], stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: one two three four"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert len(chunks) >= 6  # streamed chunk by chunk, not merged into one


def test_stream_with_include_usage_ends_with_the_usage_chunk(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "count me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3 + 3 + 2, 4)


def test_usage_is_synthesised_when_the_upstream_sends_none(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "#fake:nousage please count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    encoding = bpe_openai.get_encoding("o200k_base")
    assert usage.completion_tokens == len(encoding.encode(text))
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert chunks[-1].id == chunks[0].id


def test_tool_calls_non_stream(client: OpenAI, upstream: FakeOpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "tool-marker-3",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "#fake:tools weather?"}],
        tools=tools,
        tool_choice="required",
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call_ = choice.message.tool_calls[0]
    assert call_.function.name == "get_weather"
    assert json.loads(call_.function.arguments) == {"city": "Paris"}
    (received,) = upstream.requests_with("tool-marker-3")
    assert received.json["tools"] == tools
    assert received.json["tool_choice"] == "required"


def test_tool_calls_stream_keep_index_and_first_fragment_ids(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "#fake:tools weather?"}],
            tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            stream=True,
        )
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_fake1" and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert all(d.id is None for d in deltas[1:])
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_json_mode_and_json_schema_are_forwarded(client: OpenAI, upstream: FakeOpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "#fake:json json-marker-4"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(reply.choices[0].message.content or "") == {"answer": 42}
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "integer"}},
                "required": ["answer"],
                "additionalProperties": False,
            },
        },
    }
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "#fake:json json-marker-5"}], response_format=schema
    )
    assert upstream.requests_with("json-marker-4")[0].json["response_format"] == {"type": "json_object"}
    assert upstream.requests_with("json-marker-5")[0].json["response_format"] == schema


def test_image_parts_pass_through(client: OpenAI, upstream: FakeOpenAI) -> None:
    content = [
        {"type": "text", "text": "what is this image-marker-6"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content.endswith("(2 images)")
    assert upstream.requests_with("image-marker-6")[0].json["messages"][0]["content"] == content


def test_sampling_and_other_parameters_are_forwarded(client: OpenAI, upstream: FakeOpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "params-marker-7"}],
        n=2,
        logprobs=True,
        top_logprobs=2,
        seed=42,
        stop=["END"],
        user="end-user-9",
        presence_penalty=0.5,
        max_tokens=50,
    )
    assert len(reply.choices) == 2
    sent = upstream.requests_with("params-marker-7")[0].json
    for field, value in {
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
        "seed": 42,
        "stop": ["END"],
        "user": "end-user-9",
        "presence_penalty": 0.5,
        "max_tokens": 50,
    }.items():
        assert sent[field] == value


def test_async_client_non_stream_and_stream(gateway: Gateway, key: str) -> None:
    async def run() -> tuple[str, str]:
        async with AsyncOpenAI(api_key=key, base_url=gateway.base_url, max_retries=0) as aclient:
            reply = await aclient.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "async one"}]
            )
            stream = await aclient.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "async two"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return reply.choices[0].message.content or "", text

    first, second = asyncio.run(run())
    assert first == "You said: async one"
    assert second == "You said: async two"


def test_every_response_carries_request_id_and_overhead(gateway: Gateway, key: str) -> None:
    ok = call(
        "POST",
        f"{gateway.base_url}/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        {"Authorization": key},
    )
    bad = call("POST", f"{gateway.base_url}/chat/completions", {"model": "gpt-4o"}, {"Authorization": key})
    for reply in (ok, bad):
        assert reply.headers["x-request-id"].startswith("req-")
        assert float(reply.headers["x-llmrelay-overhead-ms"]) >= 0
    assert ok.headers["x-request-id"] != bad.headers["x-request-id"]


def test_cut_stream_raises_in_the_sdk(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "#fake:cut a b c d e f"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk)
    assert received, "the chunks produced before the cut were relayed"
    assert "upstream" in str(raised.value.message).lower()

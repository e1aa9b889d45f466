"""Every client format reaches every provider: the openai, anthropic and google-genai SDKs, each against an
OpenAI, a Claude and a Gemini model (fake upstreams speaking each provider's documented format), streamed
and not, each reply read by the client's own SDK and each request billed to the channel that served it."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import pytest
from google import genai
from google.genai import types
from openai import OpenAI

from tests.conftest import Gateway, wait_until
from tests.test_billing import record_for

MODELS = {
    "openai": ("gpt-4o", "fake"),
    "anthropic": ("claude-sonnet-4-5", "claude"),
    "gemini": ("gemini-2.0-flash", "gemini"),
}


def openai_call(gateway: Gateway, key: str, model: str, text: str, stream: bool) -> tuple[str, str]:
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=50, stream=stream
    )
    reply = raw.parse()
    if stream:
        content = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    else:
        content = reply.choices[0].message.content
    return content, raw.headers["x-request-id"]


def anthropic_call(gateway: Gateway, key: str, model: str, text: str, stream: bool) -> tuple[str, str]:
    client = anthropic.Anthropic(api_key=key, base_url=gateway.url, max_retries=0)
    messages = [{"role": "user", "content": text}]
    if stream:
        with client.messages.stream(model=model, max_tokens=50, messages=messages) as events:
            content = "".join(events.text_stream)
            return content, events.response.headers["x-request-id"]
    raw = client.messages.with_raw_response.create(model=model, max_tokens=50, messages=messages)
    return raw.parse().content[0].text, raw.headers["x-request-id"]


def gemini_call(gateway: Gateway, key: str, model: str, text: str, stream: bool) -> tuple[str, str]:
    seen: list[str] = []

    def remember(response):  # type: ignore[no-untyped-def]
        seen.append(response.headers["x-request-id"])

    client = genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=gateway.url, api_version="v1beta", client_args={"event_hooks": {"response": [remember]}}
        ),
    )
    config = types.GenerateContentConfig(max_output_tokens=50)
    if stream:
        chunks = list(client.models.generate_content_stream(model=model, contents=text, config=config))
        content = "".join(chunk.text or "" for chunk in chunks)
    else:
        content = client.models.generate_content(model=model, contents=text, config=config).text
    return content, seen[-1]


CLIENTS: dict[str, Callable[[Gateway, str, str, str, bool], tuple[str, str]]] = {
    "openai": openai_call,
    "anthropic": anthropic_call,
    "gemini": gemini_call,
}


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("client", list(CLIENTS))
def test_every_client_reaches_every_provider(
    gateway: Gateway, key: str, client: str, provider: str, stream: bool
) -> None:
    model, channel = MODELS[provider]
    marker = f"matrix {client} to {provider} {'stream' if stream else 'body'}"
    content, request_id = CLIENTS[client](gateway, key, model, marker, stream)
    assert content == f"You said: {marker}"
    record = wait_until(lambda: record_for(gateway, request_id))
    assert record["channel"] == channel
    assert record["status"] == "ok"
    assert record["completion_tokens"] == len(content.split())
    assert record["cost_nano"] > 0

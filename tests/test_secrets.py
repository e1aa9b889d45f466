"""Upstream secrets (a channel's key and every header value it sends) never reach a client or the log: not in
a relayed 200 body, a stream event, a translated reply, an error message cut short, nor a 502's detail."""

from __future__ import annotations

import contextlib

import anthropic
import openai
import pytest
from openai import OpenAI

from tests.conftest import CHANNEL_HEADER_SECRET, Gateway
from tests.fakes.openai_upstream import UPSTREAM_SECRET

SECRETS = (UPSTREAM_SECRET, CHANNEL_HEADER_SECRET)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
        assert secret[:9] not in text  # nor a piece of one


def test_an_echoed_key_is_scrubbed_from_a_body(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi #fake:leak"}])
    assert reply.choices[0].message.content.count("[redacted]") == 2
    assert_clean(reply.model_dump_json())


def test_an_echoed_key_is_scrubbed_from_stream_events(client: OpenAI) -> None:
    chunks = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi #fake:leak #fake:chunks=1"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "[redacted]" in text
    assert_clean(text)


def test_an_echoed_key_is_scrubbed_from_a_translated_stream(gateway: Gateway, key: str) -> None:
    claude = anthropic.Anthropic(api_key=key, base_url=gateway.url, max_retries=0)
    with claude.messages.stream(
        model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "hi #fake:leak"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert "[redacted]" in text
    assert_clean(text)


def test_an_error_text_is_scrubbed_before_it_is_cut(client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "#fake:leakerror"}])
    assert_clean(raised.value.response.text)


def test_an_unreachable_upstream_shows_no_host_or_port(gateway: Gateway, client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="dead-model", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 502
    assert "127.0.0.1" not in raised.value.response.text
    assert "could not be reached" in raised.value.message
    assert "unreachable" in gateway.log()  # the operator sees the detail


def test_the_log_holds_no_secret(gateway: Gateway, client: OpenAI) -> None:
    for directive in ("#fake:leak", "#fake:leakerror", "#fake:error=401"):
        with contextlib.suppress(openai.APIStatusError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": directive}])
    gateway.enable_channel("fake")  # the 401 disabled it
    assert_clean(gateway.log())

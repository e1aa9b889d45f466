"""Hostile request heads: a huge header or too many headers get 431 before the application sees them, and
the gateway keeps answering everyone else meanwhile."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from llmrelay.server import MAX_HEAD_BYTES, MAX_HEADERS
from tests.conftest import Gateway, call, make_gateway, wait_until
from tests.fakes.openai_upstream import FakeOpenAI
from tests.test_billing import record_for


def raw_exchange(gateway: Gateway, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may close as soon as it refused
            sock.sendall(head)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def test_a_huge_header_is_431_and_health_stays_fast(gateway: Gateway) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * 1024 * 1024) + b"\r\n\r\n"
    reply = raw_exchange(gateway, head)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert b"headers_too_large" in reply
    assert call("GET", f"{gateway.url}/health").status == 200


def test_too_many_headers_is_431(gateway: Gateway) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 5))
    reply = raw_exchange(gateway, b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")


def test_a_large_body_under_ordinary_headers_is_not_refused(gateway: Gateway, key: str) -> None:
    # Only the head is bounded: a body many times MAX_HEAD_BYTES arriving with it is read as usual.
    text = "word " * (MAX_HEAD_BYTES // 2)
    reply = call(
        "POST",
        f"{gateway.base_url}/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "max_tokens": 5},
        {"Authorization": f"Bearer {key}"},
    )
    assert reply.status == 200, reply.body[:200]


def test_a_body_that_trickles_is_408_in_the_clients_format(gateway: Gateway, key: str) -> None:
    head = (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"x-api-key: " + key.encode() + b'\r\nContent-Length: 500\r\n\r\n{"model": '
    )
    reply = raw_exchange(gateway, head)  # the rest of the body never comes; the gateway gives up after 2 s
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b'"type":"error"' in reply and b"within 2 s" in reply  # Anthropic-shaped: the surface spoke Anthropic


@pytest.fixture(scope="module")
def hasty_gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI) -> Iterator[Gateway]:
    """A gateway that gives a whole request 2 s (limits.request_timeout)."""
    gw = make_gateway(tmp_path_factory.mktemp("hasty"), upstream, extra="limits: {request_timeout: 2}")
    yield gw.start()
    gw.stop()


def test_a_request_past_the_time_limit_is_504_and_billed_nothing(hasty_gateway: Gateway) -> None:
    key = hasty_gateway.create_key("hasty-body", quota_usd="1")
    client = OpenAI(api_key=key, base_url=hasty_gateway.base_url, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "#fake:sleep=5"}])
    assert raised.value.status_code == 504 and raised.value.code == "request_timeout"


def test_a_stream_past_the_time_limit_ends_with_an_error_and_bills_what_was_delivered(hasty_gateway: Gateway) -> None:
    key = hasty_gateway.create_key("hasty-stream", quota_usd="1")
    client = OpenAI(api_key=key, base_url=hasty_gateway.base_url, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "#fake:slow tick"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in raw.parse():
            received.append(chunk)
    assert received and "request_timeout" in str(raised.value.body or raised.value.message)
    record = wait_until(lambda: record_for(hasty_gateway, raw.headers["x-request-id"]))
    assert record["status"] == "cancelled" and record["cost_nano"] > 0

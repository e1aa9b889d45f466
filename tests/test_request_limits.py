"""Hostile request heads: a huge header or too many headers get 431 before the application sees them, and
the gateway keeps answering everyone else meanwhile."""

from __future__ import annotations

import contextlib
import socket

from llmrelay.server import MAX_HEAD_BYTES, MAX_HEADERS
from tests.conftest import Gateway, call


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

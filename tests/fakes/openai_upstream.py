"""A fake OpenAI upstream that speaks the documented chat completions wire format.

It answers deterministically so tests can predict every token: the reply echoes the last user message,
usage counts words (3 framing tokens per message + 3, like OpenAI), and `max_tokens` truncates the reply
with finish_reason "length". Directives in the last user message steer it:

    #fake:tools         reply with a tool call (streamed as id/name first, then argument fragments)
    #fake:json          reply with a JSON object as content
    #fake:error=CODE    answer with an OpenAI error of that HTTP status
    #fake:sleep=SECS    wait before answering (timeouts)
    #fake:nousage       never report usage (the gateway must count tokens itself)
    #fake:cut           stream a few chunks, then drop the connection
    #fake:slow          stream one chunk every 100 ms for 10 s (client-disconnect tests)
    #fake:cached=N      report N cached prompt tokens
    #fake:chunks=N      split the reply into N content chunks

Every request is recorded (path, headers, raw body) so tests can check what the gateway forwarded.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

UPSTREAM_SECRET = "sk-upstream-SECRET-do-not-leak-0123456789"
_DIRECTIVE = re.compile(r"#fake:([a-z]+)(?:=(\S+))?")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.raw)


@dataclass
class FakeState:
    requests: list[Received] = field(default_factory=list)
    cancelled_streams: int = 0
    completed_streams: int = 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def prompt_tokens_of(messages: list[dict[str, Any]]) -> int:
    return 3 + sum(3 + len(_text_of(m.get("content")).split()) for m in messages)


def _directives(messages: list[dict[str, Any]]) -> dict[str, str]:
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return {name: value or "" for name, value in _DIRECTIVE.findall(_text_of(last_user.get("content")))}


def _reply_words(messages: list[dict[str, Any]], limit: int | None) -> tuple[list[str], str]:
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    images = (
        sum(1 for p in (last_user.get("content") or []) if isinstance(p, dict) and p.get("type") == "image_url")
        if isinstance(last_user.get("content"), list)
        else 0
    )
    echo = _DIRECTIVE.sub("", _text_of(last_user.get("content"))).split()
    words = ["You", "said:", *echo] + ([f"({images}", "images)"] if images else [])
    if limit is not None and len(words) > limit:
        return words[:limit], "length"
    return words, "stop"


def _error(status: int, secret_in_message: bool = False) -> web.Response:
    messages = {
        400: ("Invalid value for 'temperature': must be between 0 and 2.", "invalid_request_error", "temperature"),
        401: (
            f"Incorrect API key provided: {UPSTREAM_SECRET}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
        ),
        429: ("Rate limit reached for gpt-4o in organization org-fake on requests per min (RPM).", "requests", None),
        500: ("The server had an error while processing your request.", "server_error", None),
        503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    }
    message, kind, param = messages.get(status, (f"fake error {status}", "server_error", None))
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


class FakeOpenAI:
    """Runs on its own event loop in a background thread, on 127.0.0.1 and an ephemeral port."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def requests_with(self, marker: str) -> list[Received]:
        return [r for r in self.state.requests if marker.encode() in r.raw]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.state.requests.append(Received(request.path, dict(request.headers), raw))
        if request.headers.get("Authorization") != f"Bearer {UPSTREAM_SECRET}":
            return _error(401)
        body = orjson.loads(raw)
        messages = body["messages"]
        directives = _directives(messages)
        if "sleep" in directives:
            await asyncio.sleep(float(directives["sleep"]))
        if "error" in directives:
            return _error(int(directives["error"]))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        words, finish = _reply_words(messages, limit)
        usage: dict[str, Any] | None = {
            "prompt_tokens": prompt_tokens_of(messages),
            "completion_tokens": len(words) * body.get("n", 1),
            "total_tokens": prompt_tokens_of(messages) + len(words) * body.get("n", 1),
            "prompt_tokens_details": {"cached_tokens": int(directives.get("cached", 0)), "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        if "nousage" in directives:
            usage = None
        elif "tools" in directives:
            usage["completion_tokens"] = 12  # type: ignore[index]
            usage["total_tokens"] = usage["prompt_tokens"] + 12  # type: ignore[index]
        common = {
            "id": f"chatcmpl-fake{len(self.state.requests)}",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }
        if body.get("stream"):
            return await self._stream(request, body, directives, words, finish, usage, common)
        return web.json_response(self._completion(body, directives, words, finish, usage, common))

    def _completion(self, body, directives, words, finish, usage, common) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(words), "refusal": None}
        if "tools" in directives:
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_fake1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
            finish = "tool_calls"
        elif "json" in directives:
            message["content"] = '{"answer": 42}'
        choices = [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(body.get("n", 1))
        ]
        reply = {"object": "chat.completion", **common, "choices": choices}
        if usage is not None:
            reply["usage"] = usage
        return reply

    async def _stream(self, request, body, directives, words, finish, usage, common) -> web.StreamResponse:  # type: ignore[no-untyped-def]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and usage is not None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> bytes:
            payload: dict[str, Any] = {
                "object": "chat.completion.chunk",
                **common,
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                payload["usage"] = None
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        pieces: list[bytes] = []
        for index in range(body.get("n", 1)):
            pieces.append(chunk({"role": "assistant", "content": "", "refusal": None}, index=index))
            if "tools" in directives:
                pieces.append(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_fake1",
                                    "type": "function",
                                    "function": {"name": "get_weather", "arguments": ""},
                                }
                            ]
                        }
                    )
                )
                for fragment in ('{"city', '": "Par', 'is"}'):
                    pieces.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}))
                pieces.append(chunk({}, "tool_calls"))
                continue
            text_words = ['{"answer":', "42}"] if "json" in directives else words
            parts = int(directives.get("chunks", len(text_words)))
            per = max(1, -(-len(text_words) // max(parts, 1)))
            for start in range(0, len(text_words), per):
                text = " ".join(text_words[start : start + per])
                pieces.append(chunk({"content": (" " if start else "") + text}, index=index))
            pieces.append(chunk({}, finish, index=index))
        try:
            if "cut" in directives:
                for piece in pieces[:3]:
                    await response.write(piece)
                request.transport.close()  # type: ignore[union-attr]
                return response
            if "slow" in directives:
                for _ in range(100):
                    await response.write(chunk({"content": " tick"}))
                    await asyncio.sleep(0.1)
            for piece in pieces:
                await response.write(piece)
            if include_usage:
                final = {"object": "chat.completion.chunk", **common, "choices": [], "usage": usage}
                await response.write(b"data: " + orjson.dumps(final) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            self.state.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.state.cancelled_streams += 1
            raise
        return response

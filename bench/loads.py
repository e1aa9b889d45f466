"""The loads the benchmark applies, and the two clients that apply them: wrk and a raw-socket TTFB client.

Each load belongs to one route, which decides the headers a target gets (and, for some targets, a prefix of the
path) and whether it can serve the load: `openai` (OpenAI format, gpt-4o), `claude-chat` (OpenAI format to
/v1/chat/completions with a Claude model: the gateway translates to Anthropic's Messages API and back),
`messages` (Anthropic format to /v1/messages with a Claude model: the gateway relays to an Anthropic upstream),
`gemini-chat` (OpenAI format with a Gemini model: translated to Gemini's generateContent and back) and
`generate` (Gemini format to /v1beta/models/{model}:generateContent, as google-genai sends it: relayed to a
Gemini upstream), `claude-responses` (OpenAI's Responses API, POST /v1/responses, with a Claude model: translated
through the chat shape to Anthropic's Messages API, a stream re-encoded as Responses events) and `responses` (the
Responses API with gpt-4o: forwarded as sent to an OpenAI upstream's /v1/responses).

wrk generates throughput loads from one core with almost no overhead of its own. It cannot see when the first
chunk of a streamed response arrives, so time-to-first-chunk is measured by a small asyncio client that sends
sequential streaming requests over one keep-alive connection and notes when the first `data:` event is in.

The token-paced loads (`paced-*`) ask for a model ending in `-paced`, for which the fake upstream sends each
event of a stream on its own, a gap apart, like a real LLM; hundreds or thousands of such streams at once are held
by paced.py's client, which times each stream's first event and end (see there).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import pinned

LUA_SCRIPT = Path(__file__).with_name("post.lua")
WRK_TIMEOUT = "10s"
REQUEST_TIMEOUT_SECONDS = 30.0
TTFB_MAX_REQUESTS = 2000
OPENAI_STREAM_END = "[DONE]"  # an OpenAI-format 2xx stream that does not end with this was cut short
ANTHROPIC_STREAM_END = "message_stop"  # the same for an Anthropic-format stream
# A Gemini stream has no closing event: it is complete when its last event carries a finish reason.
GEMINI_STREAM_END = '"finishReason"'
# A Responses stream ends with response.completed, which carries the whole Response: its last event must be that
# one, with usage (token counts; a Response without usage has `"usage": null`).
RESPONSES_STREAM_END = ('"response.completed"', '"input_tokens"', '"output_tokens"')
# ... and it has no `data: [DONE]`; one sent after response.completed (LiteLLM does) is passed over, as the openai
# SDK does (it stops reading there).
TRAILING_DONE = "data: [DONE]"
STREAM_TAIL_BYTES = 256  # "ends with": the marker must be in the stream's last bytes, the last event
LAST_EVENT_WINDOW_BYTES = 1024  # where the last event's `data:` is looked for first (then in the whole body)
RESPONSES_LAST_EVENT_BYTES = 4096  # the same for a Responses stream, whose last event (a whole Response) is ~1 KiB
PACED_TAIL_BYTES = 2048  # a paced stream ends with its usage chunk and [DONE]: both in its last bytes
PACED_SUFFIX = "-paced"  # the fake upstream paces a stream for a model named so (fake_upstream.py)
PACED_GPT_MODEL = "gpt-4o" + PACED_SUFFIX
PACED_CLAUDE_MODEL = "claude-sonnet-4-5" + PACED_SUFFIX
PACED_GEMINI_MODEL = "gemini-2.0-flash" + PACED_SUFFIX
PACED_MODELS = (PACED_GPT_MODEL, PACED_CLAUDE_MODEL, PACED_GEMINI_MODEL)
ANTHROPIC_VERSION = "2023-06-01"
OPENAI_ROUTE, CLAUDE_CHAT_ROUTE, MESSAGES_ROUTE = "openai", "claude-chat", "messages"
GEMINI_CHAT_ROUTE, GENERATE_ROUTE = "gemini-chat", "generate"
RESPONSES_ROUTE, CLAUDE_RESPONSES_ROUTE = "responses", "claude-responses"
RESPONSES_ROUTES = frozenset({RESPONSES_ROUTE, CLAUDE_RESPONSES_ROUTE})
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MESSAGES_PATH = "/v1/messages"
RESPONSES_PATH = "/v1/responses"
CLAUDE_MODEL = "claude-sonnet-4-5"
GEMINI_MODEL = "gemini-2.0-flash"
GENERATE_PATH = f"/v1beta/models/{GEMINI_MODEL}:generateContent"
STREAM_GENERATE_PATH = f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"  # google-genai's stream
PROMPT_TEXT = "Say hello to the benchmark."
PROMPT = [{"role": "user", "content": PROMPT_TEXT}]
CHAT_BODY = {"model": "gpt-4o", "messages": PROMPT, "max_tokens": 64}
CLAUDE_CHAT_BODY = {**CHAT_BODY, "model": CLAUDE_MODEL}
GEMINI_CHAT_BODY = {**CHAT_BODY, "model": GEMINI_MODEL}
MESSAGES_BODY = {"model": CLAUDE_MODEL, "max_tokens": 64, "messages": PROMPT}  # what the anthropic SDK sends
GENERATE_BODY = {"contents": [{"role": "user", "parts": [{"text": PROMPT_TEXT}]}]}  # what google-genai sends
RESPONSES_BODY = {"model": "gpt-4o", "input": PROMPT_TEXT, "max_output_tokens": 64}  # what responses.create sends
EMBEDDINGS_BODY = {"model": "text-embedding-3-small", "input": "The quick brown fox jumps over the lazy dog"}
_WRK_RESULT = re.compile(r"^BENCH_RESULT (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Endpoint:
    """Where a target listens and the headers every request to it carries (auth, routing), per route."""

    port: int
    headers: dict[str, str]  # for the `openai` route, and for any route without its own entry below
    route_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # route -> why this target cannot serve it
    route_prefixes: dict[str, str] = field(default_factory=dict)  # route -> where the target serves it, e.g. /gemini

    def headers_for(self, load: Load) -> dict[str, str]:
        return self.route_headers.get(load.route, self.headers)

    def path_for(self, load: Load) -> str:
        return self.route_prefixes.get(load.route, "") + load.path


@dataclass(frozen=True)
class Load:
    name: str
    title: str
    path: str
    body: bytes
    connections: int
    unit: str
    streaming: bool = False
    first_chunk_only: bool = False  # measured by the TTFB client instead of wrk
    route: str = OPENAI_ROUTE
    paced_streams: int = 0  # a token-paced load: this many concurrent streams, held by paced.py's client

    @property
    def stream_end(self) -> tuple[str, ...]:
        """What a complete stream of this load ends with, by the format the client speaks: every one of these
        strings (one, except for a Responses stream: its closing event and its usage; and a paced stream, which
        asks for usage: [DONE] and the usage chunk's token counts)."""
        if self.route in RESPONSES_ROUTES:
            return RESPONSES_STREAM_END
        if self.paced_streams:
            return (OPENAI_STREAM_END, '"completion_tokens"')
        ends = {MESSAGES_ROUTE: ANTHROPIC_STREAM_END, GENERATE_ROUTE: GEMINI_STREAM_END}
        return (ends.get(self.route, OPENAI_STREAM_END),)

    @property
    def end_in_last_event(self) -> bool:
        """Whether `stream_end` is looked for in the last `data:` event (Gemini, Responses) rather than in the
        last bytes."""
        return self.route == GENERATE_ROUTE or self.route in RESPONSES_ROUTES

    @property
    def trailing_done_ok(self) -> bool:
        """Whether a `data: [DONE]` after the last event is passed over (Responses streams)."""
        return self.route in RESPONSES_ROUTES

    @property
    def expect_window(self) -> int:
        """How many of the body's last bytes hold its closing marker, or its last event's `data:` (wrk looks
        there first, then in the whole body)."""
        if self.route in RESPONSES_ROUTES:
            return RESPONSES_LAST_EVENT_BYTES
        if self.paced_streams:
            return PACED_TAIL_BYTES
        return LAST_EVENT_WINDOW_BYTES if self.end_in_last_event else STREAM_TAIL_BYTES


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _streaming(body: dict[str, object]) -> bytes:
    return _json({**body, "stream": True})


def _claude_load(name: str, route: str, connections: int, stream: bool) -> Load:
    """A load on Claude: the `claude-chat` route sends OpenAI's format (translated), `messages` Anthropic's."""
    native = route == MESSAGES_ROUTE
    path, body = (MESSAGES_PATH, MESSAGES_BODY) if native else (CHAT_PATH, CLAUDE_CHAT_BODY)
    title = f"{'Anthropic' if native else 'OpenAI'} format to Claude{', streaming' if stream else ''}"
    title += f", {connections} connection{'s' if connections > 1 else ''}"
    if stream:
        return Load(name, title, path, _streaming(body), connections, "streams/s", streaming=True, route=route)
    return Load(name, title, path, _json(body), connections, "req/s", route=route)


def _gemini_load(name: str, route: str, connections: int, stream: bool) -> Load:
    """A load on Gemini: the `gemini-chat` route sends OpenAI's format (translated), `generate` Gemini's."""
    native = route == GENERATE_ROUTE
    if native:  # streaming is in the URL, not the body
        path, body = (STREAM_GENERATE_PATH if stream else GENERATE_PATH), _json(GENERATE_BODY)
    else:
        path, body = CHAT_PATH, (_streaming if stream else _json)(GEMINI_CHAT_BODY)
    title = f"{'Gemini' if native else 'OpenAI'} format to Gemini{', streaming' if stream else ''}"
    title += f", {connections} connection{'s' if connections > 1 else ''}"
    if stream:
        return Load(name, title, path, body, connections, "streams/s", streaming=True, route=route)
    return Load(name, title, path, body, connections, "req/s", route=route)


def _responses_load(name: str, route: str, connections: int, stream: bool) -> Load:
    """A load on the Responses API: `claude-responses` with a Claude model (translated), `responses` with gpt-4o
    (forwarded to an OpenAI upstream as sent)."""
    translated = route == CLAUDE_RESPONSES_ROUTE
    body = {**RESPONSES_BODY, "model": CLAUDE_MODEL} if translated else RESPONSES_BODY
    title = f"Responses API to {'Claude' if translated else 'gpt-4o'}{', streaming' if stream else ''}"
    title += f", {connections} connection{'s' if connections > 1 else ''}"
    if stream:
        return Load(name, title, RESPONSES_PATH, _streaming(body), connections, "streams/s", True, route=route)
    return Load(name, title, RESPONSES_PATH, _json(body), connections, "req/s", route=route)


_PACED_TRANSLATED = {  # model -> (provider, route) of the translated paced loads
    PACED_CLAUDE_MODEL: ("Claude", CLAUDE_CHAT_ROUTE),
    PACED_GEMINI_MODEL: ("Gemini", GEMINI_CHAT_ROUTE),
}


def _paced_load(streams: int, model: str) -> Load:
    """Token-paced streams: OpenAI-format chat to a `-paced` model, asking for usage as a streaming app that
    bills does (so a complete stream ends with the usage chunk, then [DONE]); with the Claude or Gemini model the
    gateway translates (the `claude-chat` and `gemini-chat` routes)."""
    body = _json({**CHAT_BODY, "model": model, "stream": True, "stream_options": {"include_usage": True}})
    provider, route = _PACED_TRANSLATED.get(model, ("", OPENAI_ROUTE))
    title = f"token-paced streams{f' to {provider} (translated)' if provider else ''}, {streams:,} at once"
    name = f"paced-{f'{provider.lower()}-' if provider else ''}{streams}"
    return Load(name, title, CHAT_PATH, body, streams, "streams/s", True, route=route, paced_streams=streams)


STREAM_BODY = _streaming(CHAT_BODY)
LOADS = (
    Load("chat-32c", "chat, non-streaming, 32 connections", CHAT_PATH, _json(CHAT_BODY), 32, "req/s"),
    Load("chat-1c", "chat, non-streaming, 1 connection", CHAT_PATH, _json(CHAT_BODY), 1, "req/s"),
    Load("stream-32c", "chat, streaming 20 chunks, 32 connections", CHAT_PATH, STREAM_BODY, 32, "streams/s", True),
    Load("ttfb-1c", "time to first chunk, 1 connection", CHAT_PATH, STREAM_BODY, 1, "streams/s", True, True),
    Load("embed-32c", "embeddings, 32 connections", EMBEDDINGS_PATH, _json(EMBEDDINGS_BODY), 32, "req/s"),
    _claude_load("claude-chat-32c", CLAUDE_CHAT_ROUTE, 32, stream=False),
    _claude_load("claude-chat-1c", CLAUDE_CHAT_ROUTE, 1, stream=False),
    _claude_load("claude-stream-32c", CLAUDE_CHAT_ROUTE, 32, stream=True),
    _claude_load("messages-32c", MESSAGES_ROUTE, 32, stream=False),
    _claude_load("messages-1c", MESSAGES_ROUTE, 1, stream=False),
    _claude_load("messages-stream-32c", MESSAGES_ROUTE, 32, stream=True),
    _gemini_load("gemini-chat-32c", GEMINI_CHAT_ROUTE, 32, stream=False),
    _gemini_load("gemini-chat-1c", GEMINI_CHAT_ROUTE, 1, stream=False),
    _gemini_load("gemini-stream-32c", GEMINI_CHAT_ROUTE, 32, stream=True),
    _gemini_load("generate-32c", GENERATE_ROUTE, 32, stream=False),
    _gemini_load("generate-1c", GENERATE_ROUTE, 1, stream=False),
    _gemini_load("generate-stream-32c", GENERATE_ROUTE, 32, stream=True),
    _responses_load("responses-32c", CLAUDE_RESPONSES_ROUTE, 32, stream=False),
    _responses_load("responses-stream-32c", CLAUDE_RESPONSES_ROUTE, 32, stream=True),
    _responses_load("responses-gpt-32c", RESPONSES_ROUTE, 32, stream=False),
    _responses_load("responses-gpt-stream-32c", RESPONSES_ROUTE, 32, stream=True),
    _paced_load(500, PACED_GPT_MODEL),
    _paced_load(2000, PACED_GPT_MODEL),
    _paced_load(500, PACED_CLAUDE_MODEL),
    _paced_load(2000, PACED_CLAUDE_MODEL),
    _paced_load(500, PACED_GEMINI_MODEL),
    _paced_load(2000, PACED_GEMINI_MODEL),
)
PACED_LOADS = tuple(load.name for load in LOADS if load.paced_streams)
LOADS_BY_NAME = {load.name: load for load in LOADS}


class LoadError(RuntimeError):
    """The load could not be applied at all (as opposed to requests that failed, which are counted)."""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_kinds: str  # which kinds of failure happened, e.g. "non2xx, read"; the counts are in `errors`
    paced: PacedFigures | None = None  # a token-paced load's own figures (p50_ms, p99_ms: whole streams)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PacedFigures:
    """What paced.py's client measured besides rate and whole-stream latency, over its window."""

    ttfe_p50_ms: float  # time to first event
    ttfe_p99_ms: float
    events: int  # `data:` events the client received in the streams that ended in the window
    gateway_cpu_seconds: float  # user+system of the target's process tree over the window
    upstream_cpu_seconds: float  # the fake upstream's (the same as the gateway's for `direct`)
    client_cpu_seconds: float
    peak_rss_mib: float  # the target's tree, its processes' VmHWM reset before the load (where allowed)
    unfinished: int  # users whose stream was still running DRAIN_SECONDS after the window (not counted)
    worker_cpu_seconds: tuple[float, ...] = ()  # each busy process of the target's tree, largest first

    def percent_of_core(self, cpu_seconds: float, seconds: float) -> float:
        return cpu_seconds / seconds * 100 if seconds > 0 else math.nan

    @property
    def cpu_us_per_event(self) -> float:
        return self.gateway_cpu_seconds * 1e6 / self.events if self.events else math.nan

    def worker_percents(self, seconds: float) -> list[float]:
        """Each worker's CPU in % of a core, for a target with several busy processes; [] for one."""
        used = self.worker_cpu_seconds
        return [self.percent_of_core(share, seconds) for share in used] if len(used) > 1 else []

    def cores_for_rate(self, streams: int, per_second: float) -> float:
        """The cores the target would need for `per_second` streams at the CPU per stream it used here."""
        return self.gateway_cpu_seconds / streams * per_second if streams else math.nan


def run_wrk(endpoint: Endpoint, load: Load, duration: float, cpu: int | None) -> LoadResult:
    """One wrk run with one thread, so that it fits the single core it is pinned to."""
    url = f"http://127.0.0.1:{endpoint.port}{endpoint.path_for(load)}"
    argv = ["wrk", "-t1", f"-c{load.connections}", f"-d{max(1, round(duration))}s", "--timeout", WRK_TIMEOUT]
    env = {
        "BENCH_BODY": load.body.decode(),
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in endpoint.headers_for(load).items()),
        "BENCH_EXPECT": "\n".join(load.stream_end) if load.streaming else "",
        "BENCH_EXPECT_TAIL": str(load.expect_window),
        "BENCH_EXPECT_IN": "last-event" if load.end_in_last_event else "tail",
        "BENCH_EXPECT_SKIP": TRAILING_DONE if load.trailing_done_ok else "",
    }
    completed = subprocess.run(
        pinned([*argv, "-s", str(LUA_SCRIPT), url], cpu),
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=duration + 60,
        check=False,
    )
    match = _WRK_RESULT.search(completed.stdout)
    if match is None:
        raise LoadError(f"wrk gave no result (exit {completed.returncode}): {completed.stderr.strip()[-300:]}")
    return _parse_wrk(match.group(1))


def _parse_wrk(line: str) -> LoadResult:
    fields = {key: int(value) for key, value in (item.split("=") for item in line.split())}
    kinds = ("non2xx", "incomplete", "connect", "read", "write", "timeout")
    return LoadResult(
        requests=fields["requests"],
        seconds=fields["duration_us"] / 1e6,
        p50_ms=fields["p50_us"] / 1000,
        p99_ms=fields["p99_us"] / 1000,
        errors=sum(fields[kind] for kind in kinds),
        error_kinds=", ".join(kind for kind in kinds if fields[kind]),
    )


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    first_data_seconds: float | None  # from sending the request until the first chunk carrying `data:` was in
    keep_alive: bool
    headers: dict[str, str] = field(default_factory=dict)  # names and values lowercased


def build_request(endpoint: Endpoint, load: Load) -> bytes:
    headers = {
        "Host": f"127.0.0.1:{endpoint.port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(load.body)),
        **endpoint.headers_for(load),
    }
    head = (
        f"POST {endpoint.path_for(load)} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    )
    return head.encode() + load.body


async def _read_chunked(reader: asyncio.StreamReader, started: float) -> tuple[bytes, float | None]:
    parts, first = [], None
    while True:
        size = int((await reader.readline()).split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b""):  # optional trailer fields
                pass
            return b"".join(parts), first
        data = (await reader.readexactly(size + 2))[:-2]
        if first is None and b"data:" in data:
            first = time.perf_counter() - started
        parts.append(data)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> Reply:
    started = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {name.strip().lower(): value.strip().lower() for name, _, value in (h.partition(":") for h in lines[1:])}
    keep_alive = headers.get("connection") != "close"
    if headers.get("transfer-encoding") == "chunked":
        body, first = await _read_chunked(reader, started)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
        first = time.perf_counter() - started if b"data:" in body else None
    else:
        body, keep_alive = await reader.read(), False
        first = time.perf_counter() - started if b"data:" in body else None
    return Reply(status, body, first, keep_alive, headers)


async def _exchange_once(endpoint: Endpoint, load: Load) -> Reply:
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    try:
        return await asyncio.wait_for(_exchange(reader, writer, build_request(endpoint, load)), REQUEST_TIMEOUT_SECONDS)
    finally:
        writer.close()


def probe(endpoint: Endpoint, load: Load) -> Reply:
    """One request, to show what a target answers for a load (its status, and whether a stream completes)."""
    return asyncio.run(_exchange_once(endpoint, load))


def stream_complete(body: bytes, load: Load) -> bool:
    """A stream is complete when it ends with its format's last event: `[DONE]` (OpenAI), `message_stop`
    (Anthropic), `response.completed` with usage (Responses), or, for Gemini, which has no closing event, when
    its last event carries a finishReason."""
    if load.trailing_done_ok and body.rstrip().endswith(TRAILING_DONE.encode()):
        body = body[: body.rstrip().rfind(TRAILING_DONE.encode())]
    if load.end_in_last_event:
        last = body.rfind(b"data:")
        return last >= 0 and all(end.encode() in body[last:] for end in load.stream_end)
    return all(end.encode() in body[-load.expect_window :] for end in load.stream_end)


def describe_reply(reply: Reply, load: Load, expect_headers: tuple[str, ...] = ()) -> str:
    """Empty when the reply is a proper success for the load, else a short reason to show next to the figures;
    a success must also carry each of `expect_headers` (lowercase names)."""
    if not 200 <= reply.status < 300:
        return f"HTTP {reply.status}: {reply.body[:120].decode(errors='replace')}"
    if load.streaming and not stream_complete(reply.body, load):
        where = "its last event did not carry" if load.end_in_last_event else "did not end with"
        return f"stream {where} {' and '.join(load.stream_end)}: ...{reply.body[-120:].decode(errors='replace')}"
    if missing := [name for name in expect_headers if name not in reply.headers]:
        return f"no {', '.join(missing)} header{'s' if len(missing) > 1 else ''}"
    return ""


def percentile(values: list[float], rank: float) -> float:
    """Nearest-rank percentile, the same definition for every target."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)] if ordered else math.nan


def failure_kind(reply: Reply, load: Load) -> str:
    """The same failure names wrk's summary uses, so that both clients' errors read alike; empty for success."""
    if not 200 <= reply.status < 300:
        return "non2xx"
    if load.streaming and not stream_complete(reply.body, load):
        return "incomplete"
    return "" if reply.first_data_seconds is not None else "no data event"


async def _first_chunk_times(endpoint: Endpoint, load: Load, duration: float) -> tuple[list[float], list[str], float]:
    request = build_request(endpoint, load)
    times: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    try:
        while time.perf_counter() - started < duration and len(times) + len(failures) < TTFB_MAX_REQUESTS:
            reply = await asyncio.wait_for(_exchange(reader, writer, request), REQUEST_TIMEOUT_SECONDS)
            if kind := failure_kind(reply, load):
                failures.append(kind)
            else:
                times.append(reply.first_data_seconds or 0.0)
            if not reply.keep_alive:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    finally:
        writer.close()
    return times, failures, time.perf_counter() - started


def measure_first_chunk(endpoint: Endpoint, load: Load, duration: float) -> LoadResult:
    """Sequential streaming requests for `duration` seconds (at most TTFB_MAX_REQUESTS); latency is TTFB."""
    try:
        times, failures, elapsed = asyncio.run(_first_chunk_times(endpoint, load, duration))
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        raise LoadError(f"time-to-first-chunk client failed: {exc!r}") from exc
    return LoadResult(
        requests=len(times) + len(failures),
        seconds=elapsed,
        p50_ms=percentile(times, 50) * 1000,
        p99_ms=percentile(times, 99) * 1000,
        errors=len(failures),
        error_kinds=", ".join(sorted(set(failures))),
    )

"""Instructions the relay spends per streamed event, counted by callgrind: a figure that does not drift with the
machine's load, where the bench's timings on a shared 2-core box do by up to 1.5x between runs.

    .venv/bin/python bench/relay_instructions.py            # every path, printed
    .venv/bin/python bench/relay_instructions.py --paths openai

It runs the gateway's own byte path for token-paced streams (the fake upstream's, fake_upstream.py) in one
process, without sockets: the upstream connection's data callback (its compiled chunk reader while it relays, where
that is built), the HTTP parser, the SSE split, the stream tap, the secret scrub and the direct body writer, each
read of the upstream as one call, as the event loop makes it. The writer's connection takes every write. Paths:

- `openai`: an OpenAI stream to an OpenAI client that asked for usage (the paced-* loads): the usual event through
  the chunk reader and the compiled event scan where they are built (llmrelay/providers/_chunkreader.c,
  llmrelay/relay/_eventscan.c), else on the Python path;
- `claude`: an Anthropic stream translated for an OpenAI client (the paced-claude-* loads): its text deltas
  through the chunk reader and the compiled text-delta path (AnthropicTextDeltas) where they are built;
- `gemini`: a Gemini stream (alt=sse) translated for an OpenAI client (the paced-gemini-* loads), each event on
  the Python path (decoded, translated, encoded).

Each path runs under `valgrind --tool=callgrind` twice, for STREAMS_FEW and STREAMS_MANY streams; the difference
divided by the events relayed in between is the cost of one event, with the interpreter's start and imports
taken out (user-space instructions only: the kernel's read and write are not in it). callgrind counts the same
for the same code and inputs whatever else the machine is doing, so two checkouts can be compared in one run:
`git worktree add /tmp/base REV` and run this file with `PYTHONPATH=/tmp/base`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

STREAMS_FEW, STREAMS_MANY = 20, 220
PATHS = ("openai", "claude", "gemini")
SECRET = (b"sk-bench-upstream-key-0123456789",)  # a channel's key, scrubbed from every event as in the gateway
_FAKE_ROUTES = {"openai": "chat", "claude": "messages", "gemini": "gemini"}  # fake_upstream.paced_reply's kinds
_PACED_MODELS = {"openai": "gpt-4o-paced", "claude": "claude-sonnet-4-5-paced", "gemini": "gemini-2.0-flash-paced"}
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


class _Connection:
    """The client's side of a DirectBody, as server.py's protocol gives it: never full, never gone."""

    disconnected = False
    flow = SimpleNamespace(write_paused=False)
    transport = SimpleNamespace(write=lambda data: None)


class _Upstream:
    """The upstream connection's transport, in memory: each read goes to whoever is the protocol's data callback
    now (its chunk reader while it relays, providers/_chunkreader.c), as the event loop's transport does."""

    def __init__(self) -> None:
        self.protocol: object = None

    def set_protocol(self, protocol: object) -> None:
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        pass

    def pause_reading(self) -> None:
        pass


class _Loop:
    """The event loop as the turn's writer sees it: the callback it asks for is called after each read, as the
    next turn would."""

    def __init__(self) -> None:
        self.callbacks: list = []

    def call_soon(self, callback: object) -> None:
        self.callbacks.append(callback)

    def run_callbacks(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


def _tap(path: str) -> object:
    if path == "openai":
        from llmrelay.formats.openai import OpenAIStreamTap

        return OpenAIStreamTap(client_wants_usage=True)
    from llmrelay.formats.anthropic import AnthropicToChatStream
    from llmrelay.formats.gemini import GeminiToChatStream
    from llmrelay.formats.openai import ChatToOpenAIStream
    from llmrelay.relay.streaming import TranslatingTap

    decoder = AnthropicToChatStream(False) if path == "claude" else GeminiToChatStream(_PACED_MODELS[path])
    return TranslatingTap(decoder, ChatToOpenAIStream(True))


def _reads(path: str) -> list[bytes]:
    """The upstream's reads of one paced stream: one per step of the fake's stream (its first holds the head)."""
    import fake_upstream

    reply = fake_upstream.paced_reply(_FAKE_ROUTES[path], _PACED_MODELS[path], True)
    return [b"".join(step) for step in reply.steps]


async def _relay_streams(path: str, streams: int) -> int:
    """Relay `streams` paced streams through the gateway's byte path; the events relayed."""
    from llmrelay.providers.connections import UpstreamConnection
    from llmrelay.relay.streaming import EventRelay
    from llmrelay.server import DirectBody, TurnWrites

    reads = _reads(path)
    loop = _Loop()
    protocol = SimpleNamespace(turn_writes=TurnWrites(loop), on_writable=None)
    events = 0
    for _ in range(streams):
        upstream = UpstreamConnection(SimpleNamespace())  # type: ignore[arg-type]
        transport = _Upstream()
        upstream.connection_made(transport)  # type: ignore[arg-type]
        transport.protocol = upstream
        upstream._send(b"POST / HTTP/1.1\r\n\r\n", 60.0)
        body = DirectBody(protocol, _Connection())  # type: ignore[arg-type]
        tap = _tap(path)
        relay = EventRelay(tap, body, upstream, SECRET)  # type: ignore[arg-type]
        upstream.data_received(reads[0])  # the head and the first event: the gateway's first_data
        relay.feed_first(await upstream.first_data())
        relaying = asyncio.ensure_future(upstream.relay(relay.feed, relay.whole_chunks))
        await asyncio.sleep(0)  # the relay begins (and puts the chunk reader in place)
        for data in reads[1:]:
            transport.protocol.data_received(data)  # type: ignore[attr-defined]
            loop.run_callbacks()
        await relaying
        relay.finish()
        if not (tap.done and tap.usage):  # type: ignore[attr-defined]
            raise RuntimeError(f"the {path} stream was not relayed to its end with its usage")
        events += sum(data.count(b"data:") for data in reads)
    return events


def _count(path: str, streams: int) -> tuple[int, int]:
    """(instructions, events) of a run of `streams` streams under callgrind."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    done = subprocess.run(
        [*command, "--relay", path, "--streams", str(streams)], capture_output=True, text=True, check=True, timeout=900
    )
    collected = _COLLECTED.search(done.stderr)
    if collected is None:
        raise RuntimeError(f"callgrind printed no count:\n{done.stderr[-2000:]}")
    return int(collected.group(1)), int(done.stdout.strip())


def per_event(path: str) -> float:
    few, few_events = _count(path, STREAMS_FEW)
    many, many_events = _count(path, STREAMS_MANY)
    return (many - few) / (many_events - few_events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    parser.add_argument("--relay", choices=PATHS, help=argparse.SUPPRESS)  # the measured run, under callgrind
    parser.add_argument("--streams", type=int, default=STREAMS_FEW, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    if args.relay:
        import uvloop

        print(uvloop.run(_relay_streams(args.relay, args.streams)))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 1
    paths = [path for path in args.paths.split(",") if path]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")
    for path in paths:
        print(f"{path}: {per_event(path):,.0f} instructions per event", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

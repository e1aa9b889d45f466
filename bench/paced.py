"""The token-paced streams client: many concurrent streams, each timed to its first event and to its end.

wrk cannot tell when a stream's first event arrives, and the TTFB client (loads.py) runs one stream at a time.
This one holds `--streams` keep-alive connections, each a user who sends a streaming request, reads the stream to
its end and sends the next one at once (closed loop). Starts are spread evenly over `--ramp` seconds (one
stream's length), so that the load is steady, not a thundering herd of connects; then a window of `--duration`
seconds is measured, and the streams still running at its end are read to their end (bounded) but not counted.

Per stream: time to first event (the first body bytes holding `data:`), whole-stream time (until the chunked
body's end), its `data:` events, and whether it is complete (the load's closing event, and usage) or why it
failed: `non2xx`, `incomplete`, `read` (the connection closed mid-stream), `timeout`, `connect`. A stream counts
in the window when it ended inside it. Over the window it also reads the CPU (user+system, /proc) of the gateway's
process tree (and of each of its busy processes: a multi-worker gateway's workers), of the fake upstream's and of
itself, so that the reader sees which core was the limit and how the workers shared the load.

The per-event work is one `bytearray +=`, a `count(b"data:")` and an `endswith` on the bytes received (asyncio
Protocol on uvloop, no StreamReader); everything else happens once per stream. Run by run.py as a subprocess
pinned to the load core; it prints one JSON object:

    python bench/paced.py --port P --load paced-500 --request-b64 ... --streams 500 --duration 10 --ramp 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from loads import (
    LOADS_BY_NAME,
    Endpoint,
    Load,
    LoadError,
    LoadResult,
    PacedFigures,
    build_request,
    percentile,
    stream_complete,
)
from procs import busy_shares, cpu_seconds, cpu_seconds_by_process, peak_rss_mib, pinned, reset_peak_rss

CHUNKED_END = b"\r\n0\r\n\r\n"  # the last bytes of a chunked body (no trailers), after the last chunk's data
STREAM_TIMEOUT_SECONDS = 120.0
BUSY_PROCESS_SHARE = 0.02  # of a core over the window: a gateway process using less is not counted as a worker
DRAIN_SECONDS = 30.0  # how long the streams still running after the window are given to end


class Failed(Exception):
    """A stream that did not complete; the message is its kind."""


class Exchange(asyncio.Protocol):
    """One keep-alive connection, one request at a time; the reply is framed just enough to find its end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.raw = bytearray()
        self.head_end = -1
        self.status = 0
        self.length = -1  # Content-Length, or -1 for a chunked body
        self.keep_alive = True
        self.sent = 0.0
        self.first = 0.0
        self.events = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(Failed("read"))

    def request(self, data: bytes) -> asyncio.Future[None]:
        self.raw = bytearray()
        self.head_end, self.status, self.length, self.events, self.first = -1, 0, -1, 0, 0.0
        self.waiter = asyncio.get_running_loop().create_future()
        self.sent = time.perf_counter()
        assert self.transport is not None
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        raw = self.raw
        raw += data
        if self.head_end < 0:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(bytes(raw[:end]))
            self.head_end = end + 4
            data = bytes(raw[self.head_end :])
        if not self.first and b"data:" in data:
            self.first = time.perf_counter() - self.sent
        self.events += data.count(b"data:")
        if self.length >= 0:
            done = len(raw) - self.head_end >= self.length
        else:
            done = raw.endswith(CHUNKED_END) or (len(raw) - self.head_end == 5 and raw.endswith(b"0\r\n\r\n"))
        if done and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        fields = (line.partition(":") for line in lines[1:])
        headers = {name.strip().lower(): value.strip().lower() for name, _, value in fields}
        self.keep_alive = headers.get("connection") != "close"
        if headers.get("transfer-encoding") != "chunked":
            self.length = int(headers.get("content-length", "0"))

    def body(self) -> bytes:
        """The reply's body, the chunked framing removed."""
        raw = bytes(self.raw[self.head_end :])
        if self.length >= 0:
            return raw
        parts, position = [], 0
        while True:
            line_end = raw.index(b"\r\n", position)
            size = int(raw[position:line_end].split(b";", 1)[0], 16)
            if size == 0:
                return b"".join(parts)
            parts.append(raw[line_end + 2 : line_end + 2 + size])
            position = line_end + 4 + size


@dataclass
class Tally:
    """What the streams that ended inside the window did."""

    ttfe: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)
    events: int = 0
    ok: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    started_after_window: int = 0
    unfinished: int = 0  # still running when the drain ended

    def fail(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1


@dataclass
class Window:
    start: float = 0.0
    end: float = 0.0
    open: bool = False
    over: bool = False


class Run:
    def __init__(self, args: argparse.Namespace, load: Load) -> None:
        self.args, self.load = args, load
        self.request = base64.b64decode(args.request_b64)
        self.tally = Tally()
        self.window = Window()
        self.cpu: dict[str, float] = {}
        self.gateway_processes: dict[str, dict[int, float]] = {}

    async def user(self, delay: float) -> None:
        await asyncio.sleep(delay)
        loop = asyncio.get_running_loop()
        conn: Exchange | None = None
        while not self.window.over:
            if conn is None or conn.closed or not conn.keep_alive:
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                try:
                    _, conn = await loop.create_connection(Exchange, "127.0.0.1", self.args.port)
                except OSError:
                    self._record(None, "connect")
                    await asyncio.sleep(0.1)
                    conn = None
                    continue
            kind = ""
            try:
                await asyncio.wait_for(conn.request(self.request), STREAM_TIMEOUT_SECONDS)
            except TimeoutError:
                kind = "timeout"
                conn.transport.close()  # type: ignore[union-attr]
            except Failed as exc:
                kind = str(exc)
            self._record(conn, kind)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    def _record(self, conn: Exchange | None, kind: str) -> None:
        if not self.window.open:
            return
        tally = self.tally
        if conn is not None and not kind:
            if not 200 <= conn.status < 300:
                kind = "non2xx"
            else:
                try:
                    body = conn.body()
                except ValueError:
                    body = b""
                if not stream_complete(body, self.load):
                    kind = "incomplete"
        if kind:
            tally.fail(kind)
            return
        assert conn is not None
        tally.ok += 1
        tally.events += conn.events
        tally.ttfe.append(conn.first)
        tally.whole.append(time.perf_counter() - conn.sent)

    def _sample_cpu(self, suffix: str) -> None:
        self.cpu["gateway" + suffix] = cpu_seconds(self.args.gateway_pid)
        self.gateway_processes[suffix] = cpu_seconds_by_process(self.args.gateway_pid)
        self.cpu["upstream" + suffix] = cpu_seconds(self.args.upstream_pid)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu["client" + suffix] = usage.ru_utime + usage.ru_stime

    def _open(self) -> None:
        self._sample_cpu("_start")
        self.window.start = time.perf_counter()
        self.window.open = True

    def _close(self) -> None:
        self.window.end = time.perf_counter()
        self._sample_cpu("_end")
        self.window.open = False
        self.window.over = True

    async def main(self) -> dict[str, object]:
        args = self.args
        loop = asyncio.get_running_loop()
        users = [asyncio.create_task(self.user(args.ramp * index / args.streams)) for index in range(args.streams)]
        loop.call_later(args.ramp, self._open)
        loop.call_later(args.ramp + args.duration, self._close)
        _, pending = await asyncio.wait(users, timeout=args.ramp + args.duration + DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        self.tally.unfinished = len(pending)
        return self.summary()

    def summary(self) -> dict[str, object]:
        tally, seconds = self.tally, self.window.end - self.window.start
        cpu = {name: self.cpu.get(f"{name}_end", 0.0) - self.cpu.get(f"{name}_start", 0.0) for name in self._roles()}
        processes = self.gateway_processes
        workers = busy_shares(processes.get("_start", {}), processes.get("_end", {}), BUSY_PROCESS_SHARE * seconds)
        return {
            "seconds": seconds,
            "ok": tally.ok,
            "failures": tally.failures,
            "events": tally.events,
            "ttfe_p50_ms": percentile(tally.ttfe, 50) * 1000,
            "ttfe_p99_ms": percentile(tally.ttfe, 99) * 1000,
            "whole_p50_ms": percentile(tally.whole, 50) * 1000,
            "whole_p99_ms": percentile(tally.whole, 99) * 1000,
            "cpu_seconds": cpu,
            "gateway_worker_cpu_seconds": workers,
            "unfinished": tally.unfinished,
        }

    @staticmethod
    def _roles() -> tuple[str, ...]:
        return ("gateway", "upstream", "client")


def run_paced(
    endpoint: Endpoint, load: Load, duration: float, ramp: float, cpu: int | None, gateway: int, upstream: int
) -> LoadResult:
    """The client in its own process on the load core (`cpu`), `gateway` and `upstream` the roots of the trees
    whose CPU it reads; the target's peak RSS is reset before and read after."""
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--port={endpoint.port}",
        f"--load={load.name}",
        f"--request-b64={base64.b64encode(build_request(endpoint, load)).decode()}",
        f"--streams={load.paced_streams}",
        f"--duration={duration}",
        f"--ramp={ramp}",
        f"--gateway-pid={gateway}",
        f"--upstream-pid={upstream}",
    ]
    reset_peak_rss(gateway)
    try:
        completed = subprocess.run(
            pinned(argv, cpu),
            capture_output=True,
            text=True,
            timeout=ramp + duration + DRAIN_SECONDS + STREAM_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"the paced client did not finish in {exc.timeout:.0f}s") from exc
    try:
        out = json.loads(completed.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        tail = completed.stderr.strip()[-300:]
        raise LoadError(f"the paced client gave no result (exit {completed.returncode}): {tail}") from exc
    failures: dict[str, int] = out["failures"]
    cpu_used = out["cpu_seconds"]
    return LoadResult(
        requests=out["ok"] + sum(failures.values()),
        seconds=out["seconds"],
        p50_ms=out["whole_p50_ms"],
        p99_ms=out["whole_p99_ms"],
        errors=sum(failures.values()),
        error_kinds=", ".join(f"{kind} {count:,}" for kind, count in sorted(failures.items())),
        paced=PacedFigures(
            ttfe_p50_ms=out["ttfe_p50_ms"],
            ttfe_p99_ms=out["ttfe_p99_ms"],
            events=out["events"],
            gateway_cpu_seconds=cpu_used["gateway"],
            upstream_cpu_seconds=cpu_used["upstream"],
            client_cpu_seconds=cpu_used["client"],
            worker_cpu_seconds=tuple(out["gateway_worker_cpu_seconds"]),
            peak_rss_mib=peak_rss_mib(gateway),
            unfinished=out["unfinished"],
        ),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Many concurrent streams, each timed to its first event and end.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--load", required=True, choices=sorted(LOADS_BY_NAME), help="for its completeness check")
    parser.add_argument("--request-b64", required=True, help="the whole HTTP request, base64")
    parser.add_argument("--streams", type=int, required=True, help="concurrent streams (users)")
    parser.add_argument("--duration", type=float, required=True, help="seconds measured, after the ramp")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which the users start")
    parser.add_argument("--gateway-pid", type=int, action="append", default=[], help="root of the measured tree")
    parser.add_argument("--upstream-pid", type=int, action="append", default=[], help="the fake upstream's")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.streams * 2 + 256)), hard))
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(Run(args, LOADS_BY_NAME[args.load]).main())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Turning measurements into the Markdown that is printed and written to bench/RESULTS.md.

Each figure is taken from the best round of a (target, load) pair — the round with the most requests per
second, and that round's latencies and CPU — because on a shared machine noise only ever makes a run slower.
Errors are never taken from one round: they add up over all rounds, so that no failure is hidden. A load that a
target cannot serve is shown as unavailable, with the reason, and never measured.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loads import (
    CLAUDE_CHAT_ROUTE,
    GEMINI_CHAT_ROUTE,
    GENERATE_ROUTE,
    LOADS,
    MESSAGES_ROUTE,
    OPENAI_ROUTE,
    RESPONSES_ROUTES,
    LoadResult,
    PacedFigures,
)

CLAUDE_ROUTES = frozenset({CLAUDE_CHAT_ROUTE, MESSAGES_ROUTE})
GEMINI_ROUTES = frozenset({GEMINI_CHAT_ROUTE, GENERATE_ROUTE})
# The routing comparison: the same llmrelay, one channel per model and a key without limits, against three
# channels per model and a key with limits (see targets.py); their rates may differ by 5% at most.
ROUTING_BASELINE, ROUTING_TARGET = "llmrelay-1w", "llmrelay-routed-1w"
ROUTING_BUDGET_PERCENT = 5.0


@dataclass(frozen=True)
class Measured:
    result: LoadResult
    cpu_ms_per_request: float


@dataclass
class Results:
    targets: list[str]
    loads: list[str]  # the names of the loads selected for this run
    rounds: int
    placement: str
    shared_load_core: bool = True  # the fake upstream runs on the load generator's core (a 2-core box)
    versions: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # target -> why it could not be started
    unavailable_loads: dict[tuple[str, str], str] = field(default_factory=dict)  # (target, load) -> why not served
    runs: dict[tuple[str, str], list[Measured]] = field(default_factory=dict)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    skipped: set[tuple[str, str]] = field(default_factory=set)  # (target, load) left out by choice (--quick)

    def add(self, target: str, load: str, measured: Measured) -> None:
        self.runs.setdefault((target, load), []).append(measured)

    def note(self, target: str, load: str, text: str) -> None:
        """Add a problem seen for a pair, once: later rounds usually repeat it."""
        known = self.notes.get((target, load))
        if not known:
            self.notes[(target, load)] = text
        elif text not in known:
            self.notes[(target, load)] = f"{known}; {text}"

    def best(self, target: str, load: str) -> Measured | None:
        runs = self.runs.get((target, load))
        return max(runs, key=lambda m: m.result.per_second) if runs else None

    def errors(self, target: str, load: str) -> tuple[int, int]:
        """(failed, total) requests over all rounds."""
        runs = self.runs.get((target, load), [])
        return sum(m.result.errors for m in runs), sum(m.result.requests for m in runs)

    def added_p50_ms(self, target: str, load: str) -> float:
        mine, direct = self.best(target, load), self.best("direct", load)
        if mine is None or direct is None or target == "direct":
            return math.nan
        return mine.result.p50_ms - direct.result.p50_ms


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(row) for row in rows)]


def _cell(results: Results, target: str, load: str, pick: str) -> str:
    best = results.best(target, load)
    if best is None:
        if (target, load) in results.skipped:
            return "-"
        if (target, load) in results.unavailable_loads:
            return "unavailable"
        return "failed" if (target, load) in results.notes else "n/a"
    values = {
        "rate": _number(best.result.per_second, 0),
        "p50": _number(best.result.p50_ms, 2),
        "p99": _number(best.result.p99_ms, 2),
        "p50/p99": f"{_number(best.result.p50_ms, 2)} / {_number(best.result.p99_ms, 2)}",
        "cpu": _number(best.cpu_ms_per_request, 3),
        "added": "baseline" if target == "direct" else _number(results.added_p50_ms(target, load), 2),
    }
    return values[pick]


def _errors_cell(results: Results, target: str, loads: list[str]) -> str:
    failed = sum(results.errors(target, load)[0] for load in loads)
    return f"{failed:,}" + (" (see below)" if failed else "")


def summary_table(results: Results) -> list[str]:
    """The OpenAI-format loads on gpt-4o."""
    loads = [
        load.name
        for load in LOADS
        if load.route == OPENAI_ROUTE and load.name in results.loads and not load.paced_streams
    ]
    header = [
        "target",
        "chat req/s (32c)",
        "chat p50 / p99 ms (32c)",
        "added p50 ms (1c)",
        "streams/s (32c)",
        "TTFB p50 ms (1c)",
        "embeddings req/s (32c)",
        "CPU ms/req (chat 32c)",
        "peak RSS MiB",
        "errors",
    ]
    rows = []
    for target in results.targets:
        if target in results.unavailable:
            rows.append([target, f"unavailable: {results.unavailable[target]}", *[""] * (len(header) - 2)])
            continue
        rows.append(
            [
                target,
                _cell(results, target, "chat-32c", "rate"),
                _cell(results, target, "chat-32c", "p50/p99"),
                _cell(results, target, "chat-1c", "added"),
                _cell(results, target, "stream-32c", "rate"),
                _cell(results, target, "ttfb-1c", "p50"),
                _cell(results, target, "embed-32c", "rate"),
                _cell(results, target, "chat-32c", "cpu"),
                _number(results.peak_rss_mib.get(target, math.nan), 0),
                _errors_cell(results, target, loads),
            ]
        )
    return _table(header, rows)


def _columns_table(results: Results, columns: list[tuple[str, str, str]], loads: list[str]) -> list[str]:
    """A row per target: one cell per (title, load, figure) column, then the errors over `loads`."""
    header = ["target", *(title for title, _, _ in columns), "errors"]
    rows = []
    for target in results.targets:
        if target in results.unavailable:
            rows.append([target, f"unavailable: {results.unavailable[target]}", *[""] * (len(header) - 2)])
            continue
        cells = [_cell(results, target, load, pick) for _, load, pick in columns]
        rows.append([target, *cells, _errors_cell(results, target, loads)])
    return _table(header, rows)


def _translated_passthrough_table(
    results: Results, routes: frozenset[str], translated: tuple[str, str, str], passthrough: tuple[str, str, str]
) -> list[str]:
    """One provider's loads: translated (OpenAI format in) and passthrough (the provider's format both ways);
    `translated` and `passthrough` name the loads: (32 connections, 1 connection, streaming)."""
    loads = [
        load.name for load in LOADS if load.route in routes and load.name in results.loads and not load.paced_streams
    ]
    columns = [
        ("translated req/s (32c)", translated[0], "rate"),
        ("translated added p50 ms (1c)", translated[1], "added"),
        ("translated streams/s (32c)", translated[2], "rate"),
        ("passthrough req/s (32c)", passthrough[0], "rate"),
        ("passthrough added p50 ms (1c)", passthrough[1], "added"),
        ("passthrough streams/s (32c)", passthrough[2], "rate"),
        ("CPU ms/req (translated 32c)", translated[0], "cpu"),
        ("CPU ms/req (passthrough 32c)", passthrough[0], "cpu"),
    ]
    return _columns_table(results, columns, loads)


def claude_table(results: Results) -> list[str]:
    """The loads on Claude: translated (OpenAI format in, Anthropic upstream) and passthrough (Anthropic both)."""
    return _translated_passthrough_table(
        results,
        CLAUDE_ROUTES,
        ("claude-chat-32c", "claude-chat-1c", "claude-stream-32c"),
        ("messages-32c", "messages-1c", "messages-stream-32c"),
    )


def gemini_table(results: Results) -> list[str]:
    """The loads on Gemini: translated (OpenAI format in, Gemini upstream) and passthrough (Gemini both)."""
    return _translated_passthrough_table(
        results,
        GEMINI_ROUTES,
        ("gemini-chat-32c", "gemini-chat-1c", "gemini-stream-32c"),
        ("generate-32c", "generate-1c", "generate-stream-32c"),
    )


def responses_table(results: Results) -> list[str]:
    """The Responses API loads: translated to Claude, and forwarded to an OpenAI upstream (gpt-4o)."""
    loads = [load.name for load in LOADS if load.route in RESPONSES_ROUTES and load.name in results.loads]
    columns = [
        ("translated req/s (32c)", "responses-32c", "rate"),
        ("translated streams/s (32c)", "responses-stream-32c", "rate"),
        ("passthrough req/s (32c)", "responses-gpt-32c", "rate"),
        ("passthrough streams/s (32c)", "responses-gpt-stream-32c", "rate"),
        ("CPU ms/stream (translated)", "responses-stream-32c", "cpu"),
        ("CPU ms/stream (passthrough)", "responses-gpt-stream-32c", "cpu"),
    ]
    return _columns_table(results, columns, loads)


PACED_INTRO = (
    "Many slow streams at once, as real LLM traffic is: each user holds one keep-alive connection and streams one "
    "reply after another (closed loop); the fake upstream sends each of a stream's {events} content events on its "
    "own ({gap:g} ms apart, one write each; then the finish and usage chunks and [DONE]), so the gateway relays "
    "every event by itself. `paced-N`: N concurrent OpenAI-format streams to `gpt-4o-paced` (passthrough); "
    "`paced-claude-N` and `paced-gemini-N`: the same to `claude-sonnet-4-5-paced` and `gemini-2.0-flash-paced` "
    "(translated to Anthropic's Messages stream, or Gemini's streamGenerateContent, and back; direct is the fake's "
    "OpenAI chat route, paced alike). The requests ask for usage (`stream_options`); a stream "
    "is complete when it ends with the usage chunk and `[DONE]`. Client: bench/paced.py (uvloop), the users' "
    "starts spread over one stream's length, then {duration:g} s measured; a stream counts when it ends in that "
    "window. TTFE = time to the first `data:` event; whole = the whole stream. CPU % of a core and CPU µs/event "
    "(per `data:` event the client received): the target's process tree over the window (user+system). Peak RSS: "
    "the target's VmHWM, reset before the load. A target with several workers shows each busy process's share of "
    "its CPU in brackets. Cores for direct's rate: the target's CPU per stream times direct's streams/s, the CPU it "
    "would need to keep pace with direct (measured at the load's own rate; a saturated target batches more, so "
    "this is a floor): above 1.00 a one-worker target cannot keep up on its core. Upstream / client: the fake's "
    "and the client's CPU over the window; load core %: the busiest core of the load side, which on a 2-core box "
    "is the two together on the core they share (the client alone for `direct`, whose fake moves to the gateway's "
    "core), and with 3 or more cores, where the fake has its own, the busier of the two. Near 100 the load side is "
    "the limit: its queues, not the target, then set the first-event times."
)


def paced_table(results: Results) -> list[str]:
    """The token-paced loads, one row per (load, target): rate (and against direct), first-event and
    whole-stream latency, the target's CPU (per event and per core) and memory, and the load core's use."""
    header = [
        "load",
        "target",
        "streams/s",
        "of direct",
        "TTFE p50 / p99 ms",
        "added TTFE p99 ms",
        "whole p50 / p99 s",
        "CPU % of a core",
        "cores for direct's rate",
        "CPU µs/event",
        "µs/event vs passthrough",
        "peak RSS MiB",
        "upstream / client CPU %",
        "load core %",
        "errors / streams",
    ]
    rows = []
    for load in LOADS:
        if not load.paced_streams or load.name not in results.loads:
            continue
        passthrough = f"paced-{load.paced_streams}"
        direct = results.best("direct", load.name)
        for target in results.targets:
            if target in results.unavailable or (target, load.name) in results.skipped:
                continue
            if (reason := results.unavailable_loads.get((target, load.name))) is not None:
                rows.append([load.name, target, f"unavailable: {_escape(reason)}", *[""] * (len(header) - 3)])
                continue
            best = results.best(target, load.name)
            if best is None or best.result.paced is None:
                note = _escape(results.notes.get((target, load.name), "not measured"))
                rows.append([load.name, target, f"failed: {note}", *[""] * (len(header) - 3)])
                continue
            result, paced = best.result, best.result.paced
            baseline = direct.result if direct is not None and target != "direct" else None
            of_direct = (
                f"{result.per_second / baseline.per_second * 100:.0f}%" if baseline and baseline.per_second else "-"
            )
            added = (
                _signed(paced.ttfe_p99_ms - baseline.paced.ttfe_p99_ms, 1)
                if baseline is not None and baseline.paced is not None
                else "-"
            )
            other = results.best(target, passthrough)
            ratio = "-"
            if load.name != passthrough and other is not None and other.result.paced is not None:
                base = other.result.paced.cpu_us_per_event
                mine = paced.cpu_us_per_event
                ratio = f"{mine / base:.2f}x" if base and not math.isnan(base) and not math.isnan(mine) else "n/a"
            failed, total = results.errors(target, load.name)
            upstream_cpu = paced.percent_of_core(paced.upstream_cpu_seconds, result.seconds)
            client_cpu = paced.percent_of_core(paced.client_cpu_seconds, result.seconds)
            load_core = _load_core(target, upstream_cpu, client_cpu, results.shared_load_core)
            needed = (
                _number(paced.cores_for_rate(result.requests, baseline.per_second), 2) if baseline is not None else "-"
            )
            rows.append(
                [
                    load.name,
                    target,
                    _number(result.per_second, 0),
                    of_direct,
                    f"{_number(paced.ttfe_p50_ms, 1)} / {_number(paced.ttfe_p99_ms, 1)}",
                    added,
                    f"{_number(result.p50_ms / 1000, 2)} / {_number(result.p99_ms / 1000, 2)}",
                    _cpu_with_workers(paced, result.seconds),
                    needed,
                    _number(paced.cpu_us_per_event, 1),
                    ratio,
                    _number(paced.peak_rss_mib, 0),
                    f"{_number(upstream_cpu, 0)} / {_number(client_cpu, 0)}",
                    _number(load_core, 0),
                    f"{failed:,} / {total:,}" + (f" ({_escape(result.error_kinds)})" if result.error_kinds else ""),
                ]
            )
    return _table(header, rows) if rows else []


def _load_core(target: str, upstream: float, client: float, shared: bool) -> float:
    """The busiest core on the load side: the fake's and the client's together where they share one, except as
    `direct`, whose fake moves to the gateway's core; where the fake has a core of its own, the busier of the two."""
    if target == "direct":
        return client
    return upstream + client if shared else max(upstream, client)


def _cpu_with_workers(paced: PacedFigures, seconds: float) -> str:
    """The target's CPU as % of a core; with several busy processes (workers), each one's share too."""
    whole = _number(paced.percent_of_core(paced.gateway_cpu_seconds, seconds), 0)
    workers = paced.worker_percents(seconds)
    return f"{whole} ({' + '.join(_number(share, 0) for share in workers)})" if workers else whole


def _signed(value: float, digits: int, unit: str = "") -> str:
    return "n/a" if math.isnan(value) else f"{value:+,.{digits}f}{unit}"


def routing_table(results: Results) -> list[str]:
    """ROUTING_TARGET against ROUTING_BASELINE on every load both were measured on: the rates, the change in %,
    and the differences of p50 latency and of CPU per request (what routing and limits cost each request)."""
    header = [
        "load",
        ROUTING_BASELINE,
        ROUTING_TARGET,
        "change",
        f"p50 ms ({ROUTING_BASELINE} / routed)",
        "p50 added ms",
        f"CPU ms/req ({ROUTING_BASELINE} / routed)",
        "CPU added ms/req",
    ]
    rows = []
    for load in LOADS:
        single, routed = results.best(ROUTING_BASELINE, load.name), results.best(ROUTING_TARGET, load.name)
        if load.name not in results.loads or single is None or routed is None:
            continue
        rate = single.result.per_second
        change = (routed.result.per_second / rate - 1) * 100 if rate > 0 else math.nan
        over = " (over budget)" if change < -ROUTING_BUDGET_PERCENT else ""
        rows.append(
            [
                load.name,
                f"{_number(single.result.per_second, 0)} {load.unit}",
                f"{_number(routed.result.per_second, 0)} {load.unit}",
                _signed(change, 1, "%") + over,
                f"{_number(single.result.p50_ms, 2)} / {_number(routed.result.p50_ms, 2)}",
                _signed(routed.result.p50_ms - single.result.p50_ms, 3),
                f"{_number(single.cpu_ms_per_request, 3)} / {_number(routed.cpu_ms_per_request, 3)}",
                _signed(routed.cpu_ms_per_request - single.cpu_ms_per_request, 3),
            ]
        )
    return _table(header, rows) if rows else []


ROUTING_INTRO = (
    f"`{ROUTING_TARGET}` is `{ROUTING_BASELINE}` with three channels per model to the same fake (two in the top "
    "tier drawn 2:1 by weight, one of them with a `max_parallel` never reached; a backup in a lower tier) and "
    "`routing: {max_attempts: 3}`, and a key with RPM, TPM and max-parallel limits far above the load, so that "
    "every request is drawn a channel, admitted by the limiter and answered with x-ratelimit-* headers. Budget: "
    f"routing and limits cost at most 0.05 ms per request, and no rate drops by more than {ROUTING_BUDGET_PERCENT:g}%"
    " (change = routed / single - 1, each from its best round). Added = routed minus single."
)


def _escape(note: str) -> str:
    """A note as one Markdown table cell."""
    return note.replace("|", "\\|").replace("\n", " ")


def detail_table(results: Results) -> list[str]:
    header = ["load", "target", "rate", "p50 ms", "p99 ms", "added p50 ms", "CPU ms/req", "errors / requests", "note"]
    rows = []
    for load in LOADS:
        if load.name not in results.loads:
            continue
        for target in results.targets:
            if target in results.unavailable or (target, load.name) in results.skipped:
                continue
            if (reason := results.unavailable_loads.get((target, load.name))) is not None:
                rows.append([load.name, target, "unavailable", "", "", "", "", "", _escape(reason)])
                continue
            failed, total = results.errors(target, load.name)
            rows.append(
                [
                    load.name,
                    target,
                    f"{_cell(results, target, load.name, 'rate')} {load.unit}",
                    _cell(results, target, load.name, "p50"),
                    _cell(results, target, load.name, "p99"),
                    _cell(results, target, load.name, "added"),
                    _cell(results, target, load.name, "cpu"),
                    f"{failed:,} / {total:,}",
                    _escape(results.notes.get((target, load.name), "")),
                ]
            )
    return _table(header, rows)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return math.nan


def _tool_version(argv: list[str]) -> str:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def machine_lines(command: str) -> list[str]:
    return [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `{command}`",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores (nproc); memory {_memory_gib():.1f} GiB",
        f"- OS: Linux {platform.release()}; Python {platform.python_version()}",
        f"- Load generator: {_tool_version(['wrk', '-v'])}; node {_tool_version(['node', '--version'])}",
    ]


CLAUDE_INTRO = (
    "Translated: OpenAI-format requests to /v1/chat/completions with a Claude model, which the gateway turns into "
    "Anthropic Messages requests and back; direct, and so the added latency's baseline, is the fake's OpenAI chat "
    "route (it answers both formats alike). Passthrough: Anthropic-format requests to /v1/messages, relayed to an "
    "Anthropic upstream; direct is the fake's /v1/messages."
)
GEMINI_INTRO = (
    "Translated: OpenAI-format requests to /v1/chat/completions with gemini-2.0-flash, which the gateway turns "
    "into Gemini generateContent requests and back; direct, and so the added latency's baseline, is the fake's "
    "OpenAI chat route. Passthrough: Gemini-format requests (as google-genai sends them) to "
    "/v1beta/models/gemini-2.0-flash:generateContent and :streamGenerateContent?alt=sse, relayed to a Gemini "
    "upstream; direct is the fake's same route. A Gemini stream is complete when its last event carries a "
    "finishReason (it has no closing event)."
)

RESPONSES_INTRO = (
    "OpenAI's Responses API, POST /v1/responses (what the openai SDK's responses.create sends). Translated: with "
    "claude-sonnet-4-5, which the gateway turns into an Anthropic Messages request and back (a stream re-encoded "
    "as Responses events); passthrough: with gpt-4o, forwarded as sent to an OpenAI upstream's /v1/responses. "
    "direct, for both, is the fake's own /v1/responses. A Responses stream is complete when its last event is "
    "response.completed with usage."
)


def render(results: Results, command: str, paced: tuple[int, float, float] = (50, 20.0, 10.0)) -> str:
    """The whole report: what was run where, the summaries, then every (load, target) pair with its notes;
    `paced` is (events, gap ms, seconds measured) of the token-paced loads."""
    versions = [f"- `{name}`: {version}" for name, version in results.versions.items()]
    routes = {load.route for load in LOADS if load.name in results.loads and not load.paced_streams}
    summaries = []
    if OPENAI_ROUTE in routes:
        summaries += ["## Summary: OpenAI format, gpt-4o", "", *summary_table(results), ""]
    if routes & CLAUDE_ROUTES:
        summaries += ["## Summary: Claude", "", CLAUDE_INTRO, "", *claude_table(results), ""]
    if routes & GEMINI_ROUTES:
        summaries += ["## Summary: Gemini", "", GEMINI_INTRO, "", *gemini_table(results), ""]
    if routes & RESPONSES_ROUTES:
        summaries += ["## Summary: Responses API", "", RESPONSES_INTRO, "", *responses_table(results), ""]
    if paced_rows := paced_table(results):
        events, gap, duration = paced
        intro = PACED_INTRO.format(events=events, gap=gap, duration=duration)
        summaries += ["## Token-paced streams", "", intro, "", *paced_rows, ""]
    if routing := routing_table(results):
        summaries += ["## Routing and key limits", "", ROUTING_INTRO, "", *routing, ""]
    lines = [
        "# llmrelay benchmark results",
        "",
        *machine_lines(command),
        f"- Placement: {results.placement}",
        f"- Rounds: {results.rounds}, target order rotated each round; each figure is from the best round "
        "(most requests/s) of its (target, load) pair; errors add up over all rounds.",
        "- Added p50 = the target's p50 minus the direct p50 for the same load; CPU ms/req is the gateway's "
        "process tree only (user+system), not the upstream's nor wrk's.",
        "",
        *summaries,
        "## Every load",
        "",
        *detail_table(results),
        "",
        "## Versions",
        "",
        *versions,
        "",
    ]
    return "\n".join(lines)

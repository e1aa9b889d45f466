"""Benchmark llmrelay against the physical limit and against other gateways, with one command.

Usage, from the repository root with the project's venv:

    .venv/bin/python bench/run.py                        # every target, 10 s per load, 2 rounds -> bench/RESULTS.md
    .venv/bin/python bench/run.py --quick --no-write     # CI-safe guard: direct + llmrelay-1w, 2 s, 1 round
                                                         # (+ llmrelay-routed-1w on chat-32c)
    .venv/bin/python bench/run.py --targets llmrelay-1w,llmrelay-routed-1w --loads chat-32c,chat-1c,stream-32c
    .venv/bin/python bench/run.py --duration 5 --rounds 1 --targets direct,llmrelay-1w,litellm
    .venv/bin/python bench/run.py --loads claude-chat-32c,claude-chat-1c,messages-32c
    .venv/bin/python bench/run.py --loads gemini-chat-32c,generate-32c,generate-stream-32c
    .venv/bin/python bench/run.py --soak-requests 200000 # only the memory soak of llmrelay-1w, printed
    .venv/bin/python bench/run.py --targets direct,llmrelay-1w --loads paced-500,paced-2000,paced-claude-500 \
        --rounds 1 --no-write                            # token-paced streams (paced.py's client)

What it does: installs wrk with apt-get if it is missing, starts bench/fake_upstream.py, starts each target
(LiteLLM and Portkey are installed under bench/.work/ on first use), then applies every load to every target in
interleaved rounds (loads.py lists them). wrk runs on one core and the gateway under test on the other. A target
that cannot be installed or started is reported as unavailable and the run goes on, and so is a load a target
cannot serve (its reason is in the report). Every process started is
stopped on exit, Ctrl-C included; everything listens on 127.0.0.1; every wait is bounded.

Exit status: 0 when the fake upstream and every selected llmrelay target were measured, however slow (the figures
are printed, never asserted); 1 when one of them could not be started or measured; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from loads import LOADS, LOADS_BY_NAME, Load, LoadError, describe_reply, measure_first_chunk, probe, run_wrk
from paced import run_paced
from procs import Cpus, PeakMemory, ProcessGroup, choose_cpus, cpu_seconds, rss_mib, usable_cpus
from report import ROUTING_TARGET, Measured, Results, render
from targets import STARTERS, WORK_DIR, Setup, Target, Unavailable, start_llmrelay, start_upstream

ROUTED = ROUTING_TARGET  # llmrelay-1w with 3 channels per model and a rate-limited key, to compare with it
TARGET_NAMES = ("direct", "pipe", "llmrelay-1w", ROUTED, "llmrelay-2w", "litellm", "portkey")
QUICK_TARGETS = ("direct", "llmrelay-1w", ROUTED)
# With --quick (and no --targets), a target listed here is measured on these loads only: the routed target on one,
# enough to see it serve with its limits and to catch a gross slowdown of routing or limits for ~3 s more.
QUICK_ONLY = {ROUTED: ("chat-32c",)}
# The OpenAI loads, one stream per Claude path (the translated one and the passthrough one), and Gemini's
# translated stream, which exercises the most of the Gemini codec (the request out, every event back).
QUICK_LOADS = (
    "chat-32c",
    "chat-1c",
    "stream-32c",
    "ttfb-1c",
    "embed-32c",
    "claude-stream-32c",
    "messages-stream-32c",
    "gemini-stream-32c",
)
RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
WARMUP_SECONDS = 1.0
# After a token-paced load a slow gateway may still be working off streams its clients have left (LiteLLM: for
# tens of seconds), on the core every target shares: wait until it is idle, so that it does not slow the next.
SETTLE_MAX_SECONDS = 120.0
SETTLE_SAMPLE_SECONDS = 0.5
SETTLE_IDLE_PERCENT = 5.0
SOAK_CHUNK_SECONDS = 5.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark llmrelay against a fake upstream (direct), LiteLLM and Portkey.",
        epilog="Example: .venv/bin/python bench/run.py --duration 5 --rounds 1",
    )
    parser.add_argument("--targets", help=f"comma-separated subset of {','.join(TARGET_NAMES)} (default: all)")
    parser.add_argument("--duration", type=float, help="seconds per load and round (default 10)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds; the best round is reported (default 2)")
    parser.add_argument("--loads", help="comma-separated subset of the loads (default: all; see bench/README.md)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"direct + llmrelay-1w, 2 s per load, 1 round, {len(QUICK_LOADS)} of the loads; {ROUTED} on "
        f"{', '.join(QUICK_ONLY[ROUTED])} only",
    )
    parser.add_argument("--no-write", action="store_true", help=f"print only, do not write {RESULTS_PATH.name}")
    parser.add_argument("--soak-requests", type=int, help="instead: this many chat requests through llmrelay-1w")
    parser.add_argument(
        "--paced-events", type=int, default=50, help="content events per token-paced stream (default 50)"
    )
    parser.add_argument(
        "--paced-gap-ms", type=float, default=20.0, help="ms between a token-paced stream's events (default 20)"
    )
    args = parser.parse_args(argv)
    default_targets = QUICK_TARGETS if args.quick else TARGET_NAMES
    only = QUICK_ONLY if args.quick and not args.targets else {}
    args.targets = args.targets.split(",") if args.targets else list(default_targets)
    unknown = set(args.targets) - set(TARGET_NAMES)
    if unknown:
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    default_loads = QUICK_LOADS if args.quick else LOADS_BY_NAME
    names = set(args.loads.split(",") if args.loads else default_loads)
    if unknown := names - set(LOADS_BY_NAME):
        parser.error(f"unknown load(s): {', '.join(sorted(unknown))}; known: {', '.join(LOADS_BY_NAME)}")
    args.loads = [load for load in LOADS if load.name in names]  # in LOADS order, whatever the order given
    # (target, load) pairs left out by choice: neither measured nor reported as missing
    args.skipped = {(t, load.name) for t, wanted in only.items() for load in args.loads if load.name not in wanted}
    args.targets = [t for t in args.targets if t not in only or any(load.name in only[t] for load in args.loads)]
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.rounds = args.rounds or (1 if args.quick else 2)
    return args


def ensure_wrk() -> None:
    """wrk comes from Debian's archive; apt-get update first, since a fresh machine has no package lists."""
    if shutil.which("wrk"):
        return
    print("wrk is missing: installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        subprocess.run(argv, env=env, timeout=900, check=False, stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is required and `apt-get install -y wrk` did not provide it")


@contextlib.contextmanager
def upstream_on(upstream: Target, cpu: int | None, home: int | None) -> Iterator[None]:
    """While the fake upstream is itself the target, give it the gateway's core, as any target gets."""
    if cpu is None or home is None:
        yield
        return
    os.sched_setaffinity(upstream.process.pid, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(upstream.process.pid, {home})


def measure(target: Target, load: Load, args: argparse.Namespace, cpus: Cpus, upstream: Target) -> Measured:
    """One load against one target, charging the CPU the target's process tree used to its requests (for a
    token-paced load, over the client's measured window only)."""
    duration = args.duration
    if load.paced_streams:
        ramp = args.paced_events * args.paced_gap_ms / 1000  # one stream's length: every user has started
        result = run_paced(target.endpoint, load, duration, ramp, cpus.load, target.process.pid, upstream.process.pid)
        cpu = result.paced.gateway_cpu_seconds if result.paced else math.nan
        return Measured(result, cpu * 1000 / result.requests if result.requests else math.nan)
    before = cpu_seconds([target.process.pid])
    if load.first_chunk_only:
        result = measure_first_chunk(target.endpoint, load, duration)
    else:
        result = run_wrk(target.endpoint, load, duration, cpus.load)
    used = cpu_seconds([target.process.pid]) - before
    return Measured(result, used * 1000 / result.requests if result.requests else math.nan)


def probe_note(target: Target, load: Load) -> str:
    """What one request of the load gets from the target, when that is not a clean success."""
    try:
        return describe_reply(probe(target.endpoint, load), load, target.expect_headers)
    except (OSError, EOFError, TimeoutError, ValueError) as exc:
        return f"probe failed: {exc!r}"


def start_targets(names: list[str], setup: Setup, results: Results) -> dict[str, Target]:
    """The gateways (not the upstream); one that cannot start is recorded as unavailable and skipped."""
    started = {}
    for name in names:
        print(f"starting {name}")
        try:
            started[name] = STARTERS[name](setup)
        except Unavailable as exc:
            results.unavailable[name] = str(exc)
            print(f"  {name} unavailable: {exc}")
            continue
        results.versions[name] = started[name].version
    return started


def warm_up(targets: dict[str, Target], loads: list[Load], cpus: Cpus, skipped: set[tuple[str, str]]) -> None:
    """A short run of each wrk load per target, so that the first measured round pays no first-request costs."""
    for target in targets.values():
        for load in loads:
            if (target.name, load.name) in skipped:
                continue
            usable = load.route not in target.endpoint.unavailable
            if not load.first_chunk_only and not load.paced_streams and usable:
                with contextlib.suppress(LoadError):
                    run_wrk(target.endpoint, load, WARMUP_SECONDS, cpus.load)


def settle(target: Target) -> bool:
    """Wait (bounded) until the target's process tree uses under SETTLE_IDLE_PERCENT of a core; False if it
    never did."""
    deadline = time.monotonic() + SETTLE_MAX_SECONDS
    while time.monotonic() < deadline:
        before = cpu_seconds([target.process.pid])
        time.sleep(SETTLE_SAMPLE_SECONDS)
        used = cpu_seconds([target.process.pid]) - before
        if used / SETTLE_SAMPLE_SECONDS * 100 < SETTLE_IDLE_PERCENT:
            return True
    return False


def _progress(round_index: int, rounds: int, name: str, load: Load, measured: Measured) -> str:
    result = measured.result
    if (paced := result.paced) is not None:
        workers = paced.worker_percents(result.seconds)
        split = f" ({' + '.join(f'{share:.0f}%' for share in workers)})" if workers else ""
        return (
            f"[round {round_index + 1}/{rounds}] {load.name:<19} {name:<18} {result.per_second:>9,.0f} {load.unit:<9} "
            f"TTFE p50 {paced.ttfe_p50_ms:.1f} p99 {paced.ttfe_p99_ms:.1f} ms  whole p50 {result.p50_ms:.0f} "
            f"p99 {result.p99_ms:.0f} ms  errors {result.errors:,}  gateway "
            f"{paced.percent_of_core(paced.gateway_cpu_seconds, result.seconds):.0f}% of a core{split}, "
            f"{paced.cpu_us_per_event:.1f} us/event, peak RSS {paced.peak_rss_mib:.0f} MiB  (upstream "
            f"{paced.percent_of_core(paced.upstream_cpu_seconds, result.seconds):.0f}%, client "
            f"{paced.percent_of_core(paced.client_cpu_seconds, result.seconds):.0f}%"
            + (f", {paced.unfinished} unfinished" if paced.unfinished else "")
            + ")"
        )
    return (
        f"[round {round_index + 1}/{rounds}] {load.name:<19} {name:<18} {result.per_second:>9,.0f} {load.unit:<9} "
        f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors:,}  "
        f"cpu {measured.cpu_ms_per_request:.3f} ms/req"
    )


def measure_one(
    target: Target, load: Load, args: argparse.Namespace, cpus: Cpus, upstream: Target, results: Results
) -> bool:
    """Probe (first round), measure and record one pair; False when the target can no longer be measured."""
    if (target.name, load.name) in results.skipped:
        return True
    if (reason := target.endpoint.unavailable.get(load.route)) is not None:
        if (target.name, load.name) not in results.unavailable_loads:
            results.unavailable_loads[(target.name, load.name)] = reason
            print(f"  {load.name} {target.name}: unavailable: {reason}")
        return True
    if (target.name, load.name) not in results.runs and (note := probe_note(target, load)):
        results.note(target.name, load.name, note)
    try:
        with upstream_on(upstream, cpus.gateway[0] if target is upstream and cpus.gateway else None, cpus.upstream):
            measured = measure(target, load, args, cpus, upstream)
    except LoadError as exc:
        results.note(target.name, load.name, str(exc))
        print(f"  {load.name} {target.name}: {exc}")
        return target.process.alive()
    results.add(target.name, load.name, measured)
    if load.paced_streams and not settle(target):
        results.note(target.name, load.name, f"still busy {SETTLE_MAX_SECONDS:.0f}s after the load")
    if measured.result.error_kinds:
        results.note(target.name, load.name, f"failures: {measured.result.error_kinds}")
    print(_progress(len(results.runs[(target.name, load.name)]) - 1, args.rounds, target.name, load, measured))
    if not target.process.alive():
        results.note(target.name, load.name, f"gateway exited; see {target.process.log_path}")
        return False
    return True


def run_rounds(
    targets: dict[str, Target], upstream: Target, args: argparse.Namespace, cpus: Cpus, results: Results
) -> None:
    """Loads outer, targets inner, target order rotated each round: drift on the machine spreads evenly."""
    active = list(targets)
    for round_index in range(args.rounds):
        shift = round_index % len(active) if active else 0
        order = active[shift:] + active[:shift]
        for load in args.loads:
            for name in order:
                if name in active and not measure_one(targets[name], load, args, cpus, upstream, results):
                    active.remove(name)


def run_matrix(args: argparse.Namespace, group: ProcessGroup, cpus: Cpus) -> tuple[Results, list[str]]:
    """Every selected target under every load; returns the results and what failed of the project's own."""
    results = Results(
        targets=list(args.targets),
        loads=[load.name for load in args.loads],
        rounds=args.rounds,
        placement=cpus.describe(),
        shared_load_core=cpus.shared_load_core,
        skipped=set(args.skipped),
    )
    # needed by every target, measured only if `direct` is selected
    upstream = start_upstream(group, cpus.upstream, args.paced_events, args.paced_gap_ms)
    results.versions["direct"] = upstream.version
    gateways = start_targets(
        [n for n in args.targets if n != "direct"], Setup(group, upstream.endpoint.port, cpus), results
    )
    targets = {"direct": upstream, **gateways} if "direct" in args.targets else gateways
    if cpus.load is not None:
        os.sched_setaffinity(0, {cpus.load})  # the harness (its TTFB client, its sampler) stays off the gateway's core
    memory = PeakMemory()
    for name, target in {"direct": upstream, **gateways}.items():
        memory.watch(name, target.process.pid)
    memory.start()
    try:
        if not args.quick:
            warm_up(targets, args.loads, cpus, results.skipped)
        run_rounds(targets, upstream, args, cpus, results)
    finally:
        memory.stop()
    for name in targets:
        results.peak_rss_mib[name] = memory.peak_mib(name)
    return results, _own_failures(results)


def _own_failures(results: Results) -> list[str]:
    own = [name for name in results.targets if name == "direct" or name.startswith("llmrelay")]
    failures = [f"{name}: {results.unavailable[name]}" for name in own if name in results.unavailable]
    for name in own:
        if name in results.unavailable:
            continue
        failures += [
            f"{name} {load}: no measurement"
            for load in results.loads
            if not results.runs.get((name, load)) and (name, load) not in results.skipped
        ]
    return failures


def run_soak(total: int, group: ProcessGroup, cpus: Cpus) -> None:
    """Many non-streaming requests through llmrelay-1w in chunks of a few seconds, reading RSS between chunks."""
    upstream = start_upstream(group, cpus.upstream)
    relay = start_llmrelay(Setup(group, upstream.endpoint.port, cpus), 1)
    if cpus.load is not None:
        os.sched_setaffinity(0, {cpus.load})
    load = LOADS[0]
    samples = [rss_mib(relay.process.pid)]
    done = errors = 0
    started = time.monotonic()
    print(f"soak: {total:,} requests of {load.title} through llmrelay-1w; RSS at start {samples[0]:.1f} MiB")
    while done < total:
        rate = done / (time.monotonic() - started) if done else 0.0
        seconds = min(SOAK_CHUNK_SECONDS, max(1.0, (total - done) / rate)) if rate else SOAK_CHUNK_SECONDS
        result = run_wrk(relay.endpoint, load, seconds, cpus.load)
        done, errors = done + result.requests, errors + result.errors
        samples.append(rss_mib(relay.process.pid))
        print(f"  {done:>9,} requests  {result.per_second:>8,.0f} req/s  RSS {samples[-1]:.1f} MiB  errors {errors:,}")
    start, peak, end = samples[0], max(samples), samples[-1]
    print(
        f"soak done: {done:,} requests, {errors:,} errors; RSS start {start:.1f} MiB, peak {peak:.1f} MiB, "
        f"end {end:.1f} MiB (end - start {end - start:+.1f} MiB)"
    )


def _raise_open_files_limit() -> None:
    """2,000 paced streams are 4,000 sockets in a gateway (client and upstream side): let every started process
    (they inherit it) open as many files as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop every started process


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines show up as they happen, even through a pipe
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _raise_open_files_limit()
    ensure_wrk()
    cpus = choose_cpus(usable_cpus(), shutil.which("taskset") is not None)
    group = ProcessGroup(WORK_DIR / "logs")
    try:
        if args.soak_requests:
            run_soak(args.soak_requests, group, cpus)
            return 0
        results, failures = run_matrix(args, group, cpus)
        command = shlex.join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
        text = render(results, command, (args.paced_events, args.paced_gap_ms, args.duration))
        print("\n" + text)
        if not args.no_write:
            RESULTS_PATH.write_text(text)
            print(f"written to {RESULTS_PATH}")
        for failure in failures:
            print(f"FAILED {failure}", file=sys.stderr)
        return 1 if failures else 0
    except Unavailable as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; stopping every started process", file=sys.stderr)
        return 130
    finally:
        group.stop_all()


if __name__ == "__main__":
    sys.exit(main())

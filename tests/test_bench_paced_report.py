"""The bench's token-paced table (bench/report.py): the figures that tell which core limited a run, and how a
multi-worker target shared the load, computed from what the paced client measured."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from loads import LoadResult, PacedFigures  # the bench's modules, run from bench/ as scripts
from procs import busy_shares, choose_cpus, cpu_seconds_by_process, pinned
from report import Measured, Results, paced_table

SECONDS = 5.0


def paced(
    streams: int, gateway: float, upstream: float, client: float, workers: tuple[float, ...] = (), events: int = 53
) -> Measured:
    """A paced run of SECONDS: `streams` ended in the window, `events` each; CPU seconds as given."""
    figures = PacedFigures(
        ttfe_p50_ms=1.0,
        ttfe_p99_ms=10.0,
        events=streams * events,
        gateway_cpu_seconds=gateway,
        upstream_cpu_seconds=upstream,
        client_cpu_seconds=client,
        peak_rss_mib=80.0,
        unfinished=0,
        worker_cpu_seconds=workers,
    )
    result = LoadResult(streams, SECONDS, 1000.0, 1010.0, 0, "", figures)
    return Measured(result, gateway * 1000 / streams)


def rows(results: Results, load: str = "paced-2000") -> dict[str, dict[str, str]]:
    """The paced table's rows of one load as {target: {column: cell}}."""
    table = paced_table(results)
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    by_target = {}
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == load:
            by_target[cells[1]] = dict(zip(header, cells, strict=True))
    return by_target


def results_of(runs: dict[str, Measured], load: str = "paced-2000", results: Results | None = None) -> Results:
    if results is None:
        results = Results(targets=list(runs), loads=[], rounds=1, placement="")
    results.loads.append(load)
    for target, measured in runs.items():
        results.add(target, load, measured)
    return results


def test_cores_for_directs_rate_scale_the_targets_cpu_per_stream_to_directs_streams_a_second() -> None:
    # direct: 10,000 streams in 5 s (2,000/s). The gateway: 8,000 streams on 4.9 s of CPU, 0.6125 ms a stream,
    # so direct's 2,000 streams/s would take 1.225 cores: one worker cannot keep up.
    table = rows(results_of({"direct": paced(10_000, 3.8, 3.8, 3.4), "llmrelay-1w": paced(8_000, 4.9, 3.1, 1.5)}))
    assert table["llmrelay-1w"]["cores for direct's rate"] == "1.23"
    assert table["llmrelay-1w"]["of direct"] == "80%"
    assert table["direct"]["cores for direct's rate"] == "-"


def test_load_core_is_upstream_and_client_together_but_the_client_alone_for_direct() -> None:
    table = rows(results_of({"direct": paced(10_000, 3.8, 3.8, 3.4), "llmrelay-1w": paced(8_000, 4.9, 3.1, 1.5)}))
    assert table["llmrelay-1w"]["upstream / client CPU %"] == "62 / 30"
    assert table["llmrelay-1w"]["load core %"] == "92"
    # As the target, the fake runs on the gateway's core: the load core holds the client only.
    assert table["direct"]["load core %"] == "68"


def test_a_multi_worker_target_shows_each_workers_share_of_its_cpu() -> None:
    runs = {
        "direct": paced(2_500, 0.9, 0.9, 0.9),
        "llmrelay-1w": paced(2_500, 2.1, 1.0, 0.9, workers=(2.1,)),
        "llmrelay-2w": paced(2_500, 2.6, 1.0, 0.9, workers=(1.35, 1.25)),
    }
    table = rows(results_of(runs))
    assert table["llmrelay-2w"]["CPU % of a core"] == "52 (27 + 25)"
    assert table["llmrelay-1w"]["CPU % of a core"] == "42"


def test_a_target_that_relayed_no_events_has_no_ratio_to_the_passthrough() -> None:
    # Portkey's Gemini streams end without [DONE]: none counts, so it has no CPU per event to compare.
    passthrough = results_of({"direct": paced(10_000, 3.8, 3.8, 3.4), "portkey": paced(1_000, 4.9, 0.6, 0.5)})
    translated = {"direct": paced(10_000, 3.9, 3.9, 3.4), "portkey": paced(1_000, 4.9, 0.6, 0.5, events=0)}
    table = rows(results_of(translated, "paced-gemini-2000", passthrough), "paced-gemini-2000")
    assert table["portkey"]["µs/event vs passthrough"] == "n/a"
    assert table["direct"]["µs/event vs passthrough"] == "1.03x"


def test_busy_shares_count_each_processs_own_cpu_and_leave_out_the_idle_ones() -> None:
    before = {1: 0.5, 2: 10.0, 3: 20.0}
    after = {1: 0.51, 2: 11.25, 3: 21.5, 4: 0.75}  # 4 started in the window
    assert busy_shares(before, after, least=0.1) == [1.5, 1.25, 0.75]
    assert busy_shares(before, after, least=1.3) == [1.5]


def test_cpu_seconds_by_process_reads_this_process_and_its_children() -> None:
    read = cpu_seconds_by_process([os.getpid()])
    assert os.getpid() in read
    assert read[os.getpid()] > 0  # the test run itself has used CPU
    assert all(seconds >= 0 for seconds in read.values())


def test_two_cores_put_the_fake_upstream_on_the_load_core_and_the_gateway_on_the_other() -> None:
    cpus = choose_cpus([0, 1], can_pin=True)
    assert (cpus.load, cpus.upstream, cpus.gateway) == (0, 0, (1,))
    assert cpus.shared_load_core
    assert cpus.for_target(2) == (1,)  # both workers on the one gateway core
    assert pinned(["llmrelay"], cpus.for_target(2)) == ["taskset", "-c", "1", "llmrelay"]


def test_more_cores_give_the_fake_upstream_its_own_and_a_multi_worker_gateway_one_core_a_worker() -> None:
    cpus = choose_cpus([0, 1, 2, 3, 4], can_pin=True)
    assert (cpus.load, cpus.upstream, cpus.gateway) == (0, 1, (2, 3, 4))
    assert not cpus.shared_load_core
    assert cpus.for_target(1) == (2,)
    assert cpus.for_target(2) == (2, 3)
    assert pinned(["llmrelay"], cpus.for_target(2)) == ["taskset", "-c", "2,3", "llmrelay"]
    assert "fake upstream on CPU 1" in cpus.describe()
    three = choose_cpus([4, 5, 6], can_pin=True)
    assert (three.load, three.upstream, three.for_target(2)) == (4, 5, (6,))


def test_without_two_cores_or_taskset_nothing_is_pinned() -> None:
    for cpus in (choose_cpus([0], can_pin=True), choose_cpus([0, 1, 2, 3], can_pin=False)):
        assert cpus.gateway == () and cpus.load is None
        assert pinned(["llmrelay"], cpus.for_target(2)) == ["llmrelay"]
        assert "nothing pinned" in cpus.describe()


def test_with_its_own_core_the_fake_makes_the_load_core_the_busier_of_the_two() -> None:
    runs = {"direct": paced(10_000, 3.8, 3.8, 3.4), "llmrelay-1w": paced(8_000, 4.9, 3.1, 1.5)}
    results = results_of(runs)
    results.shared_load_core = False
    table = rows(results)
    assert table["llmrelay-1w"]["load core %"] == "62"  # the fake's core; the client's is at 30
    assert table["direct"]["load core %"] == "68"

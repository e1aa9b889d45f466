"""Processes the benchmark starts: launching them pinned to a core, stopping them for sure, and reading their cost.

Every process is started in its own session so that one signal to its process group reaches all of its
children (uvicorn workers, node threads' helpers), and so that Ctrl-C in the terminal reaches only the harness,
which then stops everything in order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
STOP_GRACE_SECONDS = 10.0


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pinned(argv: Sequence[str], cpus: int | Sequence[int] | None) -> list[str]:
    """Prefix a command with taskset so that it and every child it forks stay on these cores (None or none: as
    it is)."""
    chosen = [] if cpus is None else [cpus] if isinstance(cpus, int) else list(cpus)
    return ["taskset", "-c", ",".join(map(str, chosen)), *argv] if chosen else list(argv)


@dataclass(frozen=True)
class Cpus:
    """Where the bench's processes run. `load`: wrk, the TTFB and paced clients and the harness; `upstream`: the
    fake upstream (the load core itself on a 2-core box); `gateway`: the cores of the target under test, one per
    worker as far as they go. None and () mean no pinning."""

    load: int | None
    upstream: int | None
    gateway: tuple[int, ...]

    @property
    def shared_load_core(self) -> bool:
        """The fake upstream and the load generator share a core (a 2-core box)."""
        return self.upstream == self.load

    def for_target(self, workers: int) -> tuple[int, ...]:
        """The cores a target with this many worker processes gets: one each while there are enough."""
        return self.gateway[: max(1, workers)]

    def describe(self) -> str:
        if not self.gateway:
            return "fewer than 2 cores (or no taskset): nothing pinned"
        cores = ", ".join(map(str, self.gateway))
        gateway = (
            f"CPU {cores}" if len(self.gateway) == 1 else f"CPUs {cores} (a target's workers share as many as it has)"
        )
        upstream = (
            f"the fake upstream shares CPU {self.load} with wrk"
            if self.shared_load_core
            else f"the fake upstream on CPU {self.upstream}"
        )
        return (
            f"wrk and the TTFB and paced clients on CPU {self.load}, the gateway under test on {gateway}; {upstream}, "
            f"except as the `direct` target, when it moves to CPU {self.gateway[0]}"
        )


def choose_cpus(cpus: Sequence[int], can_pin: bool) -> Cpus:
    """The placement for the cores this process may use: on 2 cores the load generator and the fake upstream
    share one and the gateway has the other; with 3 or more the fake upstream gets a core of its own and the
    gateway the rest, so that neither the load side nor a multi-worker gateway is held to one core."""
    if len(cpus) < 2 or not can_pin:
        return Cpus(None, None, ())
    if len(cpus) == 2:
        return Cpus(cpus[0], cpus[0], (cpus[1],))
    return Cpus(cpus[0], cpus[1], tuple(cpus[2:]))


@dataclass
class Launched:
    """A started process, the log that holds its output, and a readable name for messages."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class ProcessGroup:
    """All processes this run started; `stop_all` ends them newest first, gracefully then by force."""

    log_dir: Path
    launched: list[Launched] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Launched:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        launched = Launched(name, popen, log_path)
        self.launched.append(launched)
        return launched

    def stop(self, launched: Launched) -> None:
        """SIGTERM the process group (the process's own id), wait, then SIGKILL whatever is left of it."""
        if launched.alive():
            _signal_group(launched.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                launched.popen.wait(timeout=STOP_GRACE_SECONDS)
        _signal_group(launched.pid, signal.SIGKILL)  # also reaches children that outlived their parent
        launched.popen.wait()

    def stop_all(self) -> None:
        while self.launched:
            self.stop(self.launched.pop())


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may itself hold spaces and parentheses)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _read_stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    """The root and all its live descendants."""
    children = _children_by_parent()
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, ()))
    return tree


def _tree_stats(roots: Iterable[int]) -> Iterator[tuple[int, list[str]]]:
    """Each live process of the trees with its /proc stat fields (after the command name)."""
    for root in roots:
        for pid in process_tree(root):
            fields = _read_stat(pid)
            if fields is not None:
                yield pid, fields


def cpu_seconds(roots: Iterable[int]) -> float:
    """User+system CPU of the trees, counting children already reaped (cutime/cstime) so nothing is lost."""
    ticks = sum(int(value) for _, fields in _tree_stats(roots) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / CLOCK_TICKS_PER_SECOND


def cpu_seconds_by_process(roots: Iterable[int]) -> dict[int, float]:
    """Each live process of the trees with its own user+system CPU (its reaped children's not included): how a
    multi-worker target's work is shared among its workers."""
    return {pid: (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND for pid, fields in _tree_stats(roots)}


def busy_shares(before: dict[int, float], after: dict[int, float], least: float) -> list[float]:
    """The CPU seconds each process used between two `cpu_seconds_by_process` readings, largest first, leaving
    out the processes that used less than `least` (a supervisor that only waits on its workers)."""
    used = (after[pid] - before.get(pid, 0.0) for pid in after)
    return sorted((seconds for seconds in used if seconds >= least), reverse=True)


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(root: int) -> None:
    """Reset each process's VmHWM to its current RSS (`5` to /proc/<pid>/clear_refs), so that a peak read later
    is the peak since now; where that is not allowed the peak stays the process's lifetime peak."""
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mib(root: int) -> float:
    """The sum of the tree's processes' VmHWM (each one's peak since it started, or since reset_peak_rss)."""
    return sum(_status_kib(pid, "VmHWM:") for pid in process_tree(root)) / 1024


def rss_mib(root: int) -> float:
    """Current resident memory of the whole tree."""
    return sum(_status_kib(pid, "VmRSS:") for pid in process_tree(root)) / 1024


class PeakMemory:
    """Samples process trees in the background and keeps each process's own peak (VmHWM).

    A target's peak is the sum of its processes' peaks, including processes that have exited since; sampling
    is needed only to discover the processes, the kernel keeps each one's high-water mark between samples.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.roots: dict[str, int] = {}
        self.peaks_kib: dict[str, dict[int, int]] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def watch(self, name: str, root: int) -> None:
        with self.lock:
            self.roots[name] = root
            self.peaks_kib.setdefault(name, {})
        self.sample()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()

    def sample(self) -> None:
        with self.lock:
            for name, root in self.roots.items():
                peaks = self.peaks_kib[name]
                for pid in process_tree(root):
                    peaks[pid] = max(peaks.get(pid, 0), _status_kib(pid, "VmHWM:"))

    def peak_mib(self, name: str) -> float:
        self.sample()
        with self.lock:
            return sum(self.peaks_kib.get(name, {}).values()) / 1024

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()

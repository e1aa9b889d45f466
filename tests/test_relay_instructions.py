"""bench/relay_instructions.py's measured run (without callgrind): it relays whole paced streams through the
gateway's byte path, so that what callgrind counts is a stream relayed to its end, with its usage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(("path", "events_per_stream"), [("openai", 53), ("claude", 56), ("gemini", 51)])
def test_the_measured_run_relays_every_event_of_every_stream(path: str, events_per_stream: int) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "relay_instructions.py"), "--relay", path, "--streams", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 3 * events_per_stream

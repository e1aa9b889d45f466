"""Where llmrelay is installed without a C compiler (the Docker image, for one), every stream takes the Python
path: the body writes of body_writes.py, the relay's Python event path and the upstream connection's parser. The
in-process stream tests run again here in that form, in a subprocess whose conftest blocks the extensions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON_ONLY = {**os.environ, "LLMRELAY_PYTHON_ONLY": "1"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=PYTHON_ONLY, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_extensions_are_blocked_in_that_form() -> None:
    probe = (
        "import tests.conftest\n"
        "from llmrelay.body_writes import PyGatheredBody\n"
        "from llmrelay.server import DirectBody\n"
        "from llmrelay.formats.openai import OneLinePassthrough\n"
        "from llmrelay.formats.anthropic import AnthropicTextDeltas\n"
        "from llmrelay.providers.connections import ChunkReader\n"
        "print(PyGatheredBody in DirectBody.__mro__, OneLinePassthrough, AnthropicTextDeltas, ChunkReader)\n"
    )
    done = run("-c", probe)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "None", "None", "None"]


def test_the_stream_tests_pass_on_the_python_path() -> None:
    done = run(
        "-m",
        "pytest",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "tests/test_stream_body.py",
        "tests/test_upstream_connections.py",
        "tests/test_body_writes.py",
        "-k",
        "not built and not compiled",
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout

"""The examples in docs/ run as written against a gateway (its URL and a real key swapped in), so the
reference pages cannot drift from what the gateway does."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Gateway

DOCS = Path(__file__).resolve().parents[1] / "docs"
_BLOCK = re.compile(r"```(python|sh)\n(.*?)```", re.S)


def examples(page: str, language: str) -> list[str]:
    return [code for lang, code in _BLOCK.findall((DOCS / page).read_text()) if lang == language]


def localise(code: str, gateway: Gateway, key: str) -> str:
    return code.replace("http://127.0.0.1:8080", gateway.url).replace("sk-...", key)


@pytest.mark.parametrize("page", ["anthropic.md", "gemini.md", "responses.md"])
def test_python_examples_run(gateway: Gateway, key: str, page: str) -> None:
    blocks = examples(page, "python")
    assert blocks, f"{page} has no python examples"
    for code in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(localise(code, gateway, key), page, "exec"), {})
        assert "You said: Hello!" in out.getvalue(), code


@pytest.mark.parametrize("page", ["anthropic.md", "gemini.md", "responses.md"])
def test_curl_examples_run(gateway: Gateway, key: str, page: str) -> None:
    commands = [block for block in examples(page, "sh") if block.lstrip().startswith("curl")]
    assert commands, f"{page} has no curl examples"
    for command in commands:
        argv = shlex.split(localise(command, gateway, key).replace("\\\n", " "))
        result = subprocess.run([*argv, "--fail-with-body", "-sS"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "You said: Hello!" in result.stdout

"""Fixtures: a fake OpenAI upstream in-process and the real gateway as a subprocess on loopback.

The gateway runs exactly as an operator runs it (`llmrelay serve --config ...`), with its own SQLite file;
tests reach it only over HTTP with the official SDKs, and the CLI as a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if os.environ.get("LLMRELAY_PYTHON_ONLY"):  # tests/test_python_only.py: these tests without the compiled extensions
    for compiled in ("llmrelay._bodywrites", "llmrelay.relay._eventscan", "llmrelay.providers._chunkreader"):
        sys.modules[compiled] = None  # type: ignore[assignment]  # `import` then raises ImportError

import pytest
from openai import OpenAI
from sqlalchemy import Engine

from llmrelay.store.db import make_engine
from tests.fakes.anthropic_upstream import ANTHROPIC_UPSTREAM_SECRET, FakeAnthropic
from tests.fakes.gemini_upstream import GEMINI_UPSTREAM_SECRET, FakeGemini
from tests.fakes.openai_upstream import UPSTREAM_SECRET, FakeOpenAI

ADMIN_KEY = "adm-test-key-0123456789"
CHANNEL_HEADER_SECRET = "hdr-secret-value-4242"  # a secret in the fake channel's `headers:` (not sk-shaped)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> Reply:
    """A plain HTTP call, as curl would make it (no SDK), returning status, headers and body."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def claude_channel(claude: FakeAnthropic | None) -> str:
    """The config entry of a Claude channel on the fake Anthropic upstream (none without one)."""
    if claude is None:
        return ""
    return f"""
  - name: claude
    type: anthropic
    base_url: {claude.base_url}
    api_key: ${{FAKE_ANTHROPIC_KEY}}
    models: [claude-sonnet-4-5, claude-3-5-haiku-latest, claude-opus-4-6]
    model_map: {{claude-alias: claude-sonnet-4-5}}
    timeout: {{connect: 2, read: 2}}"""


def gemini_channel(gemini: FakeGemini | None) -> str:
    """The config entry of a Gemini channel on the fake Gemini upstream (none without one)."""
    if gemini is None:
        return ""
    return f"""
  - name: gemini
    type: gemini
    base_url: {gemini.base_url}
    api_key: ${{FAKE_GEMINI_KEY}}
    models: [gemini-2.0-flash, gemini-2.5-flash, gemini-1.5-pro-latest]
    model_map: {{gemini-alias: gemini-2.0-flash}}
    timeout: {{connect: 2, read: 2}}"""


def gateway_config(
    upstream: FakeOpenAI,
    dead_port: int,
    extra: str = "",
    claude: FakeAnthropic | None = None,
    gemini: FakeGemini | None = None,
) -> str:
    return f"""
channels:
  - name: fake
    type: openai
    base_url: {upstream.base_url}
    api_key: ${{FAKE_UPSTREAM_KEY}}
    models: [gpt-4o, gpt-4o-mini, gpt-3.5-turbo, o1-mini, o1-preview, "gpt-4-gizmo-*", unpriced-model,
             text-embedding-ada-002, text-embedding-3-small, text-embedding-3-large, dall-e-2, dall-e-3,
             tts-1, tts-1-hd, whisper-1, gpt-3.5-turbo-instruct, omni-moderation-latest, text-moderation-latest,
             gpt-4-all, gpt-4o-all, search-gpts]
    model_map: {{alias-mini: gpt-4o-mini, my-whisper: whisper-1, my-embed: text-embedding-3-small}}
    headers: {{X-Channel-Secret: {CHANNEL_HEADER_SECRET}}}
    timeout: {{connect: 2, read: 2}}
  - name: dead
    type: openai
    base_url: http://127.0.0.1:{dead_port}/v1
    api_key: sk-dead-channel-key-000000
    models: [dead-model]{claude_channel(claude)}{gemini_channel(gemini)}
prices:
  dead-model: {{input: 1, output: 1}}
  "gpt-4-gizmo-*": {{input: 10, output: 30, per_request: "0.01"}}
  gpt-4-all: {{per_request: "0.02"}}
  gpt-4o-all: {{input: 5, output: 15}}
  search-gpts: {{per_request: "0.03"}}
limits:
  max_body_bytes: 2000000
  body_timeout: 2
# Tests share this gateway and provoke upstream failures on purpose: no channel rests here (routing has its own
# gateway in test_routing_failover.py). A test that makes an upstream refuse the key enables the channel again.
routing: {{failures_to_cool_down: 1000000, cooldown: 0.001, max_cooldown: 0.001}}
{extra}
"""


@dataclass
class Gateway:
    """A running gateway subprocess and what tests need to reach it."""

    port: int
    config_path: Path
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> Gateway:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmrelay", "serve", "--config", str(self.config_path), "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log_path.read_text()}")
            try:
                if call("GET", f"{self.url}/health").status == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gateway did not start:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "llmrelay", "--config", str(self.config_path), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"llmrelay {' '.join(args)} failed: {result.stderr}")
        return result

    def create_key(self, name: str, *options: str, quota_usd: str | None = "5") -> str:
        quota = ["--quota-usd", quota_usd] if quota_usd is not None else ["--unlimited"]
        out = self.cli("keys", "create", "--name", name, *quota, *options).stdout
        key = out.strip().splitlines()[-1]
        # The running gateway picks new keys up at its next poll (every 0.5 s); wait for it.
        seen = wait_until(lambda: self.key_status(key) != 401, timeout=3)
        assert seen, "the gateway did not pick up the new key within 3 s"
        return key

    def enable_channel(self, name: str) -> dict[str, Any]:
        """Put a channel the gateway disabled (its upstream refused the key) back in service; its state before."""
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        before = {v["name"]: v for v in call("GET", f"{self.url}/admin/channels", headers=auth).json()["data"]}[name]
        assert call("POST", f"{self.url}/admin/channels/{name}/enable", None, auth).status == 200
        return before

    def key_status(self, key: str) -> int:
        return call("GET", f"{self.base_url}/user/info", headers={"Authorization": f"Bearer {key}"}).status

    def engine(self) -> Engine:
        return make_engine(self.env["LLMRELAY_DATABASE_URL"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def make_gateway(
    tmp: Path,
    upstream: FakeOpenAI,
    database_url: str | None = None,
    extra: str = "",
    claude: FakeAnthropic | None = None,
    gemini: FakeGemini | None = None,
) -> Gateway:
    tmp.mkdir(parents=True, exist_ok=True)
    config_path = tmp / "llmrelay.yaml"
    config_path.write_text(gateway_config(upstream, free_port(), extra, claude, gemini))
    data_dir = tmp / "data"
    env = {
        **os.environ,
        "LLMRELAY_DATA_DIR": str(data_dir),
        "LLMRELAY_DATABASE_URL": database_url or f"sqlite:///{data_dir / 'llmrelay.db'}",
        "LLMRELAY_ADMIN_KEY": ADMIN_KEY,
        "FAKE_UPSTREAM_KEY": UPSTREAM_SECRET,
        "FAKE_ANTHROPIC_KEY": ANTHROPIC_UPSTREAM_SECRET,
        "FAKE_GEMINI_KEY": GEMINI_UPSTREAM_SECRET,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    env.pop("LLMRELAY_CONFIG", None)
    env.pop("OPENAI_API_KEY", None)
    for variable in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        env.pop(variable, None)
    return Gateway(free_port(), config_path, data_dir, env, log_path=tmp / "gateway.log")


@pytest.fixture(scope="session")
def claude_upstream() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gemini_upstream() -> Iterator[FakeGemini]:
    fake = FakeGemini().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: FakeOpenAI,
    claude_upstream: FakeAnthropic,
    gemini_upstream: FakeGemini,
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    gw = make_gateway(tmp, upstream, claude=claude_upstream, gemini=gemini_upstream).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def key(gateway: Gateway, request: pytest.FixtureRequest) -> str:
    """A key with $50 for the test module, named after it."""
    return gateway.create_key(f"{request.module.__name__.rsplit('.', 1)[-1]}-user", quota_usd="50")


@pytest.fixture(scope="module")
def client(gateway: Gateway, key: str) -> OpenAI:
    """The official SDK pointed at the gateway with the module's key (no retries: tests see every error)."""
    return OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0, timeout=30)


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy; returns its last value (tests then assert on it)."""
    deadline = time.time() + timeout
    value = predicate()
    while not value and time.time() < deadline:
        time.sleep(interval)
        value = predicate()
    return value

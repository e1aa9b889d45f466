"""The gateways under test: how each is installed (third-party ones into bench/.work/), configured and started.

Every target routes `gpt-4o` (and `text-embedding-3-small`) to the fake upstream's OpenAI routes,
`claude-sonnet-4-5` to its Anthropic route (`/v1/messages`) and `gemini-2.0-flash` to its Gemini routes
(`/v1beta/models/gemini-2.0-flash:generateContent` and `:streamGenerateContent`), and listens on 127.0.0.1
only. Responses API requests (`POST /v1/responses`) go to the same models: gpt-4o's to the fake's own
/v1/responses, claude-sonnet-4-5's translated to its /v1/messages by the gateway, where it can. A target that
cannot be installed or started raises Unavailable with the reason, and the run goes on; a route of the loads
(see loads.py) that a target cannot serve is listed in its Endpoint's `unavailable`, with the reason.

The token-paced loads' models, `gpt-4o-paced`, `claude-sonnet-4-5-paced` and `gemini-2.0-flash-paced`, are
routed like `gpt-4o`, `claude-sonnet-4-5` and `gemini-2.0-flash` (the same channels, the same translation) and
priced like them where a gateway wants a price;
their name is all that tells the fake to pace the stream, so it must reach the fake unchanged.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loads import (
    ANTHROPIC_VERSION,
    CLAUDE_CHAT_ROUTE,
    CLAUDE_MODEL,
    CLAUDE_RESPONSES_ROUTE,
    GEMINI_CHAT_ROUTE,
    GEMINI_MODEL,
    GENERATE_ROUTE,
    LOADS,
    MESSAGES_ROUTE,
    PACED_CLAUDE_MODEL,
    PACED_GEMINI_MODEL,
    PACED_GPT_MODEL,
    Endpoint,
    describe_reply,
    probe,
)
from procs import Cpus, Launched, ProcessGroup, pinned

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
READY_TIMEOUT_SECONDS = 120.0
LITELLM_SPEC = "litellm[proxy]==1.108.7"
PORTKEY_VERSION = "1.15.2"
# Without these pins every Portkey stream fails with the @hono versions npm would otherwise resolve.
PORTKEY_OVERRIDES = {"@hono/node-server": "1.13.5", "@hono/node-ws": "1.2.0"}
UPSTREAM_KEY = "sk-bench-upstream"


class Unavailable(RuntimeError):
    """The target cannot be measured on this machine; the message says why."""


@dataclass
class Target:
    name: str
    endpoint: Endpoint
    process: Launched  # the gateway's root process; its whole tree is what CPU and memory are charged to
    version: str
    expect_headers: tuple[str, ...] = ()  # headers every 2xx reply must carry; the probe of each load checks


@dataclass(frozen=True)
class Setup:
    """What every starter needs: where processes go, where the upstream is, which cores the gateway gets."""

    group: ProcessGroup
    upstream_port: int
    cpus: Cpus


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command_output(
    argv: list[str], timeout: float, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    """Run a setup command; on failure raise Unavailable with the end of its output, which names the cause."""
    try:
        completed = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{Path(argv[0]).name} failed: {exc}") from exc
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise Unavailable(
            f"{Path(argv[0]).name} {' '.join(argv[1:3])} exited {completed.returncode}: {' | '.join(tail)}"
        )
    return completed.stdout


def _answers_http(endpoint: Endpoint) -> bool:
    try:
        probe(endpoint, LOADS[0])
    except (OSError, EOFError, TimeoutError, ValueError):
        return False
    return True


def wait_ready(launched: Launched, endpoint: Endpoint) -> None:
    """Ready means: answers a chat request with any HTTP status (the probes later show which status)."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not launched.alive():
            raise Unavailable(f"exited with {launched.popen.returncode} at startup: {launched.log_tail(5)}")
        if _answers_http(endpoint):
            return
        time.sleep(0.25)
    raise Unavailable(f"not answering after {READY_TIMEOUT_SECONDS:.0f}s: {launched.log_tail(5)}")


def anthropic_headers(key: str) -> dict[str, str]:
    """What the anthropic SDK sends: its key in x-api-key, and the API version."""
    return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}


def gemini_headers(key: str) -> dict[str, str]:
    """What the google-genai SDK sends for Google AI Studio: its key in x-goog-api-key."""
    return {"x-goog-api-key": key}


def _upstream_endpoint(port: int) -> Endpoint:
    """The fake's own routes and key, at `port` (the fake's, or a hop that forwards to it as it is)."""
    routes = {MESSAGES_ROUTE: anthropic_headers(UPSTREAM_KEY), GENERATE_ROUTE: gemini_headers(UPSTREAM_KEY)}
    return Endpoint(port, {"Authorization": f"Bearer {UPSTREAM_KEY}"}, routes)


def start_upstream(
    group: ProcessGroup, cpu: int | None, paced_events: int | None = None, paced_gap_ms: float | None = None
) -> Target:
    """The fake upstream, which is also the `direct` target: the most any gateway in front of it could do.

    As `direct`, the `messages` loads go to its /v1/messages and the `generate` loads to its Gemini routes; the
    `claude-chat` and `gemini-chat` loads (OpenAI format, Claude or Gemini model) go to its OpenAI chat route,
    which answers them as it answers gpt-4o: the baseline a translated request is compared against, since a
    translating gateway turns one OpenAI request into one Anthropic or Gemini one.

    `paced_events` and `paced_gap_ms` set how the `-paced` models' streams are paced (the fake's defaults if None).
    """
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "fake_upstream.py"), "--port", str(port)]
    if paced_events is not None:
        argv.append(f"--paced-events={paced_events}")
    if paced_gap_ms is not None:
        argv.append(f"--paced-gap-ms={paced_gap_ms}")
    launched = group.start("fake-upstream", pinned(argv, cpu))
    endpoint = _upstream_endpoint(port)
    wait_ready(launched, endpoint)
    return Target("direct", endpoint, launched, "bench/fake_upstream.py")


def start_pipe(setup: Setup) -> Target:
    """bench/byte_pipe.py on the gateway's core: the cost of a hop that only copies bytes (see its docstring).
    It forwards what it gets, so it takes the upstream's own key and routes, as `direct` does."""
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "byte_pipe.py"), "--port", str(port), "--upstream-port"]
    launched = setup.group.start("pipe", pinned([*argv, str(setup.upstream_port)], setup.cpus.for_target(1)))
    endpoint = _upstream_endpoint(port)
    wait_ready(launched, endpoint)
    return Target("pipe", endpoint, launched, "bench/byte_pipe.py")


def _llmrelay_python() -> str:
    """The repository's venv has llmrelay installed; fall back to whatever runs the harness."""
    venv_python = REPO_DIR / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def _llmrelay_version(python: str) -> str:
    """Package version and commit, so that a results file says which llmrelay it measured."""
    version = _command_output([python, "-c", "import importlib.metadata as m; print(m.version('llmrelay'))"], 60)
    try:
        commit = _command_output(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"], 10).strip()
    except Unavailable:
        commit = "no git"
    return f"{version.strip()} ({commit})"


def _channel(name: str, kind: str, base_url: str, models: list[str], extra: str = "") -> str:
    """One entry of llmrelay's `channels:` list, as YAML; `extra` is more of its options, e.g. `priority: 1`."""
    options = "".join(f"    {option.strip()}\n" for option in extra.split(",") if option.strip())
    return (
        f"  - name: {name}\n"
        f"    type: {kind}\n"
        f"    base_url: {base_url}\n"
        f"    api_key: {UPSTREAM_KEY}\n"
        f"    models: [{', '.join(models)}]\n"
        f"{options}"
    )


# Each provider's channel(s) to the fake: (name, type, base_url path on the fake, models).
_PROVIDERS = (
    ("fake", "openai", "/v1", ["gpt-4o", "text-embedding-3-small", PACED_GPT_MODEL]),
    ("fake-anthropic", "anthropic", "", [CLAUDE_MODEL, PACED_CLAUDE_MODEL]),  # the anthropic SDK's base URL: no /v1
    ("fake-gemini", "gemini", "", [GEMINI_MODEL, PACED_GEMINI_MODEL]),  # the fake's root; api_version v1beta by default
)
# llmrelay-routed-*: three channels per model, all to the same fake. Two share the top tier by weight (2:1), so
# that every request is picked by a weighted draw, the one with max_parallel counting its requests in flight
# (a cap never reached); a backup in a lower tier is never picked while those two are healthy.
_ROUTED_CHANNELS = (
    ("a", "priority: 1, weight: 2, max_parallel: 10000"),
    ("b", "priority: 1, weight: 1"),
    ("backup", "priority: 0"),
)
# ... and its key has every limit, each far above what the loads reach (a minute of chat-32c is under 10^6
# requests and 10^8 tokens), so that every request goes through the limiter and gets its headers, and none is
# ever refused.
ROUTED_KEY_LIMITS = ("--rpm", "100000000", "--tpm", "1000000000", "--max-parallel", "100000")
RATE_LIMIT_HEADERS = (  # what every reply to a limited key carries (OpenAI's names)
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


def llmrelay_config(upstream_port: int, *, routed: bool) -> str:
    """One channel per provider; or, routed, three per provider (see _ROUTED_CHANNELS) and routing options."""
    root = f"http://127.0.0.1:{upstream_port}"
    channels = []
    for name, kind, path, models in _PROVIDERS:
        if not routed:
            channels.append(_channel(name, kind, root + path, models))
            continue
        channels += [_channel(f"{name}-{tag}", kind, root + path, models, extra) for tag, extra in _ROUTED_CHANNELS]
    routing = "routing:\n  max_attempts: 3\n" if routed else ""
    prices = (
        "prices:\n"
        '  text-embedding-3-small: {input: "0.02", output: "0"}\n'
        f'  {PACED_GPT_MODEL}: {{input: "2.50", cached_input: "1.25", output: "10", max_output_tokens: 16384}}\n'
        f'  {PACED_CLAUDE_MODEL}: {{input: "3", cached_input: "0.30", cache_write: "3.75", output: "15", '
        "max_output_tokens: 64000}\n"
        f'  {PACED_GEMINI_MODEL}: {{input: "0.10", cached_input: "0.025", output: "0.40", max_output_tokens: 8192}}\n'
    )
    return "channels:\n" + "".join(channels) + routing + prices


def start_llmrelay(setup: Setup, workers: int, *, routed: bool = False) -> Target:
    """A fresh data directory and key per run, so that earlier runs' usage rows do not weigh on this one.

    `routed`: the same server with three channels per model and a key with rate limits (llmrelay-routed-*), to
    be compared with the single-channel, unlimited one; started only once a reply is seen to carry the
    x-ratelimit-* headers, i.e. once the limits are seen to be applied.
    """
    name = f"llmrelay-routed-{workers}w" if routed else f"llmrelay-{workers}w"
    python = _llmrelay_python()
    data_dir = WORK_DIR / name
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    config = data_dir / "config.yaml"
    config.write_text(llmrelay_config(setup.upstream_port, routed=routed))
    env = {"LLMRELAY_DATA_DIR": str(data_dir)}
    base = [python, "-m", "llmrelay", "--config", str(config)]
    create = [*base, "keys", "create", "--name", "bench", "--quota-usd", "1000000"]
    created = _command_output([*create, *(ROUTED_KEY_LIMITS if routed else ())], 120, env=env)
    key = created.strip().splitlines()[-1].strip()
    port = free_port()
    serve = [*base, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    launched = setup.group.start(name, pinned(serve, setup.cpus.for_target(workers)), env=env)
    routes = {MESSAGES_ROUTE: anthropic_headers(key), GENERATE_ROUTE: gemini_headers(key)}
    endpoint = Endpoint(port, {"Authorization": f"Bearer {key}"}, routes)
    wait_ready(launched, endpoint)
    expected = RATE_LIMIT_HEADERS if routed else ()
    if expected and (note := describe_reply(probe(endpoint, LOADS[0]), LOADS[0], expected)):
        raise Unavailable(f"its chat reply is not what a limited key gets: {note}")
    return Target(name, endpoint, launched, _llmrelay_version(python), expected)


def ensure_litellm() -> Path:
    """LiteLLM in its own venv (its pins must not touch llmrelay's); a marker records a completed install."""
    venv = WORK_DIR / "litellm-venv"
    marker = venv / ".bench-installed"
    executable = venv / "bin" / "litellm"
    if marker.exists() and marker.read_text() == LITELLM_SPEC and executable.exists():
        return executable
    print(f"  installing {LITELLM_SPEC} into {venv.relative_to(REPO_DIR)} (takes minutes the first time)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    _command_output([sys.executable, "-m", "venv", str(venv)], 300)
    _command_output([str(venv / "bin" / "pip"), "install", "--quiet", LITELLM_SPEC], 1800)
    marker.write_text(LITELLM_SPEC)
    return executable


def start_litellm(setup: Setup) -> Target:
    """LiteLLM proxy, one uvicorn worker, no database, with the cost map read locally instead of downloaded.

    The Claude model is LiteLLM's own `anthropic/` provider, which translates OpenAI-format requests itself;
    its api_base is the fake without /v1, as for the anthropic SDK (LiteLLM appends /v1/messages). The same
    model serves LiteLLM's Anthropic-format `/v1/messages` endpoint, whose key goes in x-api-key.

    The Gemini model is LiteLLM's own `gemini/` provider (Google AI Studio), which translates OpenAI-format
    requests itself; with an api_base it calls `{api_base}/models/{model}:generateContent` (and
    `:streamGenerateContent?alt=sse`), so its api_base is the fake's /v1beta. Gemini-format requests go to
    LiteLLM's Google AI Studio pass-through, `/gemini/{path}`, with the master key in x-goog-api-key: it relays
    them to GEMINI_API_BASE (the fake's root) with the key of the Gemini model (`use_in_pass_through`) as `?key=`.
    """
    executable = ensure_litellm()
    work = WORK_DIR / "litellm"
    work.mkdir(parents=True, exist_ok=True)
    master_key = f"sk-bench-{secrets.token_hex(24)}"
    upstream = {"api_base": f"http://127.0.0.1:{setup.upstream_port}/v1", "api_key": UPSTREAM_KEY}
    claude = {"api_base": f"http://127.0.0.1:{setup.upstream_port}", "api_key": UPSTREAM_KEY}
    gemini = {
        "api_base": f"http://127.0.0.1:{setup.upstream_port}/v1beta",
        "api_key": UPSTREAM_KEY,
        "use_in_pass_through": True,  # its key is the one the /gemini pass-through sends
    }
    config = {
        "model_list": [
            *(
                {"model_name": name, "litellm_params": {"model": f"openai/{name}", **upstream}}
                for name in ("gpt-4o", "text-embedding-3-small")
            ),
            {"model_name": CLAUDE_MODEL, "litellm_params": {"model": f"anthropic/{CLAUDE_MODEL}", **claude}},
            {
                "model_name": PACED_GPT_MODEL,
                "litellm_params": {"model": f"openai/{PACED_GPT_MODEL}", **upstream},
                "model_info": {"input_cost_per_token": 2.5e-6, "output_cost_per_token": 1e-5},
            },
            {
                "model_name": PACED_CLAUDE_MODEL,
                "litellm_params": {"model": f"anthropic/{PACED_CLAUDE_MODEL}", **claude},
                "model_info": {"input_cost_per_token": 3e-6, "output_cost_per_token": 1.5e-5},
            },
            {"model_name": GEMINI_MODEL, "litellm_params": {"model": f"gemini/{GEMINI_MODEL}", **gemini}},
            {
                "model_name": PACED_GEMINI_MODEL,
                "litellm_params": {"model": f"gemini/{PACED_GEMINI_MODEL}", **gemini},
                "model_info": {"input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7},
            },
        ],
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": master_key},
    }
    config_path = work / "config.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
    port = free_port()
    argv = [str(executable), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "WARNING",  # no per-request access log
        "GEMINI_API_BASE": f"http://127.0.0.1:{setup.upstream_port}",  # where its /gemini pass-through goes
    }
    launched = setup.group.start(
        "litellm", pinned([*argv, "--num_workers", "1"], setup.cpus.for_target(1)), env=env, cwd=work
    )
    routes = {MESSAGES_ROUTE: anthropic_headers(master_key), GENERATE_ROUTE: gemini_headers(master_key)}
    endpoint = Endpoint(
        port, {"Authorization": f"Bearer {master_key}"}, routes, route_prefixes={GENERATE_ROUTE: "/gemini"}
    )
    wait_ready(launched, endpoint)
    return Target("litellm", endpoint, launched, LITELLM_SPEC)


def _installed_version(node_modules: Path, package: str) -> str | None:
    try:
        return str(json.loads((node_modules / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _portkey_installed(node_modules: Path) -> bool:
    wanted = {"@portkey-ai/gateway": PORTKEY_VERSION, **PORTKEY_OVERRIDES}
    return all(_installed_version(node_modules, name) == version for name, version in wanted.items())


def ensure_portkey() -> Path:
    """Portkey's gateway from npm, with the overrides that keep its streaming working; returns its package dir."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise Unavailable("node and npm are not installed (apt-get install nodejs npm)")
    work = WORK_DIR / "portkey"
    node_modules = work / "node_modules"
    if not _portkey_installed(node_modules):
        print(f"  installing @portkey-ai/gateway@{PORTKEY_VERSION} into {work.relative_to(REPO_DIR)}", flush=True)
        work.mkdir(parents=True, exist_ok=True)
        package = {
            "name": "llmrelay-bench-portkey",
            "private": True,
            "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
            "overrides": PORTKEY_OVERRIDES,
        }
        (work / "package.json").write_text(json.dumps(package, indent=2) + "\n")
        _command_output(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"], 900, cwd=work)
        if not _portkey_installed(node_modules):
            raise Unavailable("npm install finished but the pinned versions are not what got installed")
    return node_modules / "@portkey-ai" / "gateway"


def start_portkey(setup: Setup) -> Target:
    """Portkey routes by headers; the preload keeps its server on 127.0.0.1.

    For Claude, `x-portkey-provider: anthropic` with the fake as custom host (with /v1, as Portkey's own
    Anthropic base URL has it): OpenAI-format requests are translated by Portkey's Anthropic provider, and
    Anthropic-format ones go to its /v1/messages route with the key in x-api-key.

    Its /v1/responses serves only providers with a Responses API: gpt-4o's go to the fake's /v1/responses, and
    with the anthropic provider it answers HTTP 500 "createModelResponse is not supported by anthropic" (so the
    Claude Responses loads are unavailable; with the default openai provider they would reach the fake's
    /v1/responses untranslated, which is not what they measure).
    """
    package_dir = ensure_portkey()
    port = free_port()
    preload = str(BENCH_DIR / "portkey_loopback.cjs")
    argv = ["node", "--require", preload, "build/start-server.js", f"--port={port}", "--headless"]
    launched = setup.group.start("portkey", pinned(argv, setup.cpus.for_target(1)), cwd=package_dir)
    custom_host = {"x-portkey-custom-host": f"http://127.0.0.1:{setup.upstream_port}/v1"}
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "x-portkey-provider": "openai", **custom_host}
    anthropic = {"x-portkey-provider": "anthropic", **custom_host}
    google = {"x-portkey-provider": "google", "x-portkey-custom-host": f"http://127.0.0.1:{setup.upstream_port}"}
    routes = {
        CLAUDE_CHAT_ROUTE: {"Authorization": f"Bearer {UPSTREAM_KEY}", **anthropic},
        MESSAGES_ROUTE: {**anthropic_headers(UPSTREAM_KEY), **anthropic},
        GEMINI_CHAT_ROUTE: {"Authorization": f"Bearer {UPSTREAM_KEY}", **google},
        GENERATE_ROUTE: {**gemini_headers(UPSTREAM_KEY), **google},
    }
    unavailable = {CLAUDE_RESPONSES_ROUTE: "its /v1/responses does not translate: HTTP 500 with the anthropic provider"}
    endpoint = Endpoint(port, headers, routes, unavailable, route_prefixes={GENERATE_ROUTE: "/v1"})
    wait_ready(launched, endpoint)
    return Target("portkey", endpoint, launched, f"@portkey-ai/gateway@{PORTKEY_VERSION}")


STARTERS: dict[str, Callable[[Setup], Target]] = {
    "pipe": start_pipe,
    "llmrelay-1w": lambda setup: start_llmrelay(setup, 1),
    "llmrelay-2w": lambda setup: start_llmrelay(setup, 2),
    "llmrelay-routed-1w": lambda setup: start_llmrelay(setup, 1, routed=True),
    "litellm": start_litellm,
    "portkey": start_portkey,
}

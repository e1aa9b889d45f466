"""The command line as an operator meets it on a first run: one-line errors with exit status 2 for every
database and startup failure, which database a command used, the per-user data directory, `--config` in
either place, `--version`, help that lists the environment, `info`, validated ports, exact amounts.

Every command runs as a subprocess (`python -m llmrelay ...`), as tests/conftest.py's Gateway.cli runs it, with
an environment holding no provider keys and no LLMRELAY_* settings but those a test gives.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from llmrelay.app import Gateway
from llmrelay.cli.common import usd
from llmrelay.config import load_config, load_storage_settings
from llmrelay.store import keys as key_store
from llmrelay.store.db import make_engine, migrate, shown_url
from llmrelay.store.usage import UsageRecord, write_batch
from tests.conftest import call, free_port

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
ENVIRONMENT_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
    "LLMRELAY_CONFIG",
    "LLMRELAY_DATA_DIR",
    "LLMRELAY_DATABASE_URL",
    "LLMRELAY_ADMIN_KEY",
    "LLMRELAY_GRACEFUL_TIMEOUT",
)


def clean_environment(**overrides: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ENVIRONMENT_VARIABLES and not name.startswith("LLMRELAY_")
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(overrides)
    return env


def llmrelay(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The whole of stderr is the message, on one line, and the status is 2."""
    assert (result.returncode, result.stderr) == (2, f"llmrelay: {message}\n"), result.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_environment(LLMRELAY_DATA_DIR=str(tmp_path / "data"))


def closed_port() -> int:
    return free_port()  # nothing listens there once free_port has closed its socket


# Each command that opens the database, with what it needs to get that far.
def database_commands() -> list[tuple[str, ...]]:
    return [("keys", "list"), ("usage",), ("channels", "list"), ("serve", "--port", str(free_port()))]


# ------------------------------------------------------------------------------------ database failures


@pytest.mark.parametrize("command", database_commands(), ids=lambda c: c[0])
def test_postgresql_down_is_one_line(env: dict[str, str], command: tuple[str, ...]) -> None:
    port = closed_port()
    env["LLMRELAY_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{port}/test"
    one_line_error(
        llmrelay(*command, env=env),
        f"cannot connect to the database postgresql://postgres@127.0.0.1:{port}/test: "
        "connection refused (is PostgreSQL running?)",
    )


@pytest.mark.parametrize("command", database_commands(), ids=lambda c: c[0])
def test_a_missing_database_is_one_line_with_the_fix(env: dict[str, str], command: tuple[str, ...]) -> None:
    env["LLMRELAY_DATABASE_URL"] = f"{POSTGRES}/llmrelay_no_such_database"
    one_line_error(
        llmrelay(*command, env=env),
        f'database "llmrelay_no_such_database" does not exist on {POSTGRES} '
        "(create it: createdb -h 127.0.0.1 -p 5432 -U postgres llmrelay_no_such_database)",
    )


@pytest.mark.parametrize("command", database_commands(), ids=lambda c: c[0])
def test_an_unsupported_url_is_one_line_without_its_password(env: dict[str, str], command: tuple[str, ...]) -> None:
    env["LLMRELAY_DATABASE_URL"] = "mysql://app:hunter2@db.internal/llmrelay"
    result = llmrelay(*command, env=env)
    one_line_error(
        result, "unsupported database URL mysql://app:***@db.internal/llmrelay: use sqlite:///path or postgresql://..."
    )


@pytest.mark.parametrize("command", database_commands(), ids=lambda c: c[0])
def test_a_data_directory_that_cannot_be_created_is_one_line(
    tmp_path: Path, env: dict[str, str], command: tuple[str, ...]
) -> None:
    (tmp_path / "a-file").write_text("")
    env["LLMRELAY_DATA_DIR"] = str(tmp_path / "a-file" / "data")  # below a file: no one can create it
    one_line_error(
        llmrelay(*command, env=env), f"cannot create the data directory {tmp_path / 'a-file' / 'data'}: not a directory"
    )


def test_a_password_in_the_url_is_never_printed(env: dict[str, str]) -> None:
    port = closed_port()
    env["LLMRELAY_DATABASE_URL"] = f"postgresql://postgres:hunter2@127.0.0.1:{port}/test"
    result = llmrelay("keys", "list", env=env)
    one_line_error(
        result,
        f"cannot connect to the database postgresql://postgres:***@127.0.0.1:{port}/test: "
        "connection refused (is PostgreSQL running?)",
    )
    # A password with characters that end a URL's user part early: refused before any driver reads it.
    env["LLMRELAY_DATABASE_URL"] = f"postgresql://postgres:hun/ter@2@127.0.0.1:{port}/test"
    result = llmrelay("keys", "list", env=env)
    assert result.returncode == 2 and "hun" not in result.stderr and "ter" not in result.stderr, result.stderr
    assert "percent-encoded" in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u:se@cr/et@h/db", "postgresql://u:***@h/db"),
        ("sqlite:////var/lib/llmrelay/llmrelay.db", "sqlite:////var/lib/llmrelay/llmrelay.db"),
    ],
)
def test_shown_urls_hide_passwords(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_gateway_whose_database_fails_at_startup_says_so_in_one_line(tmp_path: Path) -> None:
    """The database can fail between `serve`'s check and a worker's start: the lifespan reports it as a line."""
    port = closed_port()
    config = load_config(
        None, {"LLMRELAY_DATA_DIR": str(tmp_path), "LLMRELAY_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"}
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    gateway = Gateway(config)
    asyncio.run(gateway._lifespan(receive, send))  # type: ignore[arg-type]
    assert sent == [
        {
            "type": "lifespan.startup.failed",
            "message": f"llmrelay: cannot connect to the database postgresql://postgres@127.0.0.1:{port}/x: "
            "connection refused (is PostgreSQL running?)",
        }
    ]


# ------------------------------------------------------------------------- which database, which directory


def test_every_database_command_names_its_database_on_stderr(tmp_path: Path, env: dict[str, str]) -> None:
    announced = f"llmrelay: database sqlite:///{tmp_path / 'data' / 'llmrelay.db'}\n"
    created = llmrelay("keys", "create", "--name", "announced", "--quota-usd", "1", env=env)
    assert created.returncode == 0 and created.stderr == announced
    for command in (
        ("keys", "list", "--json"),
        ("keys", "show", "announced"),
        ("usage", "--json"),
        ("channels", "list"),
    ):
        result = llmrelay(*command, env=env)
        assert (result.returncode, result.stderr) == (0, announced), command
    assert json.loads(llmrelay("keys", "list", "--json", env=env).stdout)[0]["name"] == "announced"  # stdout: JSON


def test_an_installed_llmrelay_keeps_its_data_in_the_user_data_directory(tmp_path: Path) -> None:
    """Not ./data: a key created from one directory is found from another, in the same database."""
    env = clean_environment(XDG_DATA_HOME=str(tmp_path / "xdg"))
    database = tmp_path / "xdg" / "llmrelay" / "llmrelay.db"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    created = llmrelay("keys", "create", "--name", "everywhere", "--unlimited", env=env, cwd=tmp_path / "one")
    assert created.returncode == 0 and created.stderr == f"llmrelay: database sqlite:///{database}\n"
    listed = llmrelay("keys", "list", "--json", env=env, cwd=tmp_path / "two")
    assert [k["name"] for k in json.loads(listed.stdout)] == ["everywhere"]
    assert not (tmp_path / "one" / "data").exists() and not (tmp_path / "two" / "data").exists()


def test_the_default_data_directory_is_the_platforms() -> None:
    database_url, data_dir = load_storage_settings(None, {})
    expected = Path(platformdirs.user_data_dir("llmrelay", appauthor=False)).resolve()
    assert data_dir == expected and database_url == f"sqlite:///{expected / 'llmrelay.db'}"


def test_the_data_directory_setting_and_variable_still_win(tmp_path: Path) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text(f"data_dir: {tmp_path / 'from-config'}\n")
    assert load_storage_settings(None, {"LLMRELAY_DATA_DIR": str(tmp_path / "env")})[1] == tmp_path / "env"
    assert load_storage_settings(config, {"LLMRELAY_DATA_DIR": str(tmp_path / "env")})[1] == tmp_path / "from-config"


def test_bin_llmrelay_uses_the_checkouts_data_directory() -> None:
    """bin/llmrelay installs before it runs, so it is not run here; its one line that sets the directory is."""
    script = (ROOT / "bin" / "llmrelay").read_text()
    assert 'export LLMRELAY_DATA_DIR="${LLMRELAY_DATA_DIR:-$root/data}"' in script


# ------------------------------------------------------------------------------------- --config, anywhere


@pytest.mark.parametrize(
    "command",
    [("keys", "list"), ("keys", "show", "x"), ("usage",), ("channels", "list"), ("serve", "--port", str(free_port()))],
    ids=lambda c: "-".join(c[:2]),
)
@pytest.mark.parametrize("where", ["before", "after", "between"])
def test_config_is_accepted_before_or_after_the_command(
    tmp_path: Path, env: dict[str, str], command: tuple[str, ...], where: str
) -> None:
    # A config whose data_dir cannot be created: the error proves the file was read.
    (tmp_path / "a-file").write_text("")
    config = tmp_path / "llmrelay.yaml"
    config.write_text(f"data_dir: {tmp_path / 'a-file' / 'data'}\n")
    option = ("--config", str(config))
    if where == "before":
        argv = (*option, *command)
    elif where == "after":
        argv = (*command, *option)
    else:  # between a group and its action: `keys --config f list`
        argv = (command[0], *option, *command[1:])
    one_line_error(
        llmrelay(*argv, env=env), f"cannot create the data directory {tmp_path / 'a-file' / 'data'}: not a directory"
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_info_reads_config_given_before_or_after(tmp_path: Path, env: dict[str, str], where: str) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text("server: {port: 9001}\n")
    argv = (
        ("--config", str(config), "info", "--json")
        if where == "before"
        else ("info", "--json", "--config", str(config))
    )
    result = llmrelay(*argv, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config_file"] == str(config)


# ----------------------------------------------------------------------------------- version, help, info


def test_version_comes_from_the_package_metadata(env: dict[str, str]) -> None:
    result = llmrelay("--version", env=env)
    assert (result.returncode, result.stdout) == (0, f"llmrelay {metadata.version('llmrelay')}\n")


@pytest.mark.parametrize("command", [(), ("serve",)], ids=["llmrelay", "serve"])
def test_help_lists_the_environment_variables(env: dict[str, str], command: tuple[str, ...]) -> None:
    result = llmrelay(*command, "--help", env=env)
    assert result.returncode == 0
    missing = [name for name in ENVIRONMENT_VARIABLES if name not in result.stdout]
    assert not missing, result.stdout


def test_info_shows_the_setup_and_never_a_key(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text(
        """
channels:
  - name: local
    type: openai
    base_url: http://127.0.0.1:8000/v1
    api_key: sk-local-secret-0123456789
    models: [llama-3.1-8b, qwen-*]
  - name: claude
    type: anthropic
    api_key: ${CLAUDE_SECRET}
    models: [claude-sonnet-4-5]
prices:
  llama-3.1-8b: {input: 0.05, output: 0.10}
  my-own-model: {input: 1, output: 1}
"""
    )
    env["CLAUDE_SECRET"] = "sk-ant-very-secret-value"
    text = llmrelay("--config", str(config), "info", env=env)
    assert text.returncode == 0 and text.stderr == "", text.stderr
    data = json.loads(llmrelay("--config", str(config), "info", "--json", env=env).stdout)
    for output in (text.stdout, json.dumps(data)):
        assert "secret" not in output
    database = f"sqlite:///{tmp_path / 'data' / 'llmrelay.db'}"
    assert data["config_file"] == str(config)
    assert data["database"] == database and data["data_dir"] == str(tmp_path / "data")
    assert data["channels"] == [
        {"name": "local", "type": "openai", "models": 2, "base_url": "http://127.0.0.1:8000/v1"},
        {"name": "claude", "type": "anthropic", "models": 1, "base_url": "https://api.anthropic.com"},
    ]
    builtin = json.loads(llmrelay("info", "--json", env=env).stdout)["prices"]
    assert builtin > 50 and data["prices"] == builtin + 2  # neither configured model has a built-in price
    lines = text.stdout.splitlines()
    assert f"config file  {config}" in lines and f"database     {database}" in lines
    assert f"data dir     {tmp_path / 'data'}" in lines
    assert any(line.split() == ["local", "openai", "2", "http://127.0.0.1:8000/v1"] for line in lines), lines
    assert any(line.startswith(f"prices       {data['prices']} ") for line in lines), lines


def test_info_without_channels_says_how_to_get_some(env: dict[str, str]) -> None:
    text = llmrelay("info", env=env).stdout
    assert "config file  none (settings from the environment only)" in text
    assert "channels     none: set OPENAI_API_KEY" in text


# --------------------------------------------------------------------------------- serve: ports and ready


def test_a_busy_port_is_one_line_before_anything_starts(env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = llmrelay("serve", "--port", str(port), env=env)
    one_line_error(result, f"cannot listen on 127.0.0.1:{port}: address already in use")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--port", "99999", "argument --port: '99999' is not a port: use a whole number from 1 to 65535"),
        ("--port", "0", "argument --port: '0' is not a port: use a whole number from 1 to 65535"),
        ("--port", "http", "argument --port: 'http' is not a port: use a whole number from 1 to 65535"),
        ("--workers", "0", "argument --workers: '0' is not a number of workers: use a whole number from 1"),
    ],
)
def test_serve_options_are_validated(env: dict[str, str], option: str, value: str, message: str) -> None:
    result = llmrelay("serve", option, value, env=env)
    assert result.returncode == 2 and result.stderr.endswith(f"llmrelay serve: error: {message}\n"), result.stderr


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("{port: 99999}", "server: 'port' must be a whole number from 1 to 65535, not 99999"),
        ("{port: 0}", "server: 'port' must be a whole number from 1 to 65535, not 0"),
        ("{workers: 0}", "server: 'workers' must be a whole number of at least 1"),
    ],
)
def test_the_configs_port_and_workers_are_validated(
    tmp_path: Path, env: dict[str, str], server: str, message: str
) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text(f"server: {server}\n")
    one_line_error(llmrelay("serve", "--config", str(config), env=env), message)


def serve_until_healthy(port: int, log: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmrelay", "serve", "--port", str(port), *args], env=env, stdout=out, stderr=out
        )
    deadline = time.time() + 30
    while time.time() < deadline and process.poll() is None:
        try:
            if call("GET", f"http://127.0.0.1:{port}/health").status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the gateway did not start:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def test_serve_says_which_database_and_is_ready_only_once_listening(tmp_path: Path, env: dict[str, str]) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    stop(serve_until_healthy(port, log, env=env))
    text = log.read_text()
    lines = text.splitlines()
    assert lines[0] == f"llmrelay: database sqlite:///{tmp_path / 'data' / 'llmrelay.db'}", text
    ready = next(i for i, line in enumerate(lines) if "llmrelay ready" in line)
    listening = next(i for i, line in enumerate(lines) if f"listening on http://127.0.0.1:{port}" in line)
    assert ready < listening and "Traceback" not in text


# ------------------------------------------------------------------------------------ amounts, exactly


@pytest.fixture
def billed(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """A key that spent $0.000000100 on an image, some speech and a transcription, written as the gateway would."""
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'llmrelay.db'}")
    migrate(engine)
    record, _ = key_store.create_key(engine, "exact", 100)  # a quota of $0.0000001, all of it spent below
    now = int(time.time() * 1000)
    write_batch(
        engine,
        [
            UsageRecord(
                f"req-{i}",
                now,
                record.id,
                endpoint,
                model,
                model,
                "fake",
                prompt,
                0,
                0,
                cost,
                "ok",
                200,
                3,
                False,
                "upstream",
                images=images,
                characters=characters,
                audio_seconds=seconds,
            )
            for i, (endpoint, model, prompt, cost, images, characters, seconds) in enumerate(
                [
                    ("/v1/images/generations", "dall-e-3", 0, 40, 2, 0, 0),
                    ("/v1/audio/speech", "tts-1", 0, 35, 0, 1234, 0),
                    ("/v1/audio/transcriptions", "whisper-1", 0, 25, 0, 0, 61),
                ]
            )
        ],
    )
    engine.dispose()
    return env


def test_the_usage_table_is_exact_and_shows_every_unit(billed: dict[str, str]) -> None:
    table = llmrelay("usage", env=billed).stdout.splitlines()
    header = next(line for line in table if line.startswith("key "))
    assert header.endswith("completion  images  characters  audio seconds  cost"), header
    total = next(line for line in table if line.startswith("TOTAL")).split()
    assert total[-4:] == ["2", "1234", "61", "$0.000000100"], total
    speech = next(line for line in table if line.startswith("tts-1 ")).split()
    assert speech[-4:] == ["0", "1234", "0", "$0.000000035"], speech


def test_json_amounts_are_exact_numbers_everywhere(billed: dict[str, str]) -> None:
    def exact(command: tuple[str, ...]) -> Any:
        result = llmrelay(*command, env=billed)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout, parse_float=Decimal)

    shown = exact(("keys", "show", "exact"))
    listed = exact(("keys", "list", "--json"))[0]
    for view in (shown, listed):
        assert (view["quota_usd"], view["used_usd"], view["balance_usd"]) == (
            Decimal("0.0000001"),
            Decimal("0.0000001"),
            0,
        )
    usage = exact(("usage", "--json"))
    assert usage["total"]["cost_usd"] == Decimal("0.0000001") and usage["keys"][0]["cost_usd"] == Decimal("0.0000001")
    assert {m["model"]: m["cost_usd"] for m in usage["models"]}["whisper-1"] == Decimal("0.000000025")


def test_table_amounts_keep_every_nano_dollar() -> None:
    assert [usd(n) for n in (0, 1, 100, 1_500_000_000, None)] == [
        "$0.000000000",
        "$0.000000001",
        "$0.000000100",
        "$1.500000000",
        "unlimited",
    ]


# ------------------------------------------------------------------------------------------ serve --demo


def test_demo_needs_no_provider_key_and_hands_out_a_key_with_a_curl_line(tmp_path: Path, env: dict[str, str]) -> None:
    port, log = free_port(), tmp_path / "demo.log"
    process = serve_until_healthy(port, log, "--demo", env=env)
    try:
        lines = log.read_text().splitlines()
        assert lines[:3] == [
            f"llmrelay: database sqlite:///{tmp_path / 'data' / 'llmrelay.db'}",
            "llmrelay: demo: every reply is canned, from 3 mock channels (mock-openai, mock-anthropic, mock-gemini); "
            "no provider is called and no provider key is needed",
            "llmrelay: created the key 'demo' (id 1) with $1 of quota, shown only now:",
        ]
        key = lines[3]
        assert key.startswith("sk-") and lines[4] == "llmrelay: try it:"
        curl = lines[5]
        assert curl == (
            f"curl http://127.0.0.1:{port}/v1/chat/completions -H 'Authorization: Bearer {key}' "
            "-H 'Content-Type: application/json' "
            """-d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}'"""
        )
        ran = subprocess.run(
            [*shlex.split(curl), "-sS", "--fail-with-body"], capture_output=True, text=True, timeout=30
        )
        assert ran.returncode == 0 and "mock reply" in json.loads(ran.stdout)["choices"][0]["message"]["content"]
    finally:
        stop(process)
    shown = json.loads(llmrelay("keys", "show", "demo", env=env).stdout, parse_float=Decimal)
    assert shown["quota_usd"] == 1 and shown["used_usd"] > 0  # billed at gpt-4o-mini's real price

    again = free_port()
    process = serve_until_healthy(again, tmp_path / "again.log", "--demo", env=env)
    stop(process)
    text = (tmp_path / "again.log").read_text()
    assert key not in text
    assert (
        "llmrelay: the key 'demo' (id 1) exists from an earlier --demo, which printed it; "
        "for a new one: llmrelay keys delete demo, then serve --demo again"
    ) in text.splitlines()


def test_demo_takes_no_config(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text("")
    for argv in (("serve", "--demo", "--config", str(config)), ("--config", str(config), "serve", "--demo")):
        one_line_error(llmrelay(*argv, env=env), "--demo runs its own config (mock channels only): leave out --config")

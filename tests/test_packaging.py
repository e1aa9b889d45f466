"""What a new operator copies works as copied.

- Every ```yaml block in README.md and docs/*.md is a whole config that loads with `load_config`, with the
  provider keys it names set as a reader would have them, with or without LLMRELAY_ADMIN_KEY, and keeps its data
  in the user's space, the working or the home directory (never /var/lib or another place a user cannot write).
  The config a README section's examples need is shown there (the reverse models' channel and prices).
- llmrelay.example.yaml loads with no environment at all and names every option config.py knows: the option
  names are read from config.py itself (its `known` set, `_CHANNEL_OPTIONS`, `_TYPE_OPTIONS`, the sets each
  section is checked against, the keys read from `server` and `limits`) and from pricing's `_PRICE_FIELDS`, so
  adding an option without documenting it here fails. The README's "Every option" block is held to the same list.
- The gateway starts from the example as it is, and the Dockerfile's health check command passes against it.
- The Dockerfile (checked statically: docker may not run where the tests do), .dockerignore and LICENSE.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Collection
from pathlib import Path

import pytest
import yaml

from llmrelay import config as config_module
from llmrelay.config import CHANNEL_TYPES, Config, load_config
from llmrelay.metering import pricing
from llmrelay.relay.patterns import ModelPatterns
from tests.conftest import call, free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLE = ROOT / "llmrelay.example.yaml"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
_CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")  # ${VAR} and ${VAR:-default}, as config.py
_PROVIDER_KEY = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY(?:_\d+)?")  # what a reader has: OPENAI_API_KEY, ...


# ------------------------------------------------------------------------------ the options config.py knows


def _set_literal(node: ast.AST) -> set[str]:
    assert isinstance(node, ast.Set), ast.dump(node)
    return {element.value for element in node.elts if isinstance(element, ast.Constant)}


def known_options() -> dict[str, set[str]]:
    """Option names by section ("" is the top level), read from config.py's source and pricing's table."""
    tree = ast.parse(inspect.getsource(config_module))
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}

    def checked_set(function: str) -> set[str]:
        """The set literal a function subtracts the given keys from: `set(raw) - {...}`."""
        for node in ast.walk(functions[function]):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
                left = node.left
                if isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "set":
                    return _set_literal(node.right)
        raise AssertionError(f"config.{function} no longer checks its keys against a set literal")

    def keys_read_from(mapping: str) -> set[str]:
        """Keys read from a variable of that name anywhere in config.py: `mapping.get("key", ...)` and calls such
        as `_number(mapping, "key", ...)`."""
        keys = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func, args = node.func, node.args
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == mapping:
                if func.attr == "get" and isinstance(args[0], ast.Constant):
                    keys.add(args[0].value)
            elif (
                len(args) >= 2
                and isinstance(args[0], ast.Name)
                and args[0].id == mapping
                and isinstance(args[1], ast.Constant)
                and isinstance(args[1].value, str)
            ):
                keys.add(args[1].value)
        return keys

    top_level = next(
        _set_literal(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "known" for t in node.targets)
    )
    options = {
        "": top_level,
        "channels": set(config_module._CHANNEL_OPTIONS).union(*config_module._TYPE_OPTIONS.values()),
        "timeout": checked_set("_timeouts"),
        "routing": checked_set("_routing"),
        "image_fetch": checked_set("_image_fetch"),
        "stored_responses": checked_set("_response_retention"),
        "server": keys_read_from("server"),
        "limits": keys_read_from("limits"),
        "prices": set(pricing._PRICE_FIELDS),
    }
    if "mock" in config_module.CHANNEL_TYPES:  # a mock channel's `mock:` mapping
        options["mock"] = set(config_module._MOCK_OPTIONS)
    for section, names in options.items():  # the reading above must keep finding something
        assert names, f"no option names found for {section or 'the top level'} in config.py"
    assert {"host", "port"} <= options["server"] and "max_body_bytes" in options["limits"]
    return options


def missing_options(raw: dict[str, object], mentioned: Collection[str] = ()) -> list[str]:
    """The options `raw` (a config file's YAML) does not set and that are not in `mentioned`."""
    options = known_options()
    channels = [c for c in raw.get("channels") or [] if isinstance(c, dict)]
    timeouts = [c["timeout"] for c in channels if isinstance(c.get("timeout"), dict)]
    mocks = [c["mock"] for c in channels if isinstance(c.get("mock"), dict)]
    prices = [p for p in (raw.get("prices") or {}).values() if isinstance(p, dict)]
    present = {
        "": set(raw),
        "channels": set().union(*channels),
        "timeout": set().union(*timeouts),
        "mock": set().union(*mocks),
        "prices": set().union(*prices, raw.get("default_price") or {}),
    }
    missing = []
    for section, names in options.items():
        have = present.get(section)
        if have is None:
            have = set(raw.get(section) or {})
        missing += [f"{section}.{name}" if section else name for name in sorted(names - have - set(mentioned))]
    return missing


def test_option_names_are_read_from_config_py() -> None:
    options = known_options()
    assert {"channels", "prices", "server", "routing", "stored_responses"} <= options[""]
    assert {"connect", "first_byte", "idle", "read"} == options["timeout"]
    assert {"deployments", "api_version", "responses", "probe_model", "max_parallel"} <= options["channels"]
    assert {"host", "port", "workers", "access_log", "log_format"} == options["server"]
    assert {"max_body_bytes", "body_timeout", "request_timeout"} == options["limits"]
    assert missing_options({}) and "channels" in missing_options({})


# --------------------------------------------------------------------------------------- loading a config


def load_text(text: str, tmp_path: Path, environ: dict[str, str]) -> Config:
    path = tmp_path / "llmrelay.yaml"
    path.write_text(text)
    return load_config(path, environ)


@pytest.fixture
def user_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's space under tmp_path: the working directory `work/` and the home directory `home/` (where the
    per-user data directory is), so that where a config puts its data can be checked against it."""
    for name in ("work", "home"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "LLMRELAY_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def assert_stays_in(config: Config, root: Path) -> None:
    """The SQLite file and the spill file go under `root` (never /var/lib or another place a user cannot write)."""
    root = root.resolve()
    assert config.data_dir.resolve().is_relative_to(root), f"data_dir {config.data_dir} is outside {root}"
    if config.database_url.startswith("sqlite:"):
        database = Path(config.database_url.removeprefix("sqlite:///"))
        assert database.resolve().is_relative_to(root), f"database {config.database_url} is outside {root}"


def references(text: str) -> list[tuple[str, str]]:
    """The ${VAR} and ${VAR:-default} in a YAML document's values (not its comments): (VAR, ":-default" or "")."""

    def strings(node: object) -> list[str]:
        if isinstance(node, dict):
            return [s for key, value in node.items() for s in [*strings(key), *strings(value)]]
        if isinstance(node, list):
            return [s for item in node for s in strings(item)]
        return [node] if isinstance(node, str) else []

    return [found for value in strings(yaml.safe_load(text)) for found in _REFERENCE.findall(value)]


def reader_keys(text: str) -> dict[str, str]:
    """The provider keys a snippet names, set as its reader has them; nothing else."""
    names = {name for name, _ in references(text) if _PROVIDER_KEY.fullmatch(name)}
    return {name: f"fake-{name.lower().replace('_', '-')}" for name in sorted(names)}


def yaml_blocks() -> list[object]:
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in _YAML_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            blocks.append(pytest.param(match.group(1), id=f"{page.relative_to(ROOT)}:{line}"))
    return blocks


def test_the_pages_have_yaml_blocks() -> None:
    ids = [param.id for param in yaml_blocks()]  # type: ignore[attr-defined]
    assert any(i.startswith("README.md") for i in ids) and any(i.startswith("docs/") for i in ids), ids


@pytest.mark.parametrize("block", yaml_blocks())
def test_every_yaml_block_loads_as_copied(block: str, user_space: Path) -> None:
    # Every block is a whole config a reader can copy into a file: no fragments.
    assert isinstance(yaml.safe_load(block), dict), "a whole config is a mapping"
    keys = reader_keys(block)

    # Only the provider keys the block names: no LLMRELAY_ADMIN_KEY, no LLMRELAY_DATA_DIR.
    bare = load_text(block, user_space, dict(keys))
    assert_stays_in(bare, user_space)
    # As the README's own first run has it: an admin key and LLMRELAY_DATA_DIR set.
    data_dir = user_space / "data"
    reader = load_text(
        block, user_space, {**keys, "LLMRELAY_ADMIN_KEY": "adm-reader", "LLMRELAY_DATA_DIR": str(data_dir)}
    )
    assert reader.admin_key == "adm-reader"
    assert_stays_in(reader, user_space)
    for channel in reader.channels:  # a key written as ${..._API_KEY} reaches its channel, none is invented
        assert channel.api_key in {"", *keys.values()}, channel.name


def _section(page: Path, heading: str) -> str:
    text = page.read_text()
    start = text.index(heading)
    end = re.compile(r"^#{2,3} ", re.M).search(text, start + len(heading))  # the next heading (not a "# " comment)
    return text[start : end.start() if end else len(text)]


def test_the_reverse_model_examples_have_the_config_they_need(user_space: Path) -> None:
    """The o1 and reverse-model calls of README's section are served and priced by the config shown there."""
    section = _section(README, "### o1 models and reverse models")
    blocks = _CODE_BLOCK.findall(section)
    configs = [code for language, code in blocks if language == "yaml"]
    assert len(configs) == 1, "the section shows the config its examples need"
    models = {
        model
        for language, code in blocks
        if language in ("sh", "python")
        for model in re.findall(r"""["']?model["']?\s*[:=]\s*["']([^"']+)["']""", code)
    }
    assert any("gizmo" in model for model in models) and "o1-mini" in models, models
    config = load_text(configs[0], user_space, reader_keys(configs[0]))
    assert config.prices.default is None  # priced by name, not by a catch-all
    for model in sorted(models):
        serving = [c for c in config.channels if ModelPatterns([*c.models, *c.model_map]).matches(model)]
        assert serving, f"no channel serves {model}"
        upstream = serving[0].model_map.get(model, model)
        assert config.prices.lookup(model) or config.prices.lookup(upstream), f"{model} has no price"


def test_the_readme_every_option_block_names_every_option() -> None:
    text = README.read_text()
    start = text.index("Every option:")
    match = _YAML_BLOCK.search(text, start)
    assert match is not None and text[start : match.start()].count("\n") <= 2, "the block follows 'Every option:'"
    block = match.group(1)
    # An option may be shown in a comment instead: a commented-out line (`# database_url: ...`, a whole channel
    # `#   deployments: {...}`, flow mappings included) or in backquotes ("(`read: N` sets both)").
    comments = "\n".join(line[line.index("#") :] for line in block.splitlines() if "#" in line)
    mentioned = set(re.findall(r"(?:#\s*(?:-\s*)?|`|[{,]\s*)([a-z_]+):", comments))
    assert missing_options(yaml.safe_load(block), mentioned) == []


# ------------------------------------------------------------------------------------ llmrelay.example.yaml


def _commented_alternatives(text: str) -> dict[str, str]:
    """Top-level options shown commented out (`# database_url: ...`): name -> the line uncommented."""
    top_level = known_options()[""]
    alternatives = {}
    for line in text.splitlines():
        match = re.match(r"# ([a-z_]+): ", line)
        if match and match.group(1) in top_level:
            alternatives[match.group(1)] = line.removeprefix("# ")
    return alternatives


def test_example_references_all_have_defaults() -> None:
    found = references(EXAMPLE.read_text())
    assert found
    assert [name for name, default in found if not default] == []


def test_example_loads_with_no_environment(user_space: Path) -> None:
    config = load_config(EXAMPLE, {})
    assert_stays_in(config, user_space)
    assert config.data_dir == load_config(None, {}).data_dir  # where the gateway keeps data with no config at all
    assert config.admin_key is None
    assert {c.type for c in config.channels} == set(CHANNEL_TYPES)
    assert all(c.api_key == "" for c in config.channels)
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 8080, 1)


def test_example_loads_with_the_environment_set(user_space: Path) -> None:
    text = EXAMPLE.read_text()
    keys = reader_keys(text)
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"} <= set(keys)
    elsewhere = user_space / "elsewhere"
    environ = {
        **keys,
        "LLMRELAY_ADMIN_KEY": "adm-example",
        "LLMRELAY_DATA_DIR": str(elsewhere),
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "AZURE_OPENAI_ENDPOINT": "https://mine.openai.azure.com",
    }
    config = load_config(EXAMPLE, environ)
    assert config.admin_key == "adm-example"
    assert config.data_dir == elsewhere.resolve()
    assert config.database_url == f"sqlite:///{elsewhere.resolve() / 'llmrelay.db'}"
    with_keys = [c for c in config.channels if c.api_key]
    assert sorted(c.api_key for c in with_keys) == sorted(keys.values())  # each channel its own key
    assert {c.type for c in config.channels if not c.api_key} <= {"mock"}  # the mock needs none
    by_name = {c.name: c for c in config.channels}
    assert by_name["openai"].base_url == "http://127.0.0.1:9/v1"
    assert by_name["azure"].base_url == "https://mine.openai.azure.com"


def test_example_names_every_option() -> None:
    text = EXAMPLE.read_text()
    raw = yaml.safe_load(text)
    alternatives = _commented_alternatives(text)
    # Storage alone is left to the environment: a value here would override LLMRELAY_DATA_DIR (the image's /data).
    assert set(alternatives) <= {"data_dir", "database_url"}, alternatives
    assert missing_options(raw, set(alternatives)) == []


def test_example_has_a_channel_of_every_type_with_each_of_its_options() -> None:
    channels = yaml.safe_load(EXAMPLE.read_text())["channels"]
    for kind in CHANNEL_TYPES:
        of_kind = [c for c in channels if c["type"] == kind]
        assert of_kind, f"no {kind} channel"
        for option in sorted(config_module._TYPE_OPTIONS.get(kind, set())):
            assert any(option in c for c in of_kind), f"no {kind} channel sets {option}"


def test_example_commented_options_load_when_uncommented(user_space: Path) -> None:
    text = EXAMPLE.read_text()
    alternatives = _commented_alternatives(text)
    assert {"data_dir", "database_url"} <= set(alternatives)
    for name, line in alternatives.items():
        config = load_text(text.replace(f"# {line}", line), user_space, {})
        value = yaml.safe_load(line)[name]
        assert getattr(config, name) == (Path(value).resolve() if name == "data_dir" else value)
        if name == "data_dir":
            assert_stays_in(config, user_space)


def test_the_gateway_serves_from_the_example_and_the_image_health_check_passes(tmp_path: Path) -> None:
    """`llmrelay serve --config llmrelay.example.yaml` with nothing else set starts and keeps its database in
    the user's space; the Dockerfile's HEALTHCHECK command (its port swapped) passes against it, then fails."""
    port = free_port()
    check = [part.replace("8080", str(port)) for part in healthcheck_command()]
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    environ = {"PATH": str(Path(sys.executable).parent), "HOME": str(home)}
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmrelay", "serve", "--config", str(EXAMPLE), "--port", str(port)],
            cwd=workdir,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if call("GET", f"http://127.0.0.1:{port}/health").status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, log.read_text()
            time.sleep(0.1)
        assert subprocess.run(check, env=environ, timeout=30).returncode == 0
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the SIGTERM once it has shut down cleanly
        assert process.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()
    assert list(tmp_path.rglob("llmrelay.db")), "the database is in the working or the home directory"
    assert subprocess.run(check, env=environ, timeout=30, capture_output=True).returncode != 0


# ------------------------------------------------------------------------------ Dockerfile, .dockerignore


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def healthcheck_command() -> list[str]:
    (arguments,) = [args for instruction, args in dockerfile() if instruction == "HEALTHCHECK"]
    command = arguments[arguments.index("CMD ") + len("CMD ") :]
    return json.loads(command)  # the exec form: no shell needed in the image


def test_dockerfile_key_instructions() -> None:
    steps = dockerfile()
    instructions = [instruction for instruction, _ in steps]
    values = {instruction: [args for i, args in steps if i == instruction] for instruction in instructions}

    assert steps[0] == ("FROM", "python:3.11-slim")
    installs = [i for i, (instruction, args) in enumerate(steps) if instruction == "RUN" and "pip install ." in args]
    assert len(installs) == 1 and "[" not in steps[installs[0]][1], "pip install . without extras"
    users = [i for i, (instruction, _) in enumerate(steps) if instruction == "USER"]
    assert users and users[-1] > installs[0], "installed as root, run as the user"
    user = steps[users[-1]][1].split(":")[0]
    assert user not in ("root", "0"), "the gateway does not run as root"
    assert "/data" in values["VOLUME"][0]
    assert any(re.search(r"(^|\s)LLMRELAY_DATA_DIR=/data(\s|$)", env) for env in values["ENV"])
    assert values["EXPOSE"] == ["8080"] and Config.__dataclass_fields__["port"].default == 8080
    command = json.loads(values["CMD"][-1])
    assert command == ["llmrelay", "serve", "--host", "0.0.0.0"]
    usage = subprocess.run([sys.executable, "-m", *command[:2], "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "--host" in usage.stdout, "the command takes the options the image gives it"

    check = healthcheck_command()
    assert check[0] == "python" and "urllib.request" in check[-1], "slim images have no curl"
    assert "http://127.0.0.1:8080/health" in check[-1]


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "data", ".git", "**/__pycache__"} <= ignored
    assert "bench" in ignored or "bench/.work" in ignored
    sources = []
    for instruction, args in dockerfile():
        if instruction in ("COPY", "ADD"):
            parts = [part for part in args.split() if not part.startswith("--")]
            sources += parts[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") not in ignored, f"{source} is copied but .dockerignore leaves it out"
    assert "tests" in ignored  # the image carries no test code


# ---------------------------------------------------------------------------------------------- LICENSE


def test_license_is_the_mit_license_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the llmrelay authors" in text
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text

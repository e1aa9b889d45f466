"""Pure tests for configuration loading (tmp YAML files, explicit environments) and model routing."""

from __future__ import annotations

import re
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from llmrelay.config import ChannelConfig, Config, ConfigError, interpolate_env, load_config
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import Channel
from llmrelay.providers.openai import OpenAICompatibleProvider
from llmrelay.relay.patterns import ModelPatterns, is_pattern
from llmrelay.relay.routing import Router


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment with nothing inherited: keeps storage inside tmp_path and no OpenAI key."""
    return {"LLMRELAY_DATA_DIR": str(tmp_path / "data")}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llmrelay.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, env: dict[str, str]) -> Config:
    return load_config(write(tmp_path, text), env)


CHANNEL = """
channels:
  - name: local
    type: openai
    base_url: http://127.0.0.1:8000/v1
    api_key: k
    models: [llama-3-8b]
"""


# ------------------------------------------------------------------------------------------ interpolation


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A:-http://host:8000/v1}", {}, "http://host:8000/v1"),
        ("$A and $ {A} stay", {"A": "x"}, "$A and $ {A} stay"),
        ("${A}", {"A": "${B}"}, "${B}"),  # substituted text is not expanded again
        ("no references", {}, "no references"),
    ],
)
def test_interpolate_env(text: str, environ: dict[str, str], expected: str) -> None:
    assert interpolate_env(text, environ) == expected


def test_default_applies_to_a_set_but_empty_variable() -> None:
    # `${VAR:-default}` is the shell's (and docker compose's) syntax: with the colon, the default is used
    # when the variable is unset *or empty*. (`${VAR-default}` would be the unset-only form.)
    assert interpolate_env("${A:-fallback}", {"A": ""}) == "fallback"


@pytest.mark.parametrize("text", ["${MISSING}", "x ${MISSING} y", "${A}${MISSING}"])
def test_missing_variable_is_an_error_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match="MISSING"):
        interpolate_env(text, {"A": "a"})


def test_interpolation_in_a_config_file(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(
        tmp_path,
        """
        admin_key: ${ADMIN}
        channels:
          - name: up
            type: openai
            base_url: ${UP_URL:-http://127.0.0.1:8000/v1/}
            api_key: ${UP_KEY}
            models: ["${MODEL:-gpt-4o}", fixed]
            headers:
              X-Tenant: ${TENANT}
        """,
        {**env, "UP_KEY": "sk-from-env: # not yaml", "ADMIN": "adm-1", "TENANT": "t1"},
    )
    (channel,) = config.channels
    assert channel.api_key == "sk-from-env: # not yaml"  # substituted after parsing: no YAML re-interpretation
    assert channel.base_url == "http://127.0.0.1:8000/v1"  # default used, trailing slash removed
    assert channel.models == ("gpt-4o", "fixed")
    assert channel.headers == {"X-Tenant": "t1"}
    assert config.admin_key == "adm-1"


def test_missing_variable_in_a_config_file(tmp_path: Path, env: dict[str, str]) -> None:
    text = CHANNEL.replace("api_key: k", "api_key: ${NOT_SET_ANYWHERE}")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        load(tmp_path, text, env)


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("colour: blue\n", "colour"),
        ("channels: {}\n", "channels"),
        ("channels: [just-a-string]\n", "channels[0]"),
        (CHANNEL.replace("    api_key: k\n", "    api_key: k\n    retries: 3\n"), "retries"),
        (CHANNEL.replace("type: openai", "type: cohere"), "cohere"),
        (CHANNEL.replace("type: openai\n", ""), "type"),
        (CHANNEL.replace("  - name: local\n    type: openai", "  - type: openai"), "name"),
        (CHANNEL.replace("base_url: http://127.0.0.1:8000/v1", "base_url: 127.0.0.1:8000"), "base_url"),
        (CHANNEL.replace("models: [llama-3-8b]", "models: []"), "models"),
        (CHANNEL.replace("models: [llama-3-8b]", "models: llama-3-8b"), "models"),
        (CHANNEL.replace("models: [llama-3-8b]", "models: [llama, 3]"), "models"),
        (CHANNEL + "    model_map: [a, b]\n", "model_map"),
        (CHANNEL + "    model_map: {a: 1}\n", "model_map"),
        (CHANNEL + "    headers: [a]\n", "headers"),
        (CHANNEL + "    timeout: 5\n", "timeout"),
        (CHANNEL + "    timeout: {read: -1}\n", "read"),
        (CHANNEL + "    timeout: {connect: fast}\n", "connect"),
        (CHANNEL + "    timeout: {connect: true}\n", "connect"),
        (CHANNEL + "    timeout: {first_byte: 0}\n", "first_byte"),
        (CHANNEL + "    timeout: {idel: 5}\n", "idel"),
        (CHANNEL + "    priority: high\n", "priority"),
        (CHANNEL + "    priority: 1.5\n", "priority"),
        (CHANNEL + "    weight: 0\n", "weight"),
        (CHANNEL + "    max_parallel: 0\n", "max_parallel"),
        (CHANNEL + "    deployments: {gpt-4o: x}\n", "deployments"),  # azure channels only
        (CHANNEL + "    probe_model: ''\n", "probe_model"),
        (
            CHANNEL.replace("type: openai", "type: azure").replace("    base_url: http://127.0.0.1:8000/v1\n", ""),
            "base_url",
        ),
        (CHANNEL.replace("type: openai", "type: azure") + "    api_version: v1\n", "api_version"),
        ("routing: 3\n", "routing"),
        ("routing: {max_attempts: 0}\n", "max_attempts"),
        ("routing: {retries: 2}\n", "retries"),
        ("routing: {cooldown: 10, max_cooldown: 5}\n", "max_cooldown"),
        ("routing: {probe_interval: -1}\n", "probe_interval"),
        (CHANNEL + CHANNEL.replace("channels:\n", "").replace("llama-3-8b", "other"), "unique"),
        ("prices: [1]\n", "prices"),
        ("prices: {my-model: 1}\n", "prices"),
        ("prices: {my-model: {input: 1, colour: red}}\n", "my-model"),
        ("prices: {my-model: {input: 1, output: 1, colour: red}}\n", "colour"),
        ("prices: {my-model: {input: -1, output: 1}}\n", "negative"),
        ("default_price: 3\n", "default_price"),
        ("default_price: {max_output_tokens: 10}\n", "at least one"),
        ("server: 1\n", "server"),
        ("server: {port: 'eighty'}\n", "port"),
        ("server: {workers: 0}\n", "workers"),
        ("limits: {max_body_bytes: 0}\n", "max_body_bytes"),
        ("limits: {max_body_bytes: true}\n", "max_body_bytes"),
        ("- a\n- b\n", "mapping"),
        ("channels: [\n", "YAML"),
    ],
)
def test_config_errors(tmp_path: Path, env: dict[str, str], text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load(tmp_path, text, env)


def test_missing_file(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml", env)


def test_empty_file_is_fine(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(tmp_path, "", env)
    assert config.channels == ()
    assert config.port == 8080
    assert config.workers == 1
    assert config.max_body_bytes == 32 * 1024 * 1024
    assert config.admin_key is None
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.database_url == f"sqlite:///{(tmp_path / 'data').resolve() / 'llmrelay.db'}"


# ------------------------------------------------------------------------------------------ channels


def test_full_channel(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(
        tmp_path,
        """
        channels:
          - name: vllm
            type: openai
            base_url: https://vllm.internal/v1///
            api_key: ""
            models: [llama-3-8b, "mistral-*"]
            model_map: {fast: llama-3-8b}
            headers: {X-Api-Version: 2}
            timeout: {connect: 2, read: 60.5}
        server: {host: 0.0.0.0, port: 9000, workers: 4, access_log: true}
        limits: {max_body_bytes: 1024}
        """,
        env,
    )
    assert config.channels == (
        ChannelConfig(
            name="vllm",
            type="openai",
            base_url="https://vllm.internal/v1",
            api_key="",
            models=("llama-3-8b", "mistral-*"),
            model_map={"fast": "llama-3-8b"},
            connect_timeout=2.0,
            first_byte_timeout=60.5,
            idle_timeout=60.5,
            headers={"X-Api-Version": "2"},
        ),
    )
    assert (config.host, config.port, config.workers, config.access_log) == ("0.0.0.0", 9000, 4, True)
    assert config.max_body_bytes == 1024


def test_api_key_is_not_in_the_repr(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(tmp_path, CHANNEL.replace("api_key: k", "api_key: sk-very-secret-value"), env)
    assert "sk-very-secret-value" not in repr(config)
    assert config.channels[0].api_key == "sk-very-secret-value"


def test_automatic_openai_channel(env: dict[str, str]) -> None:
    config = load_config(None, {**env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://proxy.local:9/v1/"})
    (channel,) = config.channels
    assert channel.name == "openai"
    assert channel.type == "openai"
    assert channel.api_key == "sk-test"
    assert channel.base_url == "http://proxy.local:9/v1"
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-3.5-turbo", "o1-mini"} <= set(channel.models)
    assert not any(m.startswith(("claude", "gemini")) for m in channel.models)
    assert all(config.prices.lookup(m) is not None for m in channel.models)


def test_automatic_channel_defaults_to_openai(env: dict[str, str]) -> None:
    (channel,) = load_config(None, {**env, "OPENAI_API_KEY": "sk-test"}).channels
    assert channel.base_url == "https://api.openai.com/v1"
    (same,) = load_config(None, {**env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": ""}).channels
    assert same.base_url == "https://api.openai.com/v1"


def test_automatic_anthropic_channel_beside_openai(env: dict[str, str]) -> None:
    config = load_config(None, {**env, "OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-ant-a"})
    openai_channel, claude = config.channels
    assert (openai_channel.type, claude.type, claude.name) == ("openai", "anthropic", "anthropic")
    assert claude.api_key == "sk-ant-a" and claude.base_url == "https://api.anthropic.com"
    assert {"claude-sonnet-4-5", "claude-3-5-haiku-latest", "claude-opus-4-6"} <= set(claude.models)
    assert all(m.startswith("claude-") for m in claude.models)
    assert all(config.prices.lookup(m).cache_write > config.prices.lookup(m).input for m in claude.models)
    (moved,) = load_config(None, {**env, "ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://c.local/"}).channels
    assert moved.base_url == "http://c.local"


def test_a_channels_base_url_defaults_by_type(tmp_path: Path, env: dict[str, str]) -> None:
    text = "channels:\n  - {name: c, type: anthropic, api_key: k, models: [claude-haiku-4-5]}\n"
    (channel,) = load(tmp_path, text, env).channels
    assert channel.base_url == "https://api.anthropic.com"


def test_image_fetch_settings(tmp_path: Path, env: dict[str, str]) -> None:
    assert load(tmp_path, "", env).image_fetch.allow_private_addresses is False
    fetch = load(
        tmp_path, "image_fetch: {allow_private_addresses: true, max_bytes: 1000, timeout: 2}\n", env
    ).image_fetch
    assert (fetch.allow_private_addresses, fetch.max_bytes, fetch.timeout) == (True, 1000, 2.0)
    for bad in (
        "image_fetch: {allow_private_addresses: yes please}\n",
        "image_fetch: {retries: 1}\n",
        "image_fetch: 5\n",
    ):
        with pytest.raises(ConfigError, match="image_fetch"):
            load(tmp_path, bad, env)


def test_gemini_channels_take_an_api_version(tmp_path: Path, env: dict[str, str]) -> None:
    text = "channels:\n  - {name: g, type: gemini, api_key: k, models: [gemini-2.0-flash], api_version: v1}\n"
    (channel,) = load(tmp_path, text, env).channels
    assert (channel.base_url, channel.api_version) == ("https://generativelanguage.googleapis.com", "v1")
    with pytest.raises(ConfigError, match="api_version"):
        load(tmp_path, text.replace("api_version: v1", "api_version: latest"), env)
    with pytest.raises(ConfigError, match="api_version"):
        load(tmp_path, text.replace("type: gemini", "type: openai"), env)
    (google,) = load_config(None, {**env, "GOOGLE_API_KEY": "AIza-g"}).channels
    assert (google.type, google.api_key, google.api_version) == ("gemini", "AIza-g", "v1beta")
    assert "gemini-2.5-flash" in google.models


def test_no_key_no_channel(env: dict[str, str]) -> None:
    assert load_config(None, env).channels == ()
    assert load_config(None, {**env, "OPENAI_API_KEY": ""}).channels == ()


def test_explicit_channels_replace_the_automatic_one(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(tmp_path, CHANNEL, {**env, "OPENAI_API_KEY": "sk-test"})
    assert [c.name for c in config.channels] == ["local"]


def test_config_path_from_environment(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, CHANNEL)
    config = load_config(None, {**env, "LLMRELAY_CONFIG": str(path)})
    assert [c.name for c in config.channels] == ["local"]


def test_environment_overrides_file_for_admin_key_and_database(tmp_path: Path, env: dict[str, str]) -> None:
    text = "admin_key: from-file\ndatabase_url: sqlite:///file.db\n"
    from_file = load(tmp_path, text, env)
    assert (from_file.admin_key, from_file.database_url) == ("from-file", "sqlite:///file.db")
    overridden = load(
        tmp_path, text, {**env, "LLMRELAY_ADMIN_KEY": "from-env", "LLMRELAY_DATABASE_URL": "postgresql://db/x"}
    )
    assert (overridden.admin_key, overridden.database_url) == ("from-env", "postgresql://db/x")


# ------------------------------------------------------------------------------------------ prices


def test_prices_override_builtins_and_add_patterns(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(
        tmp_path,
        """
        prices:
          gpt-4o: {input: 5, output: 20, cached_input: 2.5}
          "llama-*": {input: 0.1, output: 0.2, max_output_tokens: 2048}
          flat: {input: 0, output: 0, per_request: 0.002}
        default_price: {input: "1", output: "2"}
        """,
        env,
    )
    gpt4o = config.prices.lookup("gpt-4o")
    assert gpt4o is not None
    assert gpt4o.cost_nano(Usage(1_000_000, 1_000_000, 1_000_000)) == 22_500_000_000
    llama = config.prices.lookup("llama-3-8b")
    assert llama is not None and llama.max_output_tokens == 2048
    assert llama.cost_nano(Usage(1_000_000, 1_000_000)) == 300_000_000
    flat = config.prices.lookup("flat")
    assert flat is not None and flat.cost_nano(Usage(123, 456)) == 2_000_000
    fallback = config.prices.lookup("some-unknown-model")
    assert fallback is not None and fallback.cost_nano(Usage(1_000_000, 1_000_000)) == 3_000_000_000
    mini = config.prices.lookup("gpt-4o-mini")
    assert mini is not None and mini.cost_nano(Usage(1_000_000, 0)) == 150_000_000  # built-in untouched


def test_no_default_price_means_unknown_models_are_unpriced(env: dict[str, str]) -> None:
    assert load_config(None, env).prices.lookup("some-unknown-model") is None


# ------------------------------------------------------------------------------------------ routing


def channel(name: str, models: tuple[str, ...], model_map: dict[str, str] | None = None) -> Channel:
    config = ChannelConfig(
        name=name, type="openai", base_url=f"http://{name}/v1", api_key="", models=models, model_map=model_map or {}
    )
    return Channel(config, OpenAICompatibleProvider())


A = channel("a", ("gpt-4o", "gpt-4*", "shared"))
B = channel("b", ("gpt-4o-mini", "claude-*", "shared"), {"gpt-4-fast": "gpt-4o-mini", "sonnet": "claude-3-5-sonnet"})
C = channel("c", ("*",))


@pytest.mark.parametrize(
    ("model", "channel_name", "upstream"),
    [
        ("gpt-4o", "a", "gpt-4o"),
        ("gpt-4o-mini", "b", "gpt-4o-mini"),  # B's exact name beats A's earlier pattern
        ("gpt-4-fast", "b", "gpt-4o-mini"),  # a model_map name is an exact name, and is mapped
        ("sonnet", "b", "claude-3-5-sonnet"),
        ("gpt-4-turbo", "a", "gpt-4-turbo"),  # pattern, no mapping
        ("claude-3-opus", "b", "claude-3-opus"),
        ("shared", "a", "shared"),  # the same exact name in two channels: the first channel wins
        ("llama-3", "c", "llama-3"),  # catch-all last
    ],
)
def test_router_resolves(model: str, channel_name: str, upstream: str) -> None:
    router = Router([A, B, C])
    candidates = router.candidates(model)
    assert candidates is not None
    route = candidates.first
    assert route.channel.config.name == channel_name
    assert route.upstream_model == upstream
    assert router.candidates(model) is candidates  # cached


def test_router_unknown_model() -> None:
    router = Router([A, B])
    assert router.candidates("llama-3") is None
    assert router.candidates("gpt-") is None


def test_router_patterns_in_channel_order() -> None:
    first = channel("first", ("gpt-*",))
    second = channel("second", ("gpt-4*",))
    candidates = Router([first, second]).candidates("gpt-4o")
    assert candidates is not None and candidates.first.channel.config.name == "first"
    # Both serve it (one tier): the second is there for failover.
    assert [route.channel.config.name for route in candidates.tiers[0][0]] == ["first", "second"]


def test_listed_models_are_concrete_and_deduplicated() -> None:
    listed = Router([A, B, C]).listed_models()
    names = [name for name, _ in listed]
    assert names == ["gpt-4o", "shared", "gpt-4o-mini", "gpt-4-fast", "sonnet"]
    assert {n: c.config.name for n, c in listed}["shared"] == "a"


@pytest.mark.parametrize(
    ("names", "model", "matches"),
    [
        (["gpt-4o"], "gpt-4o", True),
        (["gpt-4o"], "gpt-4o-mini", False),
        (["gpt-4o*"], "gpt-4o-mini", True),
        (["gpt-4o*"], "GPT-4O", False),  # case-sensitive, like the upstream model ids
        (["llama-3-?b"], "llama-3-8b", True),
        (["llama-3-?b"], "llama-3-70b", False),
        (["mistral-[sm]*"], "mistral-small", True),
        (["mistral-[sm]*"], "mistral-large", False),
        ([], "anything", False),
    ],
)
def test_model_patterns(names: list[str], model: str, matches: bool) -> None:
    assert ModelPatterns(names).matches(model) is matches


@pytest.mark.parametrize(("name", "pattern"), [("gpt-4o", False), ("gpt-*", True), ("a?", True), ("[ab]", True)])
def test_is_pattern(name: str, pattern: bool) -> None:
    assert is_pattern(name) is pattern


def test_the_readme_config_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("A config file is YAML. Every option:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "llmrelay.yaml"
    path.write_text(example)
    config = load_config(path, {"OPENAI_API_KEY": "sk-from-env", "LLMRELAY_ADMIN_KEY": "admin"})
    assert [c.name for c in config.channels] == ["openai", "local-vllm", "claude", "gemini"]
    assert (config.channels[3].type, config.channels[3].api_version) == ("gemini", "v1beta")
    assert config.image_fetch.allow_private_addresses is False and config.image_fetch.max_bytes == 20971520
    assert config.channels[0].api_key == "sk-from-env" and config.channels[0].model_map == {"gpt-4": "gpt-4o"}
    claude = config.channels[2]
    assert (claude.type, claude.base_url, claude.api_key) == ("anthropic", "https://api.anthropic.com", "")
    assert config.prices.lookup("claude-sonnet-4-5").cache_write == Decimal("3750")
    assert config.prices.lookup("gpt-4-gizmo-g-abc") is not None
    assert config.prices.lookup("my-image-model").image_price("1024x1024/hd") == Decimal("80000000")
    assert config.prices.lookup("never-heard-of-it") is not None  # default_price
    assert config.max_body_bytes == 33554432 and config.admin_key == "admin"


def test_the_routing_page_config_loads_as_documented(tmp_path: Path, env: dict[str, str]) -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "routing.md").read_text()
    text = re.search(r"```yaml\n(.*?)```", page, re.S).group(1)  # type: ignore[union-attr]
    keys = {"OPENAI_API_KEY": "sk-1", "OPENAI_API_KEY_2": "sk-2", "AZURE_OPENAI_API_KEY": "az-3"}
    config = load_config(write(tmp_path, text), {**env, **keys})
    main, second, backup = config.channels
    assert [(c.priority, c.weight) for c in config.channels] == [(10, 3), (10, 1), (0, 1)]
    assert (main.max_parallel, main.connect_timeout, main.first_byte_timeout, main.idle_timeout) == (200, 5, 60, 30)
    assert (backup.type, backup.deployments["gpt-4o"], backup.probed_model()) == ("azure", "gpt4o-prod", "gpt-4o-mini")
    assert second.probed_model() == "gpt-4o"
    assert (config.routing.max_attempts, config.routing.probe_interval) == (3, 60)


def test_read_sets_first_byte_and_idle_and_routing_defaults(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_config(write(tmp_path, CHANNEL + "    timeout: {read: 7}\n"), env)
    channel = config.channels[0]
    assert (channel.first_byte_timeout, channel.idle_timeout, channel.priority, channel.weight) == (7, 7, 0, 1)
    assert channel.max_parallel is None
    assert (config.routing.max_attempts, config.routing.probe_interval) == (3, None)

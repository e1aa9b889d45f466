"""Gateway configuration: an optional YAML file, environment variables, and safe defaults.

With no file at all, provider keys in the environment are enough: OPENAI_API_KEY creates an `openai` channel
serving the built-in OpenAI models, ANTHROPIC_API_KEY an `anthropic` channel serving the built-in Claude
models, GEMINI_API_KEY (or GOOGLE_API_KEY) a `gemini` channel serving the built-in Gemini models
(OPENAI_BASE_URL / ANTHROPIC_BASE_URL / GEMINI_BASE_URL point them elsewhere).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from llmrelay.metering.money import MoneyError
from llmrelay.metering.pricing import CLAUDE_MODELS, GEMINI_MODELS, OPENAI_MODELS, PriceTable, build_price_table
from llmrelay.store.db import default_database_url

# Channel types and their default base URLs, as each provider's official SDK takes them.
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
DEFAULT_GEMINI_API_VERSION = "v1beta"  # the version every Gemini-compatible server serves
DEFAULT_AZURE_API_VERSION = "2024-10-21"  # Azure OpenAI's current GA data-plane version
# Azure OpenAI has no default: its base URL is the operator's own resource (https://NAME.openai.azure.com).
# A mock channel has no upstream at all: the gateway answers it itself (providers/mock.py).
CHANNEL_TYPES = (*DEFAULT_BASE_URLS, "azure", "mock")
MOCK_FORMATS = ("openai", "anthropic", "gemini")  # the wire formats a mock channel can present
# Where a mock channel points until the gateway starts its mock server and binds the channel to it; `.invalid`
# never resolves, so a tool that calls an unbound mock channel gets a clear "unreachable", not a stranger.
MOCK_BASE_URL = "http://llmrelay-mock.invalid"
DEFAULT_RESPONSE_RETENTION = 30 * 86_400  # seconds a stored response stays readable (stored_responses)
MAX_PORT = 65535
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the offending setting."""


@dataclass(frozen=True, slots=True)
class MockOptions:
    """How a `type: mock` channel answers (see docs/mock.md)."""

    format: str = "openai"  # the wire format it presents: openai, anthropic or gemini
    latency: float = 0.0  # seconds before a reply (a stream's headers) begins
    token_interval: float = 0.0  # seconds between stream events (0: the whole stream in one write)
    reply_tokens: int = 16  # words in a text reply
    failure_rate: float = 0.0  # share of requests answered with the format's overloaded error
    seed: int | None = None  # makes the sequence of failures reproducible


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    type: str
    base_url: str
    api_key: str = field(repr=False)
    models: tuple[str, ...]
    model_map: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    first_byte_timeout: float = 300.0  # from sending the request to the reply's headers (a stream: first event)
    idle_timeout: float = 300.0  # the longest silence while a reply is arriving
    headers: dict[str, str] = field(default_factory=dict)
    api_version: str = DEFAULT_GEMINI_API_VERSION  # gemini and azure channels: the version the gateway calls
    priority: int = 0  # higher tiers are tried first
    weight: int = 1  # share of the traffic within its tier
    max_parallel: int | None = None  # requests in flight on this channel at most (None: no cap)
    deployments: dict[str, str] = field(default_factory=dict)  # azure: model -> deployment name
    probe_model: str | None = None  # the model `channels test` and the probe ask (None: the first listed)
    # openai and azure channels: the upstream serves OpenAI's Responses API, so /v1/responses is forwarded as
    # sent (otherwise it is translated to chat completions)
    responses: bool = True
    mock: MockOptions | None = None  # set on `type: mock` channels only

    def probed_model(self) -> str | None:
        """The model a health check asks for: `probe_model`, else the first concrete model the channel serves."""
        if self.probe_model:
            return self.probe_model
        return next((m for m in [*self.models, *self.model_map] if not any(c in m for c in "*?[")), None)


@dataclass(frozen=True, slots=True)
class ImageFetchConfig:
    """How the gateway fetches image URLs for upstreams that need images inline (Gemini)."""

    allow_private_addresses: bool = False  # loopback, private, link-local and reserved addresses are refused
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 10.0


_IMAGE_FETCH_DEFAULTS = ImageFetchConfig()


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Failover between the channels of a model, and when a failing channel is rested."""

    max_attempts: int = 3  # channels one request may try before the client gets the last error
    failures_to_cool_down: int = 3  # consecutive failures of a channel for a model before it rests
    cooldown: float = 5.0  # seconds of the first rest; each rest in a row doubles it
    max_cooldown: float = 300.0  # the longest rest (also the most of an upstream's Retry-After honoured)
    probe_interval: float | None = None  # seconds between health probes of disabled channels (None: off)


_ROUTING_DEFAULTS = RoutingConfig()


@dataclass(frozen=True, slots=True)
class Config:
    channels: tuple[ChannelConfig, ...]
    prices: PriceTable
    database_url: str
    data_dir: Path
    admin_key: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 32 * 1024 * 1024
    body_timeout: float = 60.0  # seconds for a request body to arrive in full; then 408
    request_timeout: float = 3600.0  # seconds a whole request may take, stream included; then 504
    key_refresh_seconds: float = 0.5
    usage_flush_seconds: float = 0.2
    access_log: bool = False
    log_format: str = "text"  # or "json": one JSON object a line (server.log_format, LLMRELAY_LOG_FORMAT)
    image_fetch: ImageFetchConfig = field(default_factory=ImageFetchConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    # How long the gateway keeps responses of translated models for `previous_response_id` (seconds).
    response_retention: int = DEFAULT_RESPONSE_RETENTION


def interpolate_env(value: str, environ: dict[str, str] | os._Environ[str]) -> str:
    """Replace ${VAR} and ${VAR:-default}; an unset variable without a default is an error."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if default is not None:  # ${VAR:-default}: as in the shell, an empty value also takes the default
            return environ.get(name) or default
        if name in environ:
            return environ[name]
        raise ConfigError(f"environment variable {name} is not set (referenced as ${{{name}}})")

    return _ENV_REFERENCE.sub(substitute, value)


def _interpolate_tree(node: object, environ: dict[str, str] | os._Environ[str]) -> object:
    if isinstance(node, str):
        return interpolate_env(node, environ)
    if isinstance(node, list):
        return [_interpolate_tree(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, environ) for key, value in node.items()}
    return node


def _require(mapping: dict[str, object], key: str, where: str, kind: type) -> object:
    value = mapping.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"{where}: '{key}' is required and must be a {kind.__name__}")
    return value


def _numeric(value: object) -> float:
    """A setting's value as a number: text is accepted too, since ${VAR} interpolation always yields text.
    NaN for what is no number (a boolean, words), so that every range check refuses it."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value) if isinstance(value, int | float) else float(str(value).strip())
    except ValueError:
        return math.nan


def _number(mapping: dict[str, object], key: str, default: float, where: str) -> float:
    """A positive, finite number."""
    number = _numeric(mapping.get(key, default))
    if not (number > 0 and math.isfinite(number)):
        raise ConfigError(f"{where}: '{key}' must be a positive number")
    return number


def _integer(mapping: dict[str, object], key: str, default: int, where: str, minimum: int) -> int:
    """A whole number of at least `minimum` (10.0 and "10" included)."""
    number = _numeric(mapping.get(key, default))
    if not (math.isfinite(number) and number.is_integer() and number >= minimum):
        raise ConfigError(f"{where}: '{key}' must be a whole number of at least {minimum}")
    return int(number)


def _port(server: dict[str, object]) -> int:
    """server.port: 1 to 65535 (0 would listen on a random port, and the socket layer refuses larger ones)."""
    try:
        port = _integer(server, "port", 8080, "server", 1)
    except ConfigError:
        port = 0
    if not 1 <= port <= MAX_PORT:
        raise ConfigError(f"server: 'port' must be a whole number from 1 to {MAX_PORT}, not {server.get('port')!r}")
    return port


def _string_map(raw: dict[str, object], key: str, where: str, meaning: str) -> dict[str, str]:
    value = raw.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{where}: '{key}' {meaning}")
    return dict(value)


_CHANNEL_OPTIONS = {
    "name",
    "type",
    "base_url",
    "api_key",
    "models",
    "model_map",
    "headers",
    "timeout",
    "priority",
    "weight",
    "max_parallel",
    "probe_model",
}
_TYPE_OPTIONS = {
    "openai": {"responses"},
    "gemini": {"api_version"},
    "azure": {"api_version", "deployments", "responses"},
    "mock": {"format", "mock"},
}
_MOCK_OPTIONS = ("latency", "token_interval", "reply_tokens", "failure_rate", "seed")


def _api_version(raw: dict[str, object], kind: str, where: str) -> str:
    if kind == "azure":
        version = str(raw.get("api_version") or DEFAULT_AZURE_API_VERSION).strip()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(?:-preview)?", version):
            raise ConfigError(f"{where}: api_version is an Azure OpenAI API version such as 2024-10-21")
        return version
    version = str(raw.get("api_version") or DEFAULT_GEMINI_API_VERSION).strip("/")
    if not re.fullmatch(r"v\d+(?:alpha|beta)?\d*", version):
        raise ConfigError(f"{where}: api_version is a Gemini API version such as v1beta or v1")
    return version


def _bounded(mapping: dict[str, object], key: str, default: float, where: str, high: float = math.inf) -> float:
    """A finite number from 0 to `high`."""
    number = _numeric(mapping.get(key, default))
    if not (0 <= number <= high and math.isfinite(number)):
        span = "from 0 to 1" if high == 1 else "of seconds, 0 or more"
        raise ConfigError(f"{where}: '{key}' must be a number {span}")
    return number


def _mock_options(raw: dict[str, object], where: str) -> MockOptions:
    """A mock channel's `format` and `mock:` options (docs/mock.md); it must not name an upstream."""
    if "base_url" in raw:
        raise ConfigError(f"{where}: a mock channel has no base_url (the gateway answers it itself); remove it")
    kind = raw.get("format", "openai")
    if kind not in MOCK_FORMATS:
        raise ConfigError(f"{where}: 'format' must be one of {', '.join(MOCK_FORMATS)}, not {kind!r}")
    options = raw.get("mock") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: 'mock' is a mapping with {', '.join(_MOCK_OPTIONS)}")
    unknown = set(options) - set(_MOCK_OPTIONS)
    if unknown:
        raise ConfigError(f"{where}: unknown mock option(s) {', '.join(sorted(map(str, unknown)))}")
    where = f"{where}, mock"
    seed = options.get("seed")
    return MockOptions(
        format=str(kind),
        latency=_bounded(options, "latency", 0.0, where),
        token_interval=_bounded(options, "token_interval", 0.0, where),
        reply_tokens=_integer(options, "reply_tokens", 16, where, 1),
        failure_rate=_bounded(options, "failure_rate", 0.0, where, 1.0),
        seed=None if seed is None else _integer(options, "seed", 0, where, 0),
    )


def _timeouts(raw: dict[str, object], where: str) -> tuple[float, float, float]:
    """(connect, first byte, idle) seconds; `read` (the older name) sets both first byte and idle."""
    timeout = raw.get("timeout") or {}
    if not isinstance(timeout, dict):
        raise ConfigError(f"{where}: 'timeout' is a mapping with connect, first_byte and idle seconds")
    unknown = set(timeout) - {"connect", "first_byte", "idle", "read"}
    if unknown:
        raise ConfigError(f"{where}: unknown timeout option(s) {', '.join(sorted(unknown))}")
    read = _number(timeout, "read", 300.0, where)
    return (
        _number(timeout, "connect", 10.0, where),
        _number(timeout, "first_byte", read, where),
        _number(timeout, "idle", read, where),
    )


def _parse_channel(raw: object, index: int) -> ChannelConfig:
    where = f"channels[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a channel is a mapping with name, type, base_url, api_key, models")
    name = str(_require(raw, "name", where, str))
    where = f"channel {name!r}"
    kind = str(_require(raw, "type", where, str))
    if kind not in CHANNEL_TYPES:
        raise ConfigError(f"{where}: type {kind!r} is not supported (supported: {', '.join(CHANNEL_TYPES)})")
    unknown = set(raw) - _CHANNEL_OPTIONS - _TYPE_OPTIONS.get(kind, set())
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    mock = _mock_options(raw, where) if kind == "mock" else None
    if kind == "azure" and not raw.get("base_url"):
        raise ConfigError(f"{where}: base_url is required (your resource's endpoint, https://NAME.openai.azure.com)")
    base_url = MOCK_BASE_URL if mock else str(raw.get("base_url") or DEFAULT_BASE_URLS[kind]).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: base_url must start with http:// or https://")
    models = _require(raw, "models", where, list)
    if not models or not all(isinstance(m, str) and m for m in models):  # type: ignore[union-attr]
        raise ConfigError(f"{where}: 'models' must be a non-empty list of model names or glob patterns")
    model_map = _string_map(raw, "model_map", where, "maps model names to upstream model names")
    deployments = _string_map(raw, "deployments", where, "maps model names to Azure deployment names")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}: 'headers' is a mapping of header names to values")
    connect, first_byte, idle = _timeouts(raw, where)
    max_parallel = raw.get("max_parallel")
    probe_model = raw.get("probe_model")
    # Azure serves the Responses API under other paths than its deployments': always translated there.
    responses = raw.get("responses", kind == "openai")
    if not isinstance(responses, bool):
        raise ConfigError(f"{where}: 'responses' must be true or false")
    if probe_model is not None and (not isinstance(probe_model, str) or not probe_model.strip()):
        raise ConfigError(f"{where}: 'probe_model' is a model name")
    return ChannelConfig(
        name=name,
        type=kind,
        base_url=base_url,
        api_key=str(raw.get("api_key") or ""),
        models=tuple(models),  # type: ignore[arg-type]
        model_map=model_map,
        connect_timeout=connect,
        first_byte_timeout=first_byte,
        idle_timeout=idle,
        headers={str(k): str(v) for k, v in headers.items()},
        api_version=_api_version(raw, kind, where),
        priority=_integer(raw, "priority", 0, where, -1_000_000),
        weight=_integer(raw, "weight", 1, where, 1),
        max_parallel=None if max_parallel is None else _integer(raw, "max_parallel", 1, where, 1),
        deployments=deployments,
        probe_model=probe_model,
        responses=responses,
        mock=mock,
    )


def _response_retention(raw: object) -> int:
    if raw is None:
        return DEFAULT_RESPONSE_RETENTION
    if not isinstance(raw, dict) or set(raw) - {"retention_days"}:
        raise ConfigError("'stored_responses' is a mapping with retention_days")
    return int(_number(raw, "retention_days", 30, "stored_responses") * 86_400)


def _log_format(value: object) -> str:
    if value not in ("text", "json"):
        raise ConfigError(f"server: 'log_format' is text or json, not {value!r}")
    return str(value)


def _routing(raw: object) -> RoutingConfig:
    if raw is None:
        return RoutingConfig()
    if not isinstance(raw, dict):
        raise ConfigError(
            "'routing' is a mapping with max_attempts, failures_to_cool_down, cooldown, max_cooldown, probe_interval"
        )
    unknown = set(raw) - {"max_attempts", "failures_to_cool_down", "cooldown", "max_cooldown", "probe_interval"}
    if unknown:
        raise ConfigError(f"routing: unknown option(s) {', '.join(sorted(unknown))}")
    defaults = _ROUTING_DEFAULTS
    cooldown = _number(raw, "cooldown", defaults.cooldown, "routing")
    max_cooldown = _number(raw, "max_cooldown", max(defaults.max_cooldown, cooldown), "routing")
    if max_cooldown < cooldown:
        raise ConfigError("routing: 'max_cooldown' must be at least 'cooldown'")
    probe = raw.get("probe_interval")
    return RoutingConfig(
        max_attempts=_integer(raw, "max_attempts", defaults.max_attempts, "routing", 1),
        failures_to_cool_down=_integer(raw, "failures_to_cool_down", defaults.failures_to_cool_down, "routing", 1),
        cooldown=cooldown,
        max_cooldown=max_cooldown,
        probe_interval=None if probe in (None, 0, "0", False) else _number(raw, "probe_interval", 60.0, "routing"),
    )


# Provider keys that create a channel on their own: (channel type, key variables in order of preference,
# base URL variable, models).
_AUTOMATIC_CHANNELS = (
    ("openai", ("OPENAI_API_KEY",), "OPENAI_BASE_URL", OPENAI_MODELS),
    ("anthropic", ("ANTHROPIC_API_KEY",), "ANTHROPIC_BASE_URL", CLAUDE_MODELS),
    ("gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "GEMINI_BASE_URL", GEMINI_MODELS),
)


def _automatic_channels(environ: dict[str, str] | os._Environ[str]) -> list[ChannelConfig]:
    channels = []
    for kind, key_variables, base_url_variable, models in _AUTOMATIC_CHANNELS:
        api_key = next((environ[v] for v in key_variables if environ.get(v)), None)
        if api_key:
            base_url = (environ.get(base_url_variable) or DEFAULT_BASE_URLS[kind]).rstrip("/")
            channels.append(ChannelConfig(name=kind, type=kind, base_url=base_url, api_key=api_key, models=models))
    return channels


def _image_fetch(raw: object) -> ImageFetchConfig:
    if raw is None:
        return ImageFetchConfig()
    if not isinstance(raw, dict):
        raise ConfigError("'image_fetch' is a mapping with allow_private_addresses, max_bytes and timeout")
    unknown = set(raw) - {"allow_private_addresses", "max_bytes", "timeout"}
    if unknown:
        raise ConfigError(f"image_fetch: unknown option(s) {', '.join(sorted(unknown))}")
    allow = raw.get("allow_private_addresses", False)
    if not isinstance(allow, bool):
        raise ConfigError("image_fetch: 'allow_private_addresses' must be true or false")
    return ImageFetchConfig(
        allow_private_addresses=allow,
        max_bytes=_integer(raw, "max_bytes", _IMAGE_FETCH_DEFAULTS.max_bytes, "image_fetch", 1),
        timeout=_number(raw, "timeout", _IMAGE_FETCH_DEFAULTS.timeout, "image_fetch"),
    )


def _read_yaml(path: str | os.PathLike[str] | None) -> dict[str, object]:
    if not path:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded or {}


def default_data_dir() -> Path:
    """Where an installed llmrelay keeps its data unless told otherwise: the platform's per-user data directory
    (~/.local/share/llmrelay on Linux), so that every command finds the same database whatever the current
    directory. (bin/llmrelay sets LLMRELAY_DATA_DIR to the checkout's data/ instead.)"""
    import platformdirs  # here: only the CLI and a starting gateway need it, not the hot path

    return Path(platformdirs.user_data_dir("llmrelay", appauthor=False))


def _storage(raw: dict[str, object], environ: dict[str, str] | os._Environ[str]) -> tuple[str, Path]:
    data_dir = Path(str(raw.get("data_dir") or environ.get("LLMRELAY_DATA_DIR") or default_data_dir())).resolve()
    database_url = str(
        environ.get("LLMRELAY_DATABASE_URL") or raw.get("database_url") or default_database_url(data_dir)
    )
    return database_url, data_dir


def load_storage_settings(
    path: str | os.PathLike[str] | None = None, environ: dict[str, str] | os._Environ[str] | None = None
) -> tuple[str, Path]:
    """Only the database URL and data directory: what the CLI needs, without requiring provider keys."""
    environ = os.environ if environ is None else environ
    raw = _read_yaml(path or environ.get("LLMRELAY_CONFIG") or None)
    subset = {k: raw[k] for k in ("database_url", "data_dir") if k in raw}
    return _storage(_interpolate_tree(subset, environ), environ)  # type: ignore[arg-type]


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | os._Environ[str] | None = None,
) -> Config:
    """Read the YAML file (if any) named by `path` or LLMRELAY_CONFIG, over environment defaults."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("LLMRELAY_CONFIG") or None
    return parse_config(_read_yaml(path), environ)


def parse_config(document: dict[str, object], environ: dict[str, str] | os._Environ[str] | None = None) -> Config:
    """A config from a YAML document already in memory (the demo's, providers/mock.py), checked and completed
    exactly as a config file is."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = _interpolate_tree(document, environ)  # type: ignore[assignment]
    known = {
        "channels",
        "prices",
        "default_price",
        "database_url",
        "data_dir",
        "admin_key",
        "server",
        "limits",
        "image_fetch",
        "routing",
        "stored_responses",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown top-level option(s): {', '.join(sorted(unknown))}")

    channels_raw = raw.get("channels")
    if channels_raw is None:
        channels = _automatic_channels(environ)
    elif isinstance(channels_raw, list):
        channels = [_parse_channel(item, i) for i, item in enumerate(channels_raw)]
    else:
        raise ConfigError("'channels' must be a list")
    names = [c.name for c in channels]
    if len(names) != len(set(names)):
        raise ConfigError("channel names must be unique")

    prices_raw = raw.get("prices") or {}
    default_raw = raw.get("default_price")
    if not isinstance(prices_raw, dict) or not all(isinstance(v, dict) for v in prices_raw.values()):
        raise ConfigError("'prices' maps model names (or globs) to {input, output, ...} in USD per 1M tokens")
    if default_raw is not None and not isinstance(default_raw, dict):
        raise ConfigError("'default_price' is {input, output, ...} in USD per 1M tokens")
    try:
        prices = build_price_table(prices_raw, default_raw)
    except MoneyError as exc:
        raise ConfigError(str(exc)) from exc

    server = raw.get("server") or {}
    limits = raw.get("limits") or {}
    if not isinstance(server, dict) or not isinstance(limits, dict):
        raise ConfigError("'server' and 'limits' are mappings")
    database_url, data_dir = _storage(raw, environ)
    admin_key = environ.get("LLMRELAY_ADMIN_KEY") or raw.get("admin_key") or None
    max_body = _integer(limits, "max_body_bytes", 32 * 1024 * 1024, "limits", 1)
    body_timeout = _number(limits, "body_timeout", 60.0, "limits")
    request_timeout = _number(limits, "request_timeout", 3600.0, "limits")
    port = _port(server)
    workers = _integer(server, "workers", 1, "server", 1)
    return Config(
        channels=tuple(channels),
        prices=prices,
        database_url=database_url,
        data_dir=data_dir,
        admin_key=str(admin_key) if admin_key else None,
        host=str(server.get("host", "127.0.0.1")),
        port=port,
        workers=workers,
        max_body_bytes=max_body,
        body_timeout=body_timeout,
        request_timeout=request_timeout,
        access_log=bool(server.get("access_log", False)),
        log_format=_log_format(environ.get("LLMRELAY_LOG_FORMAT") or server.get("log_format") or "text"),
        image_fetch=_image_fetch(raw.get("image_fetch")),
        routing=_routing(raw.get("routing")),
        response_retention=_response_retention(raw.get("stored_responses")),
    )

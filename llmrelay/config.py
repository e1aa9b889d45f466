"""Gateway configuration: an optional YAML file, environment variables, and safe defaults.

With no file at all, provider keys in the environment are enough: OPENAI_API_KEY creates an `openai` channel
serving the built-in OpenAI models, ANTHROPIC_API_KEY an `anthropic` channel serving the built-in Claude
models, GEMINI_API_KEY (or GOOGLE_API_KEY) a `gemini` channel serving the built-in Gemini models
(OPENAI_BASE_URL / ANTHROPIC_BASE_URL / GEMINI_BASE_URL point them elsewhere).
"""

from __future__ import annotations

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
CHANNEL_TYPES = tuple(DEFAULT_BASE_URLS)
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the offending setting."""


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    type: str
    base_url: str
    api_key: str = field(repr=False)
    models: tuple[str, ...]
    model_map: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    headers: dict[str, str] = field(default_factory=dict)
    api_version: str = DEFAULT_GEMINI_API_VERSION  # gemini channels: the version the gateway calls


@dataclass(frozen=True, slots=True)
class ImageFetchConfig:
    """How the gateway fetches image URLs for upstreams that need images inline (Gemini)."""

    allow_private_addresses: bool = False  # loopback, private, link-local and reserved addresses are refused
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 10.0


_IMAGE_FETCH_DEFAULTS = ImageFetchConfig()


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
    image_fetch: ImageFetchConfig = field(default_factory=ImageFetchConfig)


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


def _number(mapping: dict[str, object], key: str, default: float, where: str, kind: type = float) -> float:
    """A positive number; text is accepted too, since ${VAR} interpolation always yields text."""
    value = mapping.get(key, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value) if isinstance(value, int | float) else kind(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0 or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{where}: '{key}' must be a positive {'integer' if kind is int else 'number'}")
    return number


def _parse_channel(raw: object, index: int) -> ChannelConfig:
    where = f"channels[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a channel is a mapping with name, type, base_url, api_key, models")
    name = str(_require(raw, "name", where, str))
    where = f"channel {name!r}"
    kind = str(_require(raw, "type", where, str))
    if kind not in CHANNEL_TYPES:
        raise ConfigError(f"{where}: type {kind!r} is not supported (supported: {', '.join(CHANNEL_TYPES)})")
    base_url = str(raw.get("base_url") or DEFAULT_BASE_URLS[kind]).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: base_url must start with http:// or https://")
    models = _require(raw, "models", where, list)
    if not models or not all(isinstance(m, str) and m for m in models):  # type: ignore[union-attr]
        raise ConfigError(f"{where}: 'models' must be a non-empty list of model names or glob patterns")
    model_map = raw.get("model_map") or {}
    if not isinstance(model_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in model_map.items()
    ):
        raise ConfigError(f"{where}: 'model_map' maps model names to upstream model names")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}: 'headers' is a mapping of header names to values")
    timeout = raw.get("timeout") or {}
    if not isinstance(timeout, dict):
        raise ConfigError(f"{where}: 'timeout' is a mapping with connect and read seconds")
    known = {"name", "type", "base_url", "api_key", "models", "model_map", "headers", "timeout"}
    if kind == "gemini":
        known.add("api_version")
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    api_version = str(raw.get("api_version") or DEFAULT_GEMINI_API_VERSION).strip("/")
    if not re.fullmatch(r"v\d+(?:alpha|beta)?\d*", api_version):
        raise ConfigError(f"{where}: api_version is a Gemini API version such as v1beta or v1")
    return ChannelConfig(
        name=name,
        type=kind,
        base_url=base_url,
        api_key=str(raw.get("api_key") or ""),
        models=tuple(models),  # type: ignore[arg-type]
        model_map=dict(model_map),
        connect_timeout=_number(timeout, "connect", 10.0, where),
        read_timeout=_number(timeout, "read", 300.0, where),
        headers={str(k): str(v) for k, v in headers.items()},
        api_version=api_version,
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
        max_bytes=int(_number(raw, "max_bytes", _IMAGE_FETCH_DEFAULTS.max_bytes, "image_fetch", int)),
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


def _storage(raw: dict[str, object], environ: dict[str, str] | os._Environ[str]) -> tuple[str, Path]:
    data_dir = Path(str(raw.get("data_dir") or environ.get("LLMRELAY_DATA_DIR") or "data")).resolve()
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
    raw: dict[str, object] = _interpolate_tree(_read_yaml(path), environ)  # type: ignore[assignment]
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
    max_body = int(_number(limits, "max_body_bytes", 32 * 1024 * 1024, "limits", int))
    body_timeout = _number(limits, "body_timeout", 60.0, "limits")
    request_timeout = _number(limits, "request_timeout", 3600.0, "limits")
    port = int(_number(server, "port", 8080, "server", int))
    workers = int(_number(server, "workers", 1, "server", int))
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
        image_fetch=_image_fetch(raw.get("image_fetch")),
    )

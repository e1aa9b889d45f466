"""Model listings: GET /v1/models and /v1/models/{id} (OpenAI), the same paths for the anthropic SDK, and
GET /v1beta/models and /v1beta/models/{model} (Gemini; google-genai 3.x lists under /v1 too).

Each caller gets its own API's shape, told apart by what it sends: `anthropic-version` (Anthropic), a key in
`x-goog-api-key` or `?key=` (Gemini), else OpenAI. A caller sees the models its key may use that a channel
serves and the gateway can bill.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmrelay.formats.anthropic import anthropic_error
from llmrelay.formats.gemini import gemini_error
from llmrelay.relay.auth import authenticate
from llmrelay.relay.errors import RelayError, model_not_found
from llmrelay.relay.routing import Route
from llmrelay.store.cache import KeyState
from llmrelay.surfaces.http import HttpRequest

if TYPE_CHECKING:
    from llmrelay.app import Gateway

MODEL_CREATED = 1_700_000_000  # models have no creation time here; SDKs only need an integer
MODEL_CREATED_AT = "2023-11-14T22:13:20Z"  # the same instant, as Anthropic writes it
GEMINI_ACTIONS = ["generateContent", "streamGenerateContent", "countTokens"]

ModelShape = Callable[[str, Route], dict[str, Any]]


def _openai_model(model_id: str, route: Route) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": route.channel.config.type}


def _anthropic_model(model_id: str, route: Route) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": MODEL_CREATED_AT}


def _gemini_model(model_id: str, route: Route) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}",
        "displayName": model_id,
        "supportedGenerationMethods": GEMINI_ACTIONS,
    }


def _servable(gw: Gateway, key: KeyState, model: str) -> Route | None:
    """The route for a model this key may use and the gateway can bill, else None."""
    try:
        return gw.relay.route_and_price(key, model)[0]
    except RelayError:
        return None


def _caller(gw: Gateway, http: HttpRequest, gemini: bool = False) -> tuple[KeyState, str]:
    """The key, and the API the caller speaks (its errors are rendered in that API's shape from here on)."""
    if gemini or http.header(b"x-goog-api-key") is not None or "key" in http.query():
        http.render_error = gemini_error
        return authenticate(gw.keys, http, b"x-goog-api-key", "key"), "gemini"
    if http.header(b"anthropic-version") is not None:
        http.render_error = anthropic_error
        return authenticate(gw.keys, http, b"x-api-key"), "anthropic"
    return authenticate(gw.keys, http), "openai"


def _listing(gw: Gateway, key: KeyState, shape: ModelShape) -> list[dict[str, Any]]:
    return [
        shape(name, route)
        for name, _channel in gw.router.listed_models()
        if (route := _servable(gw, key, name)) is not None
    ]


async def _list(gw: Gateway, http: HttpRequest, gemini: bool) -> None:
    key, api = _caller(gw, http, gemini)
    if api == "gemini":
        await http.respond_json(200, {"models": _listing(gw, key, _gemini_model)})
    elif api == "anthropic":
        data = _listing(gw, key, _anthropic_model)
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        await http.respond_json(200, {"data": data, "has_more": False, "first_id": first, "last_id": last})
    else:
        await http.respond_json(200, {"object": "list", "data": _listing(gw, key, _openai_model)})


async def _retrieve(gw: Gateway, http: HttpRequest, gemini: bool) -> None:
    key, api = _caller(gw, http, gemini)
    model_id = http.path_params["model"]
    if api == "gemini":
        model_id = model_id.removeprefix("models/")
    route = _servable(gw, key, model_id) if model_id else None
    if route is None:
        raise model_not_found(model_id)
    shape = {"gemini": _gemini_model, "anthropic": _anthropic_model}.get(api, _openai_model)
    await http.respond_json(200, shape(model_id, route))


async def list_models(gw: Gateway, http: HttpRequest) -> None:
    await _list(gw, http, gemini=False)


async def retrieve_model(gw: Gateway, http: HttpRequest) -> None:
    await _retrieve(gw, http, gemini=False)


async def list_gemini_models(gw: Gateway, http: HttpRequest) -> None:
    await _list(gw, http, gemini=True)


async def retrieve_gemini_model(gw: Gateway, http: HttpRequest) -> None:
    await _retrieve(gw, http, gemini=True)

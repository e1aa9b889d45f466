"""GET /v1/models and GET /v1/models/{id}: what this key may use.

The anthropic SDK calls the same paths (`client.models.list()`); a request that names an `anthropic-version`
gets Anthropic's shape (`ModelInfo` objects, Anthropic-shaped errors) and may send its key in `x-api-key`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrelay.formats.anthropic import anthropic_error
from llmrelay.relay.auth import authenticate
from llmrelay.relay.errors import RelayError, model_not_found
from llmrelay.relay.routing import Route
from llmrelay.store.cache import KeyState
from llmrelay.surfaces.http import HttpRequest

if TYPE_CHECKING:
    from llmrelay.app import Gateway

MODEL_CREATED = 1_700_000_000  # models have no creation time here; SDKs only need an integer
MODEL_CREATED_AT = "2023-11-14T22:13:20Z"  # the same instant, as Anthropic writes it


def _model_object(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def _anthropic_model(model_id: str, owner: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": MODEL_CREATED_AT}


def _caller(gw: Gateway, http: HttpRequest) -> tuple[KeyState, bool]:
    """The key, and whether the caller speaks Anthropic's API (its errors are then Anthropic-shaped)."""
    anthropic = http.header(b"anthropic-version") is not None
    if anthropic:
        http.render_error = anthropic_error
    return authenticate(gw.keys, http, b"x-api-key" if anthropic else None), anthropic


def _servable(gw: Gateway, key: KeyState, model: str) -> Route | None:
    """The route for a model this key may use and the gateway can bill, else None."""
    try:
        return gw.relay.route_and_price(key, model)[0]
    except RelayError:
        return None


async def list_models(gw: Gateway, http: HttpRequest) -> None:
    key, anthropic = _caller(gw, http)
    shape = _anthropic_model if anthropic else _model_object
    data = [
        shape(name, channel.config.type)
        for name, channel in gw.router.listed_models()
        if _servable(gw, key, name) is not None
    ]
    if anthropic:
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        await http.respond_json(200, {"data": data, "has_more": False, "first_id": first, "last_id": last})
    else:
        await http.respond_json(200, {"object": "list", "data": data})


async def retrieve_model(gw: Gateway, http: HttpRequest) -> None:
    key, anthropic = _caller(gw, http)
    model_id = http.path_params["model"]
    route = _servable(gw, key, model_id) if model_id else None
    if route is None:
        raise model_not_found(model_id)
    shape = _anthropic_model if anthropic else _model_object
    await http.respond_json(200, shape(model_id, route.channel.config.type))

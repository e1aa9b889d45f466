"""GET /v1/models and GET /v1/models/{id}: what this key may use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrelay.relay.auth import authenticate
from llmrelay.relay.errors import RelayError, model_not_found
from llmrelay.relay.routing import Route
from llmrelay.store.cache import KeyState
from llmrelay.surfaces.http import HttpRequest

if TYPE_CHECKING:
    from llmrelay.app import Gateway

MODEL_CREATED = 1_700_000_000  # models have no creation time here; SDKs only need an integer


def _model_object(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def _servable(gw: Gateway, key: KeyState, model: str) -> Route | None:
    """The route for a model this key may use and the gateway can bill, else None."""
    try:
        return gw.relay.route_and_price(key, model)[0]
    except RelayError:
        return None


async def list_models(gw: Gateway, http: HttpRequest) -> None:
    key = authenticate(gw.keys, http)
    data = [
        _model_object(name, channel.config.type)
        for name, channel in gw.router.listed_models()
        if _servable(gw, key, name) is not None
    ]
    await http.respond_json(200, {"object": "list", "data": data})


async def retrieve_model(gw: Gateway, http: HttpRequest) -> None:
    key = authenticate(gw.keys, http)
    model_id = http.path_params["model"]
    route = _servable(gw, key, model_id) if model_id else None
    if route is None:
        raise model_not_found(model_id)
    await http.respond_json(200, _model_object(model_id, route.channel.config.type))

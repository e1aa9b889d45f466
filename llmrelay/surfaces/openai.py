"""The OpenAI API surface: POST /v1/chat/completions, GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrelay.relay.auth import authenticate
from llmrelay.relay.errors import RelayError, bad_request, model_not_found
from llmrelay.relay.request import ChatRequest
from llmrelay.relay.routing import Route
from llmrelay.store.cache import KeyState
from llmrelay.surfaces.http import HttpRequest, parse_json_body

if TYPE_CHECKING:
    from llmrelay.app import Gateway

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MODEL_CREATED = 1_700_000_000  # models have no creation time here; SDKs only need an integer


def _optional_positive_int(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"'{field}' must be a positive integer, got {value!r}.", field)
    return value


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Validate what the relay itself depends on; every other field is the upstream's to judge."""
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array of message objects.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object.", f"messages[{index}]")
        if message.get("role") not in MESSAGE_ROLES:
            raise bad_request(
                f"messages[{index}].role must be one of {', '.join(sorted(MESSAGE_ROLES))}.",
                f"messages[{index}].role",
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", "stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise bad_request("'stream_options' must be an object.", "stream_options")
    include_usage = bool(stream and stream_options and stream_options.get("include_usage") is True)
    max_tokens = _optional_positive_int(body, "max_completion_tokens") or _optional_positive_int(body, "max_tokens")
    choices = _optional_positive_int(body, "n") or 1
    return ChatRequest("openai", raw, body, model, stream, include_usage, max_tokens, choices)


async def chat_completions(gw: Gateway, http: HttpRequest) -> None:
    key = authenticate(gw.keys, http)
    chat = parse_chat_request(await http.body(gw.config.max_body_bytes))
    await gw.chat.chat(http, key, chat)


def _model_object(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def _servable(gw: Gateway, key: KeyState, model: str) -> Route | None:
    """The route for a model this key may use and the gateway can bill, else None."""
    try:
        return gw.chat.route_and_price(key, model)[0]
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


async def retrieve_model(gw: Gateway, http: HttpRequest, model_id: str) -> None:
    key = authenticate(gw.keys, http)
    route = _servable(gw, key, model_id) if model_id else None
    if route is None:
        raise model_not_found(model_id)
    await http.respond_json(200, _model_object(model_id, route.channel.config.type))

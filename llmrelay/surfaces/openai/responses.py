"""POST /v1/responses: OpenAI's Responses API, for every model.

An OpenAI channel that serves the Responses API gets the request as sent (it keeps its own responses, tools
and state). Any other model gets it translated through the chat shape; the gateway then keeps each response
itself, so `previous_response_id` works there too (relay/conversations.py): the stored conversation is put
in front of the new input, and the request goes on as one without a previous response.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.formats.base import Completion
from llmrelay.formats.responses import (
    RESPONSES_CLIENT,
    ChatToResponsesStream,
    ResponsesInput,
    ResponsesStreamTap,
    chat_to_responses_reply,
    input_items,
    new_response_id,
    output_items_as_input,
    responses_reply_texts,
    responses_reply_usage,
    responses_to_chat,
)
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import StreamTap
from llmrelay.relay.auth import authenticate
from llmrelay.relay.chat import ChatJob
from llmrelay.relay.conversations import ConversationStore
from llmrelay.relay.errors import RelayError, bad_request
from llmrelay.relay.request import ChatRequest
from llmrelay.relay.routing import Route
from llmrelay.store.cache import KeyState
from llmrelay.surfaces.http import HttpRequest
from llmrelay.surfaces.openai.fields import json_object

if TYPE_CHECKING:
    from llmrelay.app import Gateway


class ResponsesJob(ChatJob):
    """A Responses API request: forwarded to a Responses channel, else translated and its response kept."""

    def __init__(
        self,
        request: ChatRequest,
        parsed: ResponsesInput,
        history: list[dict[str, Any]],
        store: ConversationStore,
        key_id: int,
    ) -> None:
        super().__init__(request, RESPONSES_CLIENT)
        self.parsed = parsed
        self.history = history  # the conversation so far as input items: earlier turns, then this input
        self._store = store
        self._key_id = key_id
        self._events: ChatToResponsesStream | ResponsesStreamTap | None = None  # numbers a stream's error event

    # A forwarded reply is a Response: its usage and texts are read from it.
    def reply_usage(self, body: bytes, route: Route) -> tuple[Usage | None, list[str]]:
        if self.same_format(route):
            return responses_reply_usage(body)
        return super().reply_usage(body, route)

    def reply_texts(self, body: bytes, route: Route) -> list[str]:
        if self.same_format(route):
            return responses_reply_texts(body)
        return super().reply_texts(body, route)

    def stream_tap(self, route: Route) -> StreamTap:
        tap = super().stream_tap(route)
        if isinstance(tap, ResponsesStreamTap):
            self._events = tap
        return tap

    def stream_encoder(self) -> ChatToResponsesStream:
        self._events = ChatToResponsesStream(self.request, on_done=self._keep)
        return self._events

    def stream_failure(self, error: RelayError) -> bytes:
        if self._events is not None:
            return self._events.error_event(error)  # numbered after the events already sent
        return super().stream_failure(error)

    def encode_reply(self, completion: Completion, usage: Usage) -> bytes:
        reply = chat_to_responses_reply(completion, usage, self.request, new_response_id(), int(time.time()))
        self._keep(reply)
        return orjson.dumps(reply)

    def _keep(self, response: dict[str, Any]) -> None:
        """Keep a translated response for `previous_response_id` (unless the client said `store: false`)."""
        if self.parsed.store and response.get("status") in ("completed", "incomplete"):
            conversation = self.history + output_items_as_input(response.get("output") or [])
            self._store.remember(response["id"], self._key_id, self.model, conversation)


async def _with_history(
    native: dict[str, Any], key: KeyState, store: ConversationStore
) -> tuple[dict[str, Any], list[dict[str, Any]], RelayError | None]:
    """The request to relay, the conversation so far, and the error for a previous response this gateway
    does not hold (which only an OpenAI channel may know)."""
    previous = native.get("previous_response_id")
    if not isinstance(previous, str) or not previous:
        return native, input_items(native), None
    stored = await store.find(previous, key.id)
    if stored is None:
        missing = RelayError(
            404,
            f"Previous response with id '{previous}' not found.",
            "invalid_request_error",
            "previous_response_not_found",
            "previous_response_id",
        )
        return native, input_items(native), missing
    # Held here: the stored turns go in front of this input, and the request goes on without the reference.
    history = stored.conversation + input_items(native)
    expanded = {name: value for name, value in native.items() if name != "previous_response_id"}
    expanded["input"] = history
    return expanded, history, None


def _untranslatable(parsed: ResponsesInput, model: str) -> RelayError | None:
    """The 400 for what only an OpenAI Responses channel can do (built-in tools, background mode, ...)."""
    what = parsed.untranslatable
    if what is None and parsed.background:
        what = ("background: background mode needs an OpenAI channel", "background")
    if what is None:
        return None
    message, param = what
    return bad_request(f"{message} (the model `{model}` is served by translation, which does not have it).", param)


async def create_response(gw: Gateway, http: HttpRequest) -> None:
    key = authenticate(gw.keys, http)
    raw = await http.body(gw.config.max_body_bytes)
    native = json_object(raw)
    parsed = responses_to_chat(native)  # a malformed request is a 400 before any stored response is read
    body, history, missing = await _with_history(native, key, gw.conversations)
    if body is not native:
        raw = orjson.dumps(body)
        parsed = responses_to_chat(body)
    untranslatable = missing or _untranslatable(parsed, body["model"])
    request = ChatRequest(
        source_format="responses",
        raw=raw,
        body=parsed.chat,
        model=body["model"],
        stream=parsed.stream,
        include_usage=True,  # a Responses stream always ends with its usage
        max_output_tokens=parsed.max_output_tokens,
        choices=1,
        native=body,
        untranslatable=untranslatable,
    )
    await gw.relay.run(http, key, ResponsesJob(request, parsed, history, gw.conversations, key.id))

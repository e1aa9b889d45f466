"""The OpenAI API surface: one module per endpoint family, each turning a request into a relay Job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from llmrelay.relay.auth import authenticate
from llmrelay.relay.jobs import Job
from llmrelay.surfaces.http import HttpRequest
from llmrelay.surfaces.models import list_models, retrieve_model
from llmrelay.surfaces.openai import audio, completions, embeddings, images, moderations
from llmrelay.surfaces.openai.chat import parse_chat_job
from llmrelay.surfaces.openai.responses import create_response

if TYPE_CHECKING:
    from llmrelay.app import Gateway

Handler = Callable[["Gateway", HttpRequest], Awaitable[None]]


def relayed(parse: Callable[[bytes, str | None], Job]) -> Handler:
    """A handler that authenticates, reads the body, lets `parse` build the Job, and relays it."""

    async def handle(gw: Gateway, http: HttpRequest) -> None:
        key = authenticate(gw.keys, http)
        raw = await http.body(gw.config.max_body_bytes)
        await gw.relay.run(http, key, parse(raw, http.header(b"content-type")))

    return handle


ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/chat/completions": {"POST": relayed(parse_chat_job)},
    "/v1/responses": {"POST": create_response},
    "/v1/completions": {"POST": relayed(completions.parse_completion)},
    "/v1/embeddings": {"POST": relayed(embeddings.parse_embeddings)},
    "/v1/images/generations": {"POST": relayed(images.parse_generation)},
    "/v1/images/edits": {"POST": relayed(images.parse_edit)},
    "/v1/images/variations": {"POST": relayed(images.parse_variation)},
    "/v1/audio/speech": {"POST": relayed(audio.parse_speech)},
    "/v1/audio/transcriptions": {"POST": relayed(audio.parse_transcription)},
    "/v1/audio/translations": {"POST": relayed(audio.parse_translation)},
    "/v1/moderations": {"POST": relayed(moderations.parse_moderation)},
    "/v1/models": {"GET": list_models},
    "/v1/models/{model:path}": {"GET": retrieve_model},
}

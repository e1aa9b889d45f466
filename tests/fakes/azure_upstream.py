"""A fake Azure OpenAI resource: the fake OpenAI server's answers behind Azure's URLs, key header and extras.

- Endpoints live at `/openai/deployments/{deployment}/<OpenAI path>?api-version=...` (no moderations and no
  image variations: Azure has neither). The base URL is the resource's, http://127.0.0.1:PORT, as an azure
  channel takes it.
- Refusals come as Azure sends them: an unknown path or a missing `api-version` is 404 "Resource not found",
  a missing or wrong `api-key` header 401, a deployment the resource does not have 404 DeploymentNotFound,
  and `stream_options` under an API version older than 2024-09-01 400 (those versions do not know it).
- Chat replies carry Azure's content filter annotations: `prompt_filter_results` on the reply (a stream
  opens with a chunk holding only those, with empty id, model and `choices`), `content_filter_results` on
  every choice.
- `#fake:error=CODE` answers Azure's error shape (`{"error": {"code": "429", "message": ...}}`), and
  `#fake:filter` the 400 Azure sends when its content filter blocks a prompt. The other `#fake:`
  directives work as on the fake OpenAI server.

Its key is the fake OpenAI server's `UPSTREAM_SECRET`, so `#fake:leak` echoes the key an azure channel sent.
Every call is recorded in `calls` with its deployment, endpoint, api-version, headers and body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import UPSTREAM_SECRET, FakeOpenAI, Handler

AZURE_UPSTREAM_SECRET = UPSTREAM_SECRET
STREAM_USAGE_SINCE = "2024-09-01"  # the first API versions that accept stream_options
_DEPLOYMENT_PATH = re.compile(r"^/openai/deployments/([^/]+)(/.+)$")
_ERROR_DIRECTIVE = re.compile(rb"#fake:error=(\d+)")
_FILTER_DIRECTIVE = b"#fake:filter"

_SAFE = {"filtered": False, "severity": "safe"}
CONTENT_FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTER_RESULTS = [
    {
        "prompt_index": 0,
        "content_filter_results": {**CONTENT_FILTER_RESULTS, "jailbreak": {"filtered": False, "detected": False}},
    }
]

_MESSAGES = {
    400: "The request is invalid.",
    401: (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
        "for an active subscription and use a correct regional API endpoint for your resource."
    ),
    404: "Resource not found",
    429: (
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded "
        "token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."
    ),
    500: "The server had an error while processing your request.",
}
DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within the last "
    "5 minutes, please wait a moment and try again."
)
CONTENT_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry."
)


def azure_error(status: int, code: str | None = None, message: str | None = None) -> web.Response:
    """Azure's own error shape: a string `code` (the status, or a name) and a message, nothing else."""
    body = {"error": {"code": code or str(status), "message": message or _MESSAGES.get(status, f"fake error {status}")}}
    headers = {"Retry-After": "6"} if status == 429 else None
    return web.json_response(body, status=status, headers=headers)


def content_filter_error() -> web.Response:
    """What Azure answers when its content filter blocks a prompt: OpenAI's fields plus `status` and
    `innererror` with the filter's verdict."""
    verdict = {**CONTENT_FILTER_RESULTS, "violence": {"filtered": True, "severity": "high"}}
    error = {
        "message": CONTENT_FILTERED,
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": verdict},
    }
    return web.json_response({"error": error}, status=400)


@dataclass
class AzureCall:
    deployment: str
    endpoint: str  # the OpenAI path after the deployment, e.g. "/chat/completions"
    api_version: str | None
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.raw)


class FakeAzureOpenAI(FakeOpenAI):
    def __init__(self, deployments: set[str] | None = None) -> None:
        """`deployments`: the deployments the resource has (None: any name is one)."""
        super().__init__()
        self.deployments = deployments
        self.calls: list[AzureCall] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoints(self) -> dict[str, Handler]:
        endpoints = super().endpoints()
        del endpoints["/moderations"], endpoints["/images/variations"]
        return endpoints

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._gate)
        for path, handler in self.endpoints().items():
            app.router.add_post(f"/openai/deployments/{{deployment}}{path}", handler)

    def refusal(self, request: web.Request) -> web.Response | None:
        return None  # the gate has checked the credentials Azure's way

    def error_response(self, status: int) -> web.Response:
        return azure_error(status)

    def choice_extras(self) -> dict[str, Any]:
        return {"content_filter_results": CONTENT_FILTER_RESULTS}

    def stream_opening(self) -> list[dict[str, Any]]:
        empty = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
        return [{**empty, "prompt_filter_results": PROMPT_FILTER_RESULTS}]

    def _completion(self, *args: Any) -> dict[str, Any]:
        return {**super()._completion(*args), "prompt_filter_results": PROMPT_FILTER_RESULTS}

    def calls_with(self, marker: str) -> list[AzureCall]:
        return [call for call in self.calls if marker.encode() in call.raw]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Azure's checks, in its order, before the OpenAI handler answers."""
        match = _DEPLOYMENT_PATH.match(request.path)
        raw = await request.read()
        api_version = request.query.get("api-version")
        if match is not None:
            deployment, endpoint = match.groups()
            self.calls.append(AzureCall(deployment, endpoint, api_version, dict(request.headers), raw))
        if match is None or match.group(2) not in self.endpoints() or not api_version:
            return azure_error(404)
        if request.headers.get("api-key") != AZURE_UPSTREAM_SECRET:
            return azure_error(401)
        if self.deployments is not None and match.group(1) not in self.deployments:
            return azure_error(404, "DeploymentNotFound", DEPLOYMENT_NOT_FOUND)
        if api_version < STREAM_USAGE_SINCE and b'"stream_options"' in raw:
            error = {"message": "Unrecognized request argument supplied: stream_options", "code": None}
            return web.json_response({"error": {**error, "type": "invalid_request_error", "param": None}}, status=400)
        return self._steered(raw) or await handler(request)

    @staticmethod
    def _steered(raw: bytes) -> web.Response | None:
        if _FILTER_DIRECTIVE in raw:
            return content_filter_error()
        error = _ERROR_DIRECTIVE.search(raw)
        return azure_error(int(error.group(1))) if error else None

"""Fuzzing: every operation of the gateway's OpenAPI document, against the real gateway subprocess.

Schemathesis generates requests from the document in llmrelay/surfaces/openapi.py — its examples, valid
requests from its schemas, requests that break them, and the boundary cases in between — and sends them to
the session's `gateway`, with the fake OpenAI, Anthropic and Gemini upstreams behind it. Every reply must
hold to the document:

- never a server error: the fakes are healthy, so a 5xx is a bug (the gateway's, or a fake's);
- never a Python traceback in a body;
- a documented status code, content type and headers, and a body (each event of a stream) that matches its
  schema — for errors, the shape of the API the client spoke: OpenAI's, Anthropic's or Google's;
- a request that breaks the document's request schema is refused (4xx): the document claims no validation
  the gateway does not do.

Each operation is one test item; the run is bounded (MAX_EXAMPLES generated cases per operation on top of
the examples and boundary cases, no shrinking, derandomised so that a failure reproduces) and prints what it
covered at the end of the module. Every case is sent with a valid key; one in ten is sent again with a wrong
key and without a key, so that 401s are checked in every API's shape. Admin calls on a key are pointed at
keys this module owns: other modules share this gateway and its database. Half the generated model names are
served ones, so generated requests reach pricing, quota, translation and the upstreams; Responses API cases are
spread over an OpenAI model (forwarded), Claude and Gemini (translated), streamed or not.

After the run, the database must show that nothing the gateway refused was billed, that every relayed request
it answered with success has its usage record, that the key was charged exactly its records, and that every
key handed out is stored only as its hash.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from urllib.parse import unquote

import hypothesis
import orjson
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from llmrelay.app import ROUTES
from llmrelay.store.schema import api_keys, usage_records
from llmrelay.surfaces import anthropic as anthropic_surface
from llmrelay.surfaces import gemini as gemini_surface
from llmrelay.surfaces import openai as openai_surface
from llmrelay.surfaces import openapi
from tests.conftest import ADMIN_KEY, Gateway, call, wait_until

MAX_EXAMPLES = 20
FUZZ_KEY_NAME = "fuzz-openapi"
POOL = tuple(f"fuzz-pool-{i}" for i in range(3))  # the keys admin changes land on
DOOMED = tuple(f"fuzz-doomed-{i}" for i in range(3))  # the keys admin deletions land on
WRONG_KEY = "sk-fuzz-wrong-key-000000000000000000000000000000000"
AUTH_PROBE_EVERY = 10
MULTIPLIERS = frozenset({"n", "best_of", "dimensions", "candidateCount", "candidate_count"})
MAX_MULTIPLIER = 128
SERVED_MODELS = (
    "gpt-4o-mini",
    "o1-mini",
    "gpt-4-gizmo-g-fuzz",
    "gpt-4-all",
    "alias-mini",
    "claude-sonnet-4-5",
    "claude-alias",
    "gemini-2.0-flash",
    "gemini-alias",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "dall-e-2",
    "dall-e-3",
    "tts-1",
    "whisper-1",
    "omni-moderation-latest",
)
# POST /v1/responses: the model of the document's first example, and the models its cases are spread over.
RESPONSES_MODELS = ("gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.0-flash")
TRACEBACK_MARKERS = (b"Traceback (most recent call last)", b'File "')

SENT: Counter[str] = Counter()  # operation -> requests sent
STATUSES: Counter[tuple[str, int]] = Counter()  # (operation, status) -> replies
FAILED: list[str] = []  # one line per failing request
BILLED: list[str] = []  # request ids of the relayed requests that succeeded (each must have a usage record)
REFUSED: list[str] = []  # request ids of the requests answered with an error (none may cost anything)
CREATED_KEYS: list[str] = []  # every key the module made, the ones POST /admin/keys returned included
# Operations whose success is relayed, billed and recorded (a token count may be answered offline, unrecorded).
RECORDED = re.compile(r"^POST /v1(beta)?/(?!.*count_?[tT]okens)")


def no_traceback(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """A reply never carries a Python traceback, or a source location from one."""
    body = response.content or b""
    for marker in TRACEBACK_MARKERS:
        if marker in body:
            raise AssertionError(f"The reply carries Python traceback text ({marker.decode()!r})")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "no-shrink": True,
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,  # the test sends the credentials (`credentials`)
        },
        # Half the generated model names are ones the test gateway serves (one per channel and endpoint kind),
        # so that generated requests get past routing to pricing, quota, translation and the upstream.
        "dictionaries": {"models": {"values": list(SERVED_MODELS)}},
        "parameters": {
            "body.model": {"dictionary": "models", "probability": 0.5},
            "path.model": {"dictionary": "models", "probability": 0.5},
        },
        "phases": {"stateful": {"enabled": False}},
        # /v1/models/{model}:<action> is served by the same handler as /v1beta/models/{model}:<action>: its
        # examples and generated cases run, the boundary cases only once, under /v1beta.
        "operations": [{"include-path-regex": "^/v1/models/\\{model\\}:", "phases": {"coverage": {"enabled": False}}}],
        "request-timeout": 15,
        # Failure reports show requests as sent (`max_tokens` is no secret), credentials excepted.
        "output": {
            "sanitization": {
                "keys-to-sanitize": ["authorization", "x-api-key", "x-goog-api-key"],
                "sensitive-markers": ["authorization", "api-key"],
            }
        },
    }
)
schema = schemathesis.openapi.from_dict(openapi.build_document(), config=CONFIG)


@pytest.fixture(scope="module")
def fuzz_key(gateway: Gateway) -> str:
    key = gateway.create_key(FUZZ_KEY_NAME, quota_usd="1000000")
    CREATED_KEYS.append(key)
    CREATED_KEYS.extend(gateway.create_key(name, quota_usd="10") for name in POOL + DOOMED)
    return key


def credentials(case: schemathesis.Case, key: str | None) -> dict[str, str]:
    """Headers carrying `key` as the operation's first security scheme says (admin calls: the admin key)."""
    security = case.operation.definition.raw.get("security") or []
    if not security or key is None:
        return {}
    scheme = next(iter(security[0]))
    if scheme == "adminBearer" and key != WRONG_KEY:
        key = ADMIN_KEY
    if scheme == "anthropicApiKey":
        return {"x-api-key": key}
    if scheme == "googApiKey":
        return {"x-goog-api-key": key}
    return {"Authorization": f"Bearer {key}"}


def leaves_the_route(case: schemathesis.Case) -> bool:
    """Whether a generated path parameter would take the request to another route, or to none: `{model}` in
    `/v1beta/models/{model}:generateContent` ends at the next `/` or `:`, and a segment of dots alone is
    removed by URL normalisation. Such a request is not one of the operation's, so it is not sent."""
    takes_anything = case.operation.path == "/v1/models/{model}"  # model ids such as org/model or llama3:8b
    for value in (case.path_parameters or {}).values():
        text = unquote(str(value))  # generated parameters arrive percent-encoded
        if not text.strip(".") or (not takes_anything and ("/" in text or ":" in text)):
            return True
    return False


def confine_admin_changes(case: schemathesis.Case) -> None:
    """Point an admin call on one key at one of this module's keys, or at a name no key has, whatever name or
    id was generated (a generated "1" would otherwise disable another module's key)."""
    if not case.operation.path.startswith("/admin/keys/{ref}"):
        return
    generated = (case.path_parameters or {}).get("ref")
    if not isinstance(generated, str) or not generated:
        return
    keys = DOOMED if case.method.upper() == "DELETE" else POOL
    slot = zlib.crc32(generated.encode()) % (len(keys) + 1)
    case.path_parameters["ref"] = keys[slot] if slot < len(keys) else f"fuzz-missing-{generated}"


def spare_the_fakes(value: object) -> None:
    """Cap counts that make an upstream build that many things (choices, candidates, vector dimensions) at
    128, OpenAI's own cap for `n`: the fakes build what they are asked for, in this test process, and the
    gateway may pass a count it cannot price (dimensions) or that a large quota covers."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name in MULTIPLIERS and type(item) in (int, float) and item > MAX_MULTIPLIER:  # 1e9 too
                value[name] = MAX_MULTIPLIER
            else:
                spare_the_fakes(item)
    elif isinstance(value, list):
        for item in value:
            spare_the_fakes(item)


def spread_responses_requests(case: schemathesis.Case) -> None:
    """Send POST /v1/responses cases to every way the gateway serves them. Most cases are variations of the
    document's first example (an OpenAI model, not streamed), which the gateway forwards as sent; a third of
    them go to Claude and a third to Gemini instead, which the gateway translates both ways, and half of those
    that leave `stream` out are streamed, which for a translated model the gateway encodes itself. Only a
    valid model and an absent `stream` are changed, so a case that breaks the document still does."""
    if case.operation.label != "POST /v1/responses" or not isinstance(case.body, dict):
        return
    slot = zlib.crc32(repr(case.body).encode())
    if case.body.get("model") == RESPONSES_MODELS[0]:
        case.body["model"] = RESPONSES_MODELS[slot % len(RESPONSES_MODELS)]
    if "stream" not in case.body and slot // len(RESPONSES_MODELS) % 2:
        case.body["stream"] = True


def exchange(case: schemathesis.Case, base_url: str, headers: dict[str, str], note: str = "") -> None:
    """Send the case and check the reply against the document (raising the checks' failures)."""
    label = case.operation.label
    SENT[label] += 1
    response = case.call(base_url=base_url, headers=headers)
    STATUSES[(label, response.status_code)] += 1
    request_id = (response.headers.get("x-request-id") or [""])[0]  # schemathesis lists each header's values
    if 200 <= response.status_code < 300 and RECORDED.match(label):
        BILLED.append(request_id)
    elif response.status_code >= 400:
        REFUSED.append(request_id)
    if label == "POST /admin/keys" and response.status_code == 201:
        CREATED_KEYS.append(response.json()["key"])
    # A form field is text: a number, or a field sent twice, reads the same as a valid one, so the check that
    # invalid data is refused applies to JSON bodies only.
    form = case.media_type == "multipart/form-data"
    checks = [check for check in CHECKS if not (form and check is negative_data_rejection)]
    try:
        case.validate_response(response, checks=checks, additional_checks=[no_traceback], headers=headers)
    except BaseException as failure:  # schemathesis raises a BaseExceptionGroup of failures
        titles = sorted({getattr(f, "title", type(f).__name__) for f in getattr(failure, "exceptions", [failure])})
        FAILED.append(f"  {label}{note} -> {response.status_code}: {'; '.join(titles)}")
        raise


@pytest.fixture(scope="module", autouse=True)
def coverage_report(request: pytest.FixtureRequest) -> Iterator[None]:
    """At the end of the module, on the terminal: operations, requests sent, statuses seen, failing requests."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not SENT:
        return
    lines = [f"fuzzing: {len(SENT)} operations, {sum(SENT.values())} requests, {len(FAILED)} failing requests"]
    for label, count in sorted(SENT.items()):
        statuses = " ".join(f"{status}x{n}" for (op, status), n in sorted(STATUSES.items()) if op == label)
        lines.append(f"  {label}: {count} requests ({statuses})")
    with capture.global_and_fixture_disabled():  # past the capture of the test that ran last
        reporter.write_line("")
        for line in lines + FAILED:
            reporter.write_line(line)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Schemathesis names one item per operation, but pytest 9.2 builds an item's node id from the function's
    # original name and its parameters alone, which would give every operation the same id: a parameter
    # gives each its own (`...holds_to_the_document[POST /v1/messages][fuzz]`).
    if "run" in metafunc.fixturenames:
        metafunc.parametrize("run", ["fuzz"])


@schema.parametrize()
def test_every_operation_holds_to_the_document(
    case: schemathesis.Case, gateway: Gateway, fuzz_key: str, run: str
) -> None:
    hypothesis.assume(not leaves_the_route(case))
    confine_admin_changes(case)
    spare_the_fakes(case.body)
    spread_responses_requests(case)
    exchange(case, gateway.url, credentials(case, fuzz_key))
    if case.operation.definition.raw.get("security") and SENT[case.operation.label] % AUTH_PROBE_EVERY == 1:
        exchange(case, gateway.url, credentials(case, WRONG_KEY), " (wrong key)")
        exchange(case, gateway.url, {}, " (no key)")


def test_the_document_is_openapi_3_1_and_describes_every_route() -> None:
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    document = openapi.build_document()
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    surface_routes = {**openai_surface.ROUTES, **anthropic_surface.ROUTES, **gemini_surface.ROUTES}
    for template, methods in surface_routes.items():
        template = template.replace(":path}", "}")
        actions = ("generateContent", "streamGenerateContent", "countTokens") if "{action}" in template else ("",)
        for action in actions:
            for method in methods:
                assert (template.replace("{action}", action), method) in documented, (template, method)
    # ...and every documented /v1 operation has a handler in the gateway's route table.
    for path, method in documented:
        if path.startswith("/v1"):
            concrete = path.replace("{model}", "gpt-4o-mini")
            matched = ROUTES.match(concrete, method)
            assert matched is not None and matched[0] is not None, (method, path)


def test_the_gateway_serves_the_document(gateway: Gateway) -> None:
    """GET /openapi.json, without a key, answers the document the fuzzer ran on."""
    reply = call("GET", f"{gateway.url}/openapi.json")
    assert reply.status == 200, reply.body[:300]
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.body == openapi.document_bytes()
    document = orjson.loads(reply.body)
    assert document["openapi"].startswith("3.1")
    assert len(list(schema.get_all_operations())) == sum(len(methods) for methods in document["paths"].values())


def test_fuzzing_billed_nothing_it_refused_and_recorded_all_it_billed(gateway: Gateway, fuzz_key: str) -> None:
    """Over every request the fuzzing sent with its key: a request answered with an error costs nothing,
    every relayed request that succeeded has its usage record, and the key was charged exactly its records."""
    engine = gateway.engine()
    try:

        def ledger() -> tuple[int, int, set[str], int]:  # used, sum of records, their ids, cost of refusals
            with engine.connect() as conn:
                key_id, used = conn.execute(
                    select(api_keys.c.id, api_keys.c.used_nano).where(api_keys.c.name == FUZZ_KEY_NAME)
                ).one()
                records = conn.execute(
                    select(usage_records.c.request_id, usage_records.c.cost_nano).where(
                        usage_records.c.key_id == key_id
                    )
                ).all()
            refused = set(REFUSED)
            return (
                used,
                sum(cost for _, cost in records),
                {request_id for request_id, _ in records},
                sum(cost for request_id, cost in records if request_id in refused),
            )

        # Records are written in batches: wait until every billed request's record is in.
        settled = wait_until(lambda: (state := ledger())[0] == state[1] and set(BILLED) <= state[2] and state, 10)
        used, charged, recorded, refused_cost = settled or ledger()
    finally:
        engine.dispose()
    assert set(BILLED) <= recorded, f"{len(set(BILLED) - recorded)} billed requests have no usage record"
    assert used == charged, "the key was charged what its usage records say"
    assert refused_cost == 0, "requests answered with an error cost nothing"


def test_keys_the_fuzzing_created_are_stored_only_hashed(gateway: Gateway, fuzz_key: str) -> None:
    """No stored column holds a key the gateway handed out; each is stored as its SHA-256."""
    engine = gateway.engine()
    try:
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(select(api_keys))]
    finally:
        engine.dispose()
    stored = "\n".join(str(value) for row in rows for value in row.values())
    hashes = {row["key_hash"] for row in rows}
    for key in CREATED_KEYS:
        assert key not in stored and key[3:] not in stored
        assert hashlib.sha256(key.encode()).hexdigest() in hashes

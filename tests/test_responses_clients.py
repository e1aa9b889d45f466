"""Clients that default to the Responses API, through the gateway: pydantic-ai's `Agent("openai:...")`
(OpenAIResponsesModel), with a tool the agent calls, to an OpenAI channel and to Claude by translation."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.models import infer_model
from pydantic_ai.models.openai import OpenAIResponsesModel

from tests.conftest import Gateway
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture
def agent_env(gateway: Gateway, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-ai reads the OpenAI base URL and key from the environment, as its users set them."""
    monkeypatch.setenv("OPENAI_BASE_URL", gateway.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", key)


@pytest.mark.parametrize(("model", "channel"), [("gpt-4o", "/v1/responses"), ("claude-sonnet-4-5", "/v1/messages")])
def test_pydantic_ais_default_openai_agent_runs_through_the_gateway(
    agent_env: None, upstream: FakeOpenAI, claude_upstream: FakeAnthropic, model: str, channel: str
) -> None:
    assert isinstance(infer_model(f"openai:{model}"), OpenAIResponsesModel)  # what "openai:..." means today
    agent = Agent(f"openai:{model}", instructions="Answer with the weather tool's result.")
    seen: list[str] = []

    @agent.tool_plain
    def get_weather(city: str, n: int) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"sunny in {city}"

    result = agent.run_sync(f"#fake:tools weather please marker-agent-{model}")
    assert seen == ["Paris"]  # the model's function call reached the tool, and its output went back
    assert result.output
    usage = result.usage()
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    fake = upstream if channel == "/v1/responses" else claude_upstream
    assert [r.path for r in fake.requests_with(f"marker-agent-{model}")] == [channel, channel]

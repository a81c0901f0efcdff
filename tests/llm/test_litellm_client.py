"""The litellm adapter, offline: `litellm.acompletion` is monkeypatched to return real litellm
response objects built locally. litellm is imported once (module fixture), never at collection."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentforge.errors import ConfigError, LLMError
from agentforge.llm import (
    LiteLLMModel,
    Message,
    ModelResponse,
    ModelSettings,
    TextDelta,
    ToolCall,
    ToolSpec,
    allow_model_requests,
    guard,
    litellm_client,
    model_requests_allowed,
)

TOOL = ToolSpec(
    name="add",
    description="Add two numbers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
# litellm's own pydantic types warn about TypedDict ReadOnly items on first use; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Item .*ReadOnly:UserWarning")

CONVERSATION = [
    Message.system("You add."),
    Message.user("1 + 2?", name="ana"),
    Message.assistant(tool_calls=[ToolCall(id="call_9", name="add", arguments={"a": 1, "b": 2})]),
    Message.tool("3", tool_call_id="call_9", name="add"),
]


@pytest.fixture(scope="module")
def litellm() -> Any:
    return litellm_client._litellm()  # the one (slow) import of litellm in the test session


@pytest.fixture(autouse=True)
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests fake the provider, so real requests are 'allowed' unless a test blocks them."""
    monkeypatch.delenv(guard.BLOCK_ENV, raising=False)
    monkeypatch.setattr(guard, "ALLOW_MODEL_REQUESTS", True)


class FakeAcompletion:
    """Records the kwargs of each call and returns the prepared result."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def tool_call_response(litellm: Any, model: str = "gpt-4o-mini") -> Any:
    return litellm.ModelResponse(
        model=model,
        choices=[
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a": 2, "b": 40}'},
                        }
                    ],
                },
            }
        ],
        usage={"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    )


def test_importing_agentforge_llm_does_not_import_litellm() -> None:
    code = (
        "import sys, agentforge.llm as llm;"
        "model = llm.resolve_model('openai/gpt-4o-mini');"
        "assert type(model).__name__ == 'LiteLLMModel';"
        "print(sorted({'litellm', 'openai'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the guard ----------------------------------------------------------------------------------


def never_called(**_: Any) -> Any:
    pytest.fail("litellm.acompletion was reached although model requests are blocked")


async def test_guard_blocks_real_calls_before_litellm(
    litellm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(litellm, "acompletion", never_called)
    model = LiteLLMModel("openai/gpt-4o-mini")
    with allow_model_requests(False):
        assert not model_requests_allowed()
        with pytest.raises(LLMError, match="real model requests are blocked in tests") as info:
            await model.complete([Message.user("hi")])
        assert info.value.data["kind"] == "blocked" and not info.value.data["retryable"]
        with pytest.raises(LLMError, match="blocked"):
            [event async for event in model.stream([Message.user("hi")])]
    assert model_requests_allowed()  # the context manager restored the switch

    allow_model_requests(False)  # plain call: stays off (the autouse fixture restores it)
    with pytest.raises(LLMError, match="blocked"):
        await model.complete([Message.user("hi")])


async def test_guard_env_var_blocks(litellm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(litellm, "acompletion", never_called)
    monkeypatch.setenv("AGENTFORGE_BLOCK_MODEL_REQUESTS", "1")
    with pytest.raises(LLMError, match="blocked"):
        await LiteLLMModel("anthropic/claude-3-5-haiku-latest").complete([Message.user("hi")])


def test_blocked_call_does_not_import_litellm() -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        from agentforge.errors import LLMError
        from agentforge.llm import LiteLLMModel, Message, allow_model_requests

        allow_model_requests(False)
        try:
            asyncio.run(LiteLLMModel("openai/gpt-4o-mini").complete([Message.user("x")]))
        except LLMError as error:
            print(error.data["kind"], "litellm" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "blocked False"


# -- request conversion and response parsing ----------------------------------------------------


async def test_complete_converts_messages_tools_settings_and_parses_a_tool_call(
    litellm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAcompletion(tool_call_response(litellm))
    monkeypatch.setattr(litellm, "acompletion", fake)
    model = LiteLLMModel("openai/gpt-4o-mini", temperature=0.1, api_base="http://proxy:4000")

    response = await model.complete(
        CONVERSATION, tools=[TOOL], settings=ModelSettings(tool_choice="add", seed=7, timeout=9)
    )

    [request] = fake.calls
    assert request["model"] == "openai/gpt-4o-mini" and request["timeout"] == 9
    assert request["api_base"] == "http://proxy:4000"
    assert (request["temperature"], request["seed"]) == (0.1, 7) and "max_tokens" not in request
    assert request["messages"] == [
        {"role": "system", "content": "You add."},
        {"role": "user", "content": "1 + 2?", "name": "ana"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "content": "3", "tool_call_id": "call_9", "name": "add"},
    ]
    assert request["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers.",
                "parameters": TOOL.parameters,
            },
        }
    ]
    assert request["tool_choice"] == {"type": "function", "function": {"name": "add"}}

    assert isinstance(response, ModelResponse) and response.model == "gpt-4o-mini"
    assert response.tool_calls == [ToolCall(id="call_1", name="add", arguments={"a": 2, "b": 40})]
    assert response.finish_reason == "tool_calls" and response.message.content is None
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 30, 150)
    expected = sum(
        litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=120, completion_tokens=30)
    )
    assert expected > 0 and response.cost == pytest.approx(expected)
    assert response.latency_ms >= 0


async def test_text_reply_unknown_price_and_response_format(
    litellm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = litellm.ModelResponse(
        model="my-private-model",
        choices=[{"finish_reason": "stop", "message": {"role": "assistant", "content": "{}"}}],
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    )
    fake = FakeAcompletion(raw)
    monkeypatch.setattr(litellm, "acompletion", fake)
    schema = {"title": "Answer", "type": "object", "properties": {}}

    response = await LiteLLMModel("hosted_vllm/my-private-model").complete(
        [Message.user("json please")], settings=ModelSettings(response_format=schema, max_tokens=5)
    )

    assert response.text == "{}" and response.cost == 0.0 and response.finish_reason == "stop"
    request = fake.calls[0]
    assert request["timeout"] == 60.0 and request["max_tokens"] == 5 and "tools" not in request
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": schema},
    }


@pytest.mark.parametrize(
    ("error_name", "kind", "retryable"),
    [
        ("RateLimitError", "rate_limit", True),
        ("Timeout", "timeout", True),
        ("InternalServerError", "server", True),
        ("APIConnectionError", "connection", True),
        ("BadRequestError", "bad_request", False),
        ("AuthenticationError", "auth", False),
        ("ContextWindowExceededError", "context_window", False),
    ],
)
async def test_provider_errors_become_one_line_llm_errors(
    litellm: Any, monkeypatch: pytest.MonkeyPatch, error_name: str, kind: str, retryable: bool
) -> None:
    error = getattr(litellm, error_name)(
        message="provider said no\nsecond line", llm_provider="openai", model="gpt-4o-mini"
    )
    monkeypatch.setattr(litellm, "acompletion", FakeAcompletion(error))
    with pytest.raises(LLMError) as info:
        await LiteLLMModel("openai/gpt-4o-mini").complete([Message.user("hi")])
    message = str(info.value)
    assert "\n" not in message and "provider said no second line" in message
    assert message.startswith("openai/gpt-4o-mini: ")
    assert (info.value.data["kind"], info.value.data["retryable"]) == (kind, retryable)
    assert isinstance(info.value.__cause__, error.__class__)


async def test_call_is_bounded_by_the_timeout(
    litellm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang(**_: Any) -> Any:
        await asyncio.sleep(30)

    monkeypatch.setattr(litellm, "acompletion", hang)
    monkeypatch.setattr(litellm_client, "_TIMEOUT_GRACE_S", 0.0)
    with pytest.raises(LLMError, match="timed out") as info:
        await LiteLLMModel("openai/gpt-4o-mini", timeout=0.05).complete([Message.user("hi")])
    assert info.value.data["kind"] == "timeout" and info.value.data["retryable"]


async def test_invalid_tool_arguments_are_a_retryable_llm_error(
    litellm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tool_call_response(litellm)
    raw.choices[0].message.tool_calls[0].function.arguments = '{"a": 2,'
    monkeypatch.setattr(litellm, "acompletion", FakeAcompletion(raw))
    with pytest.raises(LLMError, match="invalid JSON arguments for tool 'add'") as info:
        await LiteLLMModel("openai/gpt-4o-mini").complete([Message.user("hi")])
    assert info.value.data["kind"] == "invalid_output" and info.value.data["retryable"]


def test_empty_model_id_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        LiteLLMModel("")


# -- streaming ----------------------------------------------------------------------------------


async def test_stream_yields_text_and_assembles_tool_call_deltas(
    litellm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> Any:
        return litellm.ModelResponseStream(
            model="gpt-4o-mini",
            choices=[{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        )

    def call_delta(index: int, arguments: str, **head: Any) -> dict[str, Any]:
        function = {"arguments": arguments, **({"name": head["name"]} if head else {})}
        return {"index": index, "function": function, **({"id": head["id"]} if head else {})}

    chunks = [
        chunk({"role": "assistant", "content": "Adding"}),
        chunk({"content": " now."}),
        chunk({"tool_calls": [call_delta(0, '{"a": ', id="c1", name="add")]}),
        chunk({"tool_calls": [call_delta(1, "", id="c2", name="add")]}),
        chunk({"tool_calls": [call_delta(0, "1, "), call_delta(1, '{"a": 5, "b": 6}')]}),
        chunk({"tool_calls": [call_delta(0, '"b": 2}')]}, finish="tool_calls"),
        chunk({}, usage={"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}),
    ]
    calls: list[dict[str, Any]] = []

    async def fake(**kwargs: Any) -> AsyncIterator[Any]:
        calls.append(kwargs)

        async def gen() -> AsyncIterator[Any]:
            for item in chunks:
                yield item

        return gen()

    monkeypatch.setattr(litellm, "acompletion", fake)
    events = [
        e async for e in LiteLLMModel("openai/gpt-4o-mini").stream(CONVERSATION, tools=[TOOL])
    ]

    assert events[:2] == [TextDelta(text="Adding"), TextDelta(text=" now.")]
    final = events[-1]
    assert isinstance(final, ModelResponse) and len(events) == 3
    assert final.text == "Adding now." and final.finish_reason == "tool_calls"
    assert final.tool_calls == [
        ToolCall(id="c1", name="add", arguments={"a": 1, "b": 2}),
        ToolCall(id="c2", name="add", arguments={"a": 5, "b": 6}),
    ]
    assert final.usage.total_tokens == 52 and final.cost > 0
    assert calls[0]["stream"] is True and calls[0]["timeout"] == 60.0
    assert calls[0]["stream_options"] == {"include_usage": True}

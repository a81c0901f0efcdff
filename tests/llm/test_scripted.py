"""The fakes that ship in the package: ScriptedLLM (lists, functions, tool calls) and TestModel."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from agentforge.errors import LLMError
from agentforge.llm import (
    LLM,
    Message,
    ModelResponse,
    ModelSettings,
    ScriptedLLM,
    TestModel,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
    resolve_model,
)
from agentforge.llm._schema import minimal_instance

USER = [Message.system("be brief"), Message.user("what is two plus two")]
SEARCH = ToolSpec(
    name="search",
    description="Search the web.",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["query"],
    },
)


# -- ScriptedLLM --------------------------------------------------------------------------------


async def test_replies_in_order_and_calls_are_recorded() -> None:
    llm = ScriptedLLM(["first", Message.assistant("second")], model_id="scripted-a")
    settings = ModelSettings(temperature=0)

    one = await llm.complete(USER, tools=[SEARCH], settings=settings)
    two = await llm.complete([*USER, one.message, Message.user("again")])

    assert (one.text, two.text) == ("first", "second")
    assert one.model == "scripted-a" and one.cost == 0.0 and one.finish_reason == "stop"
    assert llm.remaining == 0 and len(llm.calls) == 2
    messages, tools, got_settings = llm.calls[0]
    assert messages == tuple(USER) and tools == (SEARCH,) and got_settings is settings
    assert llm.calls[1].messages[-1].content == "again" and llm.calls[1].settings is None


async def test_exhausted_script_raises_a_clear_error() -> None:
    llm = ScriptedLLM(["only"])
    await llm.complete(USER)
    with pytest.raises(LLMError, match=r"no reply left: 1 scripted, call 2 received") as info:
        await llm.complete([Message.user("one more")])
    assert "one more" in str(info.value) and info.value.data["retryable"] is False


async def test_function_replies_see_messages_and_tools() -> None:
    def echo(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str:
        return f"{messages[-1].content} ({len(tools)} tools)"

    llm = ScriptedLLM(echo)
    assert (await llm.complete(USER, tools=[SEARCH])).text == "what is two plus two (1 tools)"
    assert (await llm.complete([Message.user("hi")])).text == "hi (0 tools)"
    assert llm.remaining == 0 and len(llm.calls) == 2


async def test_list_items_may_be_functions_responses_and_errors() -> None:
    canned = ModelResponse(message=Message.assistant("canned"), model="m", cost=0.25)
    llm = ScriptedLLM(
        [
            lambda messages, tools: f"saw {len(messages)} messages",
            canned,
            LLMError("provider down", retryable=True),
        ]
    )
    assert (await llm.complete(USER)).text == "saw 2 messages"
    assert await llm.complete(USER) is canned
    with pytest.raises(LLMError, match="provider down"):
        await llm.complete(USER)


async def test_tool_call_helper_scripts_a_tool_call_with_deterministic_ids() -> None:
    llm = ScriptedLLM(
        [
            ScriptedLLM.tool_call("search", query="llama", limit=3),
            Message.assistant(
                tool_calls=[ToolCall(id="", name="a"), ToolCall(id="mine", name="b")]
            ),
        ]
    )
    first = await llm.complete(USER, tools=[SEARCH])
    second = await llm.complete(USER)

    assert first.finish_reason == "tool_calls" and first.text == ""
    assert first.tool_calls == [
        ToolCall(id="call_0_0", name="search", arguments={"query": "llama", "limit": 3})
    ]
    assert [call.id for call in second.tool_calls] == ["call_1_0", "mine"]


async def test_usage_counts_whitespace_tokens() -> None:
    llm = ScriptedLLM(["four is the answer", ScriptedLLM.tool_call("search", query="x")])
    text = await llm.complete(USER)  # "be brief" + "what is two plus two" = 2 + 5
    assert text.usage == Usage(prompt_tokens=7, completion_tokens=4, total_tokens=11)
    call = await llm.complete([Message.user("go")])  # 1 for the call + '{"query": "x"}' = 2
    assert call.usage == Usage(prompt_tokens=1, completion_tokens=3, total_tokens=4)
    assert text.usage + call.usage == Usage(prompt_tokens=8, completion_tokens=7, total_tokens=15)


async def test_a_reply_must_be_an_assistant_message() -> None:
    with pytest.raises(LLMError, match="assistant Message"):
        await ScriptedLLM([Message.user("not me")]).complete(USER)


async def test_default_stream_yields_the_text_then_the_response() -> None:
    events = [event async for event in ScriptedLLM(["hello there"]).stream(USER)]
    assert events[0] == TextDelta(text="hello there")
    assert isinstance(events[1], ModelResponse) and events[1].text == "hello there"
    assert len(events) == 2


def test_settings_merge_keeps_only_what_the_override_sets() -> None:
    defaults = ModelSettings(temperature=0.2, max_tokens=100, timeout=30)
    merged = defaults.merged(ModelSettings(max_tokens=5, tool_choice="required"))
    assert (merged.temperature, merged.max_tokens, merged.timeout) == (0.2, 5, 30)
    assert merged.tool_choice == "required" and defaults.merged(None) is defaults
    assert ModelSettings().timeout == 60.0


# -- the `test` model ---------------------------------------------------------------------------


class Address(BaseModel):
    street: str = Field(min_length=3)
    zip_code: int = Field(ge=1000, lt=100000)


class Booking(BaseModel):
    guest: str
    nights: int = Field(gt=0)
    rate: float = Field(ge=10.5)
    kind: Literal["single", "double"]
    address: Address
    tags: list[str] = Field(min_length=2)
    email: str = Field(json_schema_extra={"format": "email"})
    note: str | None = None
    confirmed: bool = False


BOOK = ToolSpec(name="book", description="Book a room.", parameters=Booking.model_json_schema())


async def test_test_model_forced_tool_call_has_schema_valid_arguments() -> None:
    model = resolve_model("test")
    assert isinstance(model, TestModel) and isinstance(model, LLM) and model.model_id == "test"

    response = await model.complete(
        USER, tools=[BOOK, SEARCH], settings=ModelSettings(tool_choice="required")
    )

    [call] = response.tool_calls
    assert call.name == "book" and call.id == "call_0_0"
    jsonschema.validate(call.arguments, BOOK.parameters)
    Booking.model_validate(call.arguments)

    named = await model.complete(
        USER, tools=[BOOK, SEARCH], settings=ModelSettings(tool_choice="search")
    )
    assert named.tool_calls[0].name == "search" and named.tool_calls[0].arguments == {"query": "a"}


async def test_test_model_answers_text_and_structured_output() -> None:
    model = TestModel("all done")
    assert (await model.complete(USER, tools=[SEARCH])).text == "all done"  # auto: no call
    reply = await model.complete(
        USER, settings=ModelSettings(response_format=Booking.model_json_schema())
    )
    Booking.model_validate_json(reply.text)
    wrapped = {"type": "json_schema", "json_schema": {"name": "b", "schema": SEARCH.parameters}}
    reply = await model.complete(USER, settings=ModelSettings(response_format=wrapped))
    assert json.loads(reply.text) == {"query": "a"}
    with pytest.raises(LLMError, match="unknown tool 'nope'"):
        await model.complete(USER, tools=[SEARCH], settings=ModelSettings(tool_choice="nope"))
    assert len(model.calls) == 4  # never exhausted, still recorded


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "minLength": 3}, "aaa"),
        ({"type": ["null", "integer"], "exclusiveMinimum": 4}, 5),
        ({"type": "number", "maximum": -2}, -2.0),
        ({"enum": ["x", "y"]}, "x"),
        ({"anyOf": [{"type": "null"}, {"type": "boolean"}]}, False),
        ({"allOf": [{"$ref": "#/$defs/A"}], "$defs": {"A": {"const": 7}}}, 7),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [0, 0]),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, {}),
    ],
)
def test_minimal_instance(schema: dict, expected: object) -> None:
    value = minimal_instance(schema)
    assert value == expected
    jsonschema.validate(value, schema)

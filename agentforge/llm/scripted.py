"""Deterministic fake models that ship in the package: `ScriptedLLM` and the `test` model.

    llm = ScriptedLLM(["Let me look.", ScriptedLLM.tool_call("search", query="x"), "Done."])
    llm = ScriptedLLM(lambda messages, tools: f"echo: {messages[-1].content}")

Usage is counted as whitespace-separated tokens (prompt: every message; completion: the reply),
cost is 0, and every call is recorded in `calls` as (messages, tools, settings).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from agentforge.errors import LLMError
from agentforge.llm._schema import minimal_instance
from agentforge.llm.base import LLM
from agentforge.llm.types import Message, ModelResponse, ModelSettings, ToolCall, ToolSpec, Usage

ReplyValue = str | Message | ModelResponse
ReplyFunction = Callable[[Sequence[Message], Sequence[ToolSpec]], ReplyValue]
Reply = ReplyValue | BaseException | ReplyFunction
"""A scripted reply: text, an assistant message, a full response, an exception to raise, or a
function of (messages, tools) returning one of the first three."""


class ScriptedCall(NamedTuple):
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    settings: ModelSettings | None


def count_tokens(text: str | None) -> int:
    """The deterministic token count of the fakes: whitespace-separated words."""
    return len(text.split()) if text else 0


def _message_tokens(message: Message) -> int:
    tokens = count_tokens(message.content)
    for call in message.tool_calls or []:
        tokens += 1 + count_tokens(json.dumps(call.arguments))
    return tokens


class ScriptedLLM(LLM):
    """Replies from a list, in order (an LLMError when exhausted), or from a function.

    A tool call scripted with `ScriptedLLM.tool_call` gets the id `call_<n>_<i>` (n: index of the
    call to this model, i: index of the tool call in the reply) unless it already has one.
    """

    def __init__(
        self, replies: Sequence[Reply] | ReplyFunction | ReplyValue, *, model_id: str = "scripted"
    ) -> None:
        self.model_id = model_id
        self._function: ReplyFunction | None = None
        self._script: list[Reply] = []
        if isinstance(replies, str | Message | ModelResponse):
            self._script = [replies]
        elif callable(replies):
            self._function = replies
        else:
            self._script = list(replies)
        self._position = 0
        self._lock = threading.Lock()
        self.calls: list[ScriptedCall] = []

    @staticmethod
    def tool_call(name: str, /, **arguments: Any) -> Message:
        """An assistant reply that calls tool `name` with `arguments`."""
        return Message.assistant(tool_calls=[ToolCall(id="", name=name, arguments=arguments)])

    @property
    def remaining(self) -> int:
        """How many scripted replies are left (0 for a function-backed model)."""
        return len(self._script) - self._position

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        with self._lock:
            index = len(self.calls)
            self.calls.append(ScriptedCall(tuple(messages), tuple(tools), settings))
            reply = self._pick(index, messages, tools, settings)
        return self._respond(index, messages, tools, reply)

    def _pick(
        self,
        index: int,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        settings: ModelSettings | None,
    ) -> Reply:
        """The reply to call `index` (runs under the lock; functions are called outside it)."""
        if self._function is not None:
            return self._function
        if self._position >= len(self._script):
            last = messages[-1].content if messages else None
            raise LLMError(
                f"ScriptedLLM {self.model_id!r} has no reply left: {len(self._script)} scripted, "
                f"call {index + 1} received (last message: {(last or '')[:80]!r})",
                model=self.model_id,
                kind="scripted_exhausted",
                retryable=False,
            )
        reply = self._script[self._position]
        self._position += 1
        return reply

    def _respond(
        self, index: int, messages: Sequence[Message], tools: Sequence[ToolSpec], reply: Reply
    ) -> ModelResponse:
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            reply = reply(messages, tools)
        if isinstance(reply, ModelResponse):
            return reply
        message = self._as_message(index, reply)
        prompt = sum(_message_tokens(m) for m in messages)
        completion = _message_tokens(message)
        return ModelResponse(
            message=message,
            usage=Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            ),
            cost=0.0,
            model=self.model_id,
            latency_ms=0.0,
            finish_reason="tool_calls" if message.tool_calls else "stop",
        )

    def _as_message(self, index: int, reply: Any) -> Message:
        if isinstance(reply, str):
            return Message.assistant(reply)
        if not isinstance(reply, Message) or reply.role != "assistant":
            raise LLMError(
                f"ScriptedLLM {self.model_id!r}: a reply must be text, an assistant Message or a "
                f"ModelResponse, got {reply!r:.120}",
                model=self.model_id,
                kind="scripted_invalid",
                retryable=False,
            )
        if not reply.tool_calls or all(call.id for call in reply.tool_calls):
            return reply
        calls = [
            call if call.id else call.model_copy(update={"id": f"call_{index}_{i}"})
            for i, call in enumerate(reply.tool_calls)
        ]
        return reply.model_copy(update={"tool_calls": calls})


def response_schema(response_format: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema inside a `ModelSettings.response_format` (None for plain text)."""
    kind = response_format.get("type")
    if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        return response_format["json_schema"].get("schema", {})
    if kind == "json_object":
        return {"type": "object"}
    if kind == "text":
        return None
    return response_format


class TestModel(ScriptedLLM):
    """The offline `test` model: answers from the request alone, never exhausted.

    - a forced tool call (`tool_choice` "required" → the first tool, or a tool name) returns a call
      with arguments synthesised from the tool's JSON schema (strings "a", numbers 0, …), except
      that when the runtime's `finish` tool is offered with "required", it answers `text` by it;
    - a `response_format` JSON schema returns a minimal valid JSON object as text;
    - otherwise it returns `text`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, text: str = "test model reply", *, model_id: str = "test") -> None:
        super().__init__([], model_id=model_id)
        self.text = text

    def _pick(
        self,
        index: int,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        settings: ModelSettings | None,
    ) -> Reply:
        choice = settings.tool_choice if settings else None
        if tools and choice and choice not in ("auto", "none"):
            tool = (
                tools[0]
                if choice == "required"
                else next((t for t in tools if t.name == choice), None)
            )
            if tool is None:
                raise LLMError(
                    f"tool_choice names unknown tool {choice!r}; tools: "
                    f"{', '.join(t.name for t in tools)}",
                    model=self.model_id,
                    kind="bad_request",
                    retryable=False,
                )
            finish = next((t for t in tools if t.name == "finish"), None)
            if choice == "required" and finish is not None:  # the runtime's way to answer
                tool, arguments = finish, {"answer": self.text}
            else:
                arguments = minimal_instance(tool.parameters)
                arguments = arguments if isinstance(arguments, dict) else {}
            call = ToolCall(id="", name=tool.name, arguments=arguments)
            return Message.assistant(tool_calls=[call])
        schema = (
            response_schema(settings.response_format)
            if settings and settings.response_format
            else None
        )
        if schema is not None:
            return json.dumps(minimal_instance(schema))
        return self.text

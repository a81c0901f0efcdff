"""AgentForge's own message types: what goes into a model call and what comes out.

These are provider-neutral; only `litellm_client` converts them to and from the OpenAI wire format.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """One tool call requested by the model; `arguments` is already parsed JSON."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One chat message. Assistant messages may carry tool calls; tool messages answer one."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str, *, name: str | None = None) -> Message:
        return cls(role="user", content=content, name=name)

    @classmethod
    def assistant(
        cls, content: str | None = None, tool_calls: list[ToolCall] | None = None
    ) -> Message:
        return cls(role="assistant", content=content, tool_calls=tool_calls or None)

    @classmethod
    def tool(cls, content: str, *, tool_call_id: str, name: str | None = None) -> Message:
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)


class ToolSpec(BaseModel):
    """A tool as the model sees it: name, description and a JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    """Token counts of one call (or a sum of calls)."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class ModelResponse(BaseModel):
    """The result of one model call. `cost` is in USD, 0.0 when the price is unknown."""

    message: Message
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    model: str
    latency_ms: float = 0.0
    finish_reason: str | None = None

    @property
    def text(self) -> str:
        return self.message.content or ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        return list(self.message.tool_calls or [])


class ModelSettings(BaseModel):
    """Per-call model settings; None means "provider default".

    `tool_choice` is "auto", "required", "none" or the name of one tool to force.
    `response_format` is a JSON schema the reply must follow (or an OpenAI `response_format`
    dict with a "type" of "json_schema"/"json_object", passed through as is).
    """

    model_config = ConfigDict(frozen=True)

    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    tool_choice: str | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None

    def merged(self, override: ModelSettings | None) -> ModelSettings:
        """These settings with the fields explicitly set in `override` taking precedence."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(include=override.model_fields_set))


class TextDelta(BaseModel):
    """A piece of reply text, as streamed."""

    text: str


StreamEvent = TextDelta | ModelResponse
"""What `LLM.stream` yields: text deltas, then exactly one final `ModelResponse`."""

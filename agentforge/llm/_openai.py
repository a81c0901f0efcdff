"""The OpenAI chat wire format that litellm speaks, to and from AgentForge's types.

Pure functions, no litellm import: building the request, parsing responses and streamed chunks,
and turning provider exceptions into one-line `LLMError`s that say whether a retry may help.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentforge.errors import LLMError
from agentforge.llm.types import Message, ModelSettings, ToolCall, ToolSpec, Usage

_TOOL_CHOICE_KEYWORDS = frozenset({"auto", "required", "none"})
_RESPONSE_FORMAT_TYPES = frozenset({"json_schema", "json_object", "text"})
_MAX_ERROR_CHARS = 500


def field_of(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


# -- our types -> OpenAI wire format ------------------------------------------------------------


def to_openai_message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "tool":
        out["content"] = message.content or ""
        out["tool_call_id"] = message.tool_call_id
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    return out


def to_openai_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def to_openai_response_format(response_format: dict[str, Any]) -> dict[str, Any]:
    if response_format.get("type") in _RESPONSE_FORMAT_TYPES:
        return response_format
    name = str(response_format.get("title") or "response")
    return {"type": "json_schema", "json_schema": {"name": name, "schema": response_format}}


def build_request(
    model: str,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    settings: ModelSettings,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The keyword arguments of `litellm.acompletion` for one call (always with `timeout=`)."""
    request: dict[str, Any] = {
        **extra,
        "model": model,
        "messages": [to_openai_message(message) for message in messages],
        "timeout": settings.timeout,
    }
    if tools:
        request["tools"] = [to_openai_tool(tool) for tool in tools]
        if settings.tool_choice in _TOOL_CHOICE_KEYWORDS:
            request["tool_choice"] = settings.tool_choice
        elif settings.tool_choice:
            request["tool_choice"] = {
                "type": "function",
                "function": {"name": settings.tool_choice},
            }
    for name in ("temperature", "max_tokens", "seed"):
        value = getattr(settings, name)
        if value is not None:
            request[name] = value
    if settings.response_format is not None:
        request["response_format"] = to_openai_response_format(settings.response_format)
    return request


# -- OpenAI wire format -> our types ------------------------------------------------------------


def parse_arguments(model: str, name: str, raw: Any) -> dict[str, Any]:
    """Tool-call arguments as a dict; invalid JSON is the model's fault (retryable LLMError)."""
    if isinstance(raw, dict):
        return raw
    if raw is None or not str(raw).strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        value = exc
    if not isinstance(value, dict):
        raise LLMError(
            f"{model} returned invalid JSON arguments for tool {name!r}: {_one_line(str(raw))}",
            model=model,
            kind="invalid_output",
            retryable=True,
        )
    return value


def parse_tool_calls(model: str, raw_calls: Any) -> list[ToolCall] | None:
    calls = []
    for position, raw in enumerate(raw_calls or []):
        function = field_of(raw, "function")
        name = field_of(function, "name") or ""
        call_id = field_of(raw, "id") or f"call_{position}"
        arguments = parse_arguments(model, name, field_of(function, "arguments"))
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return calls or None


def parse_usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    prompt = int(field_of(raw, "prompt_tokens") or 0)
    completion = int(field_of(raw, "completion_tokens") or 0)
    total = int(field_of(raw, "total_tokens") or prompt + completion)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


# -- errors -------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_ERROR_CHARS else line[: _MAX_ERROR_CHARS - 1] + "…"


def classify(exc: BaseException) -> tuple[str, bool]:
    """(kind, retryable) of a provider exception, by status code and litellm class name."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if isinstance(exc, TimeoutError) or "Timeout" in name:
        return "timeout", True
    if status == 429 or "RateLimit" in name:
        return "rate_limit", True
    if "ContextWindow" in name:
        return "context_window", False
    if "Connection" in name:
        return "connection", True
    if isinstance(status, int) and status >= 500:
        return "server", True
    if status in (401, 403):
        return "auth", False
    if isinstance(status, int) and 400 <= status < 500:
        return "bad_request", False
    return "other", False


def to_llm_error(model: str, exc: BaseException) -> LLMError:
    if isinstance(exc, LLMError):
        return exc
    kind, retryable = classify(exc)
    detail = _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not str(exc):
        detail = "request timed out"
    return LLMError(
        f"{model}: {detail}",
        model=model,
        kind=kind,
        retryable=retryable,
        status=getattr(exc, "status_code", None),
    )


class StreamAssembly:
    """Accumulates streamed chunks: text, tool-call deltas by index, finish reason, usage."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.model: str | None = None

    def add(self, chunk: Any) -> str:
        self.model = self.model or field_of(chunk, "model")
        if field_of(chunk, "usage") is not None:
            self.usage = field_of(chunk, "usage")
        choices = field_of(chunk, "choices") or []
        if not choices:
            return ""
        choice = choices[0]
        self.finish_reason = field_of(choice, "finish_reason") or self.finish_reason
        delta = field_of(choice, "delta")
        for position, part in enumerate(field_of(delta, "tool_calls") or []):
            index = field_of(part, "index")
            call = self.calls.setdefault(
                position if index is None else index, {"id": None, "name": "", "arguments": ""}
            )
            call["id"] = field_of(part, "id") or call["id"]
            function = field_of(part, "function")
            name = field_of(function, "name") or ""
            if name != call["name"]:  # some providers repeat the full name in every delta
                call["name"] += name
            call["arguments"] += field_of(function, "arguments") or ""
        text = field_of(delta, "content") or ""
        if text:
            self.text.append(text)
        return text

    def message(self, model: str) -> Message:
        raw_calls = [
            {"id": call["id"], "function": {"name": call["name"], "arguments": call["arguments"]}}
            for _, call in sorted(self.calls.items())
        ]
        content = "".join(self.text) or None
        return Message.assistant(content, parse_tool_calls(model, raw_calls))

"""The litellm adapter: any provider litellm supports behind the `LLM` interface.

This is the only module that imports litellm, lazily, inside `_litellm()`, after setting
`LITELLM_LOCAL_MODEL_COST_MAP=True` (no network fetch of the price list at import).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from agentforge.errors import ConfigError, LLMError
from agentforge.llm._openai import (
    StreamAssembly,
    build_request,
    field_of,
    parse_tool_calls,
    parse_usage,
    to_llm_error,
)
from agentforge.llm.base import LLM
from agentforge.llm.guard import check_model_request
from agentforge.llm.types import (
    Message,
    ModelResponse,
    ModelSettings,
    StreamEvent,
    TextDelta,
    ToolSpec,
    Usage,
)

_SETTINGS_FIELDS = frozenset(ModelSettings.model_fields)
_TIMEOUT_GRACE_S = 1.0


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def _cost(litellm: Any, model: str, raw_response: Any, usage: Usage) -> float:
    """USD cost from litellm's local price map; 0.0 when unknown. Never raises."""
    attempts: list[Callable[[], Any]] = []
    if raw_response is not None:
        hidden = getattr(raw_response, "_hidden_params", None) or {}
        attempts.append(lambda: hidden.get("response_cost"))
        attempts.append(lambda: litellm.completion_cost(completion_response=raw_response))
    attempts.append(
        lambda: sum(
            litellm.cost_per_token(
                model=model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
            )
        )
    )
    for attempt in attempts:
        try:
            value = attempt()
        except Exception:
            continue
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return 0.0


def _estimate_usage(litellm: Any, model: str, request: dict[str, Any], message: Message) -> Usage:
    """Token counts by litellm's tokenizer, for streams whose provider sent no usage."""
    try:
        prompt = int(litellm.token_counter(model=model, messages=request["messages"]))
        reply = message.content or ""
        if message.tool_calls:
            reply += json.dumps([call.model_dump() for call in message.tool_calls])
        completion = int(litellm.token_counter(model=model, text=reply)) if reply else 0
    except Exception:
        return Usage()
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


# -- the adapter --------------------------------------------------------------------------------


class LiteLLMModel(LLM):
    """`LiteLLMModel("openai/gpt-4o-mini", temperature=0, api_base=...)`.

    Keyword arguments naming `ModelSettings` fields are default settings (per-call settings win);
    any other keyword (api_base, api_key, …) is passed to `litellm.acompletion` as is.
    """

    def __init__(self, model: str, **defaults: Any) -> None:
        if not model:
            raise ConfigError("LiteLLMModel needs a model id, e.g. 'openai/gpt-4o-mini'")
        self.model_id = model
        self.defaults = ModelSettings(
            **{k: v for k, v in defaults.items() if k in _SETTINGS_FIELDS}
        )
        self.extra = {k: v for k, v in defaults.items() if k not in _SETTINGS_FIELDS}

    def _prepare(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], settings: ModelSettings | None
    ) -> tuple[Any, ModelSettings, dict[str, Any]]:
        check_model_request(self.model_id)
        merged = self.defaults.merged(settings)
        request = build_request(self.model_id, messages, tools, merged, self.extra)
        return _litellm(), merged, request

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        litellm, merged, request = self._prepare(messages, tools, settings)
        started = time.perf_counter()
        try:
            raw = await asyncio.wait_for(
                litellm.acompletion(**request), merged.timeout + _TIMEOUT_GRACE_S
            )
        except Exception as exc:
            raise to_llm_error(self.model_id, exc) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        return self._parse(litellm, raw, latency_ms)

    def _parse(self, litellm: Any, raw: Any, latency_ms: float) -> ModelResponse:
        choices = field_of(raw, "choices") or []
        if not choices:
            raise LLMError(f"{self.model_id} returned no choices", model=self.model_id)
        choice = choices[0]
        raw_message = field_of(choice, "message")
        message = Message.assistant(
            field_of(raw_message, "content"),
            parse_tool_calls(self.model_id, field_of(raw_message, "tool_calls")),
        )
        usage = parse_usage(field_of(raw, "usage"))
        return ModelResponse(
            message=message,
            usage=usage,
            cost=_cost(litellm, self.model_id, raw, usage),
            model=field_of(raw, "model") or self.model_id,
            latency_ms=latency_ms,
            finish_reason=field_of(choice, "finish_reason"),
        )

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream via `acompletion(stream=True)`; `timeout` also bounds the wait for each chunk."""
        litellm, merged, request = self._prepare(messages, tools, settings)
        request.update(stream=True, stream_options={"include_usage": True})
        started = time.perf_counter()
        assembly = StreamAssembly()
        try:
            chunks = await asyncio.wait_for(
                litellm.acompletion(**request), merged.timeout + _TIMEOUT_GRACE_S
            )
            iterator = aiter(chunks)
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(iterator), merged.timeout)
                except StopAsyncIteration:
                    break
                text = assembly.add(chunk)
                if text:
                    yield TextDelta(text=text)
        except Exception as exc:
            raise to_llm_error(self.model_id, exc) from exc
        message = assembly.message(self.model_id)
        if assembly.usage is not None:
            usage = parse_usage(assembly.usage)
        else:
            usage = _estimate_usage(litellm, self.model_id, request, message)
        yield ModelResponse(
            message=message,
            usage=usage,
            cost=_cost(litellm, self.model_id, None, usage),
            model=assembly.model or self.model_id,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=assembly.finish_reason,
        )

"""Validated structured output: ask a model for JSON matching a pydantic model. Anything that
fails to parse or validate is rejected (None), never applied."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from agentforge.errors import LLMError
from agentforge.llm import LLM, Message, ModelResponse, ModelSettings

M = TypeVar("M", bound=BaseModel)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json_object(text: str) -> object | None:
    """The first JSON object in a reply (bare, fenced, or embedded in prose)."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        candidate = candidate.strip()
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = json.JSONDecoder().raw_decode(candidate[start:])
                return value
            except json.JSONDecodeError:
                start = candidate.find("{", start + 1)
    return None


async def ask_structured(llm: LLM, messages: list[Message], model: type[M], *,
                         max_tokens: int = 512) -> tuple[M | None, ModelResponse | None]:
    """One call with the model's JSON schema as response format; (value or None, response)."""
    settings = ModelSettings(max_tokens=max_tokens, temperature=0.0,
                             response_format=model.model_json_schema())
    try:
        response = await llm.complete(messages, settings=settings)
    except LLMError:
        return None, None
    data = parse_json_object(response.text)
    if data is None:
        return None, response
    try:
        return model.model_validate(data), response
    except ValidationError:
        return None, response

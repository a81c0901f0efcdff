"""The one narrow LLM interface every model, fake and wrapper implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence

from agentforge.llm.types import (
    Message,
    ModelResponse,
    ModelSettings,
    StreamEvent,
    TextDelta,
    ToolSpec,
)


class LLM(ABC):
    """A chat model: `complete` returns one `ModelResponse`; `stream` yields deltas then it.

    Failures raise `LLMError` (with `data["retryable"]` telling wrappers whether to retry).
    """

    model_id: str

    @abstractmethod
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Send the conversation (and the tools the model may call) and return its reply."""

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Yield `TextDelta`s, then the final `ModelResponse`; by default wraps `complete`."""
        response = await self.complete(messages, tools=tools, settings=settings)
        if response.message.content:
            yield TextDelta(text=response.message.content)
        yield response

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r})"

"""Retry, fallback and budgets as wrappers around any `LLM`, never as flags.

    llm = Budgeted(Retrying(Fallback([primary, backup])), Budget(max_steps=20, max_cost=0.5))

Order matters: `Budgeted` outside `Retrying` counts one step per logical call; inside, one per
attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from agentforge.errors import BudgetExceeded, ConfigError, LLMError
from agentforge.llm.base import LLM
from agentforge.llm.budget import Budget, BudgetMeter
from agentforge.llm.types import Message, ModelResponse, ModelSettings, StreamEvent, ToolSpec


def is_retryable(error: LLMError) -> bool:
    """True for timeouts, rate limits, connection and 5xx errors (`error.data["retryable"]`)."""
    return bool(error.data.get("retryable", False))


class Retrying(LLM):
    """Retry `inner` on retryable `LLMError`s, up to `attempts` tries in all.

    Waits `backoff_s * 2**k` between tries (k = 0, 1, …), or the provider's `retry_after` when the
    error carries one. Other errors, and the last failure, propagate unchanged. A stream is retried
    only while it has yielded nothing.
    """

    def __init__(
        self,
        inner: LLM,
        attempts: int = 3,
        backoff_s: float = 0.5,
        retry_on: Callable[[LLMError], bool] = is_retryable,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"Retrying needs attempts >= 1, got {attempts}", attempts=attempts)
        self.inner = inner
        self.model_id = inner.model_id
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.retry_on = retry_on
        self._sleep = sleep

    async def _wait(self, attempt: int, error: LLMError) -> None:
        retry_after = error.data.get("retry_after")
        delay = retry_after if isinstance(retry_after, int | float) else self.backoff_s * 2**attempt
        if delay > 0:
            await self._sleep(delay)

    def _should_retry(self, attempt: int, error: LLMError) -> bool:
        return attempt + 1 < self.attempts and self.retry_on(error)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        attempt = 0
        while True:
            try:
                return await self.inner.complete(messages, tools=tools, settings=settings)
            except LLMError as error:
                if not self._should_retry(attempt, error):
                    raise
                await self._wait(attempt, error)
                attempt += 1

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[StreamEvent]:
        attempt = 0
        while True:
            started = False
            try:
                async for event in self.inner.stream(messages, tools=tools, settings=settings):
                    started = True
                    yield event
                return
            except LLMError as error:
                if started or not self._should_retry(attempt, error):
                    raise
                await self._wait(attempt, error)
                attempt += 1


class Fallback(LLM):
    """Try each model in order; on `LLMError` move to the next. All failing → one LLMError."""

    def __init__(self, models: Sequence[LLM]) -> None:
        if not models:
            raise ConfigError("Fallback needs at least one model")
        self.models = list(models)
        self.model_id = models[0].model_id

    def _all_failed(self, errors: list[LLMError]) -> LLMError:
        summary = "; ".join(f"{m.model_id}: {e}" for m, e in zip(self.models, errors, strict=True))
        return LLMError(
            f"all {len(errors)} models failed: {summary}",
            errors=errors,
            kind="fallback_exhausted",
            retryable=any(is_retryable(error) for error in errors),
        )

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        errors: list[LLMError] = []
        for model in self.models:
            try:
                return await model.complete(messages, tools=tools, settings=settings)
            except LLMError as error:
                errors.append(error)
        raise self._all_failed(errors) from errors[-1]

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Falls back only while the failing model has yielded nothing."""
        errors: list[LLMError] = []
        for model in self.models:
            started = False
            try:
                async for event in model.stream(messages, tools=tools, settings=settings):
                    started = True
                    yield event
                return
            except LLMError as error:
                if started:
                    raise
                errors.append(error)
        raise self._all_failed(errors) from errors[-1]


class Budgeted(LLM):
    """Enforce a budget on `inner`: check and reserve a step before each call, record usage after.

    Pass a `Budget` for a private meter, or a `BudgetMeter` to share one budget between models.
    `max_seconds` also bounds the call itself: a call still running when it runs out is cancelled.
    """

    def __init__(self, inner: LLM, budget: Budget | BudgetMeter) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.meter = budget if isinstance(budget, BudgetMeter) else BudgetMeter(budget)

    def _raise_if_out_of_time(self) -> None:
        """After a TimeoutError: BudgetExceeded if the wall-time budget ran out."""
        remaining = self.meter.remaining_seconds()
        if remaining is not None and remaining <= 0:
            limit = self.meter.budget.max_seconds or 0.0
            raise BudgetExceeded("seconds", limit, self.meter.elapsed()) from None

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        self.meter.begin_step()
        call = self.inner.complete(messages, tools=tools, settings=settings)
        try:
            response = await asyncio.wait_for(call, self.meter.remaining_seconds())
        except TimeoutError:
            self._raise_if_out_of_time()
            raise
        self.meter.record(response)
        return response

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[StreamEvent]:
        self.meter.begin_step()
        events = self.inner.stream(messages, tools=tools, settings=settings)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(events), self.meter.remaining_seconds())
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    self._raise_if_out_of_time()
                    raise
                if isinstance(event, ModelResponse):
                    self.meter.record(event)
                yield event
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

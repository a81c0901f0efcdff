"""Budgets are enforced (before a call once reached, after a call that crosses), and the
Retrying / Fallback wrappers retry and fall back only when they should."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from agentforge.errors import BudgetExceeded, ConfigError, LLMError
from agentforge.llm import (
    LLM,
    Budget,
    Budgeted,
    BudgetMeter,
    Fallback,
    Message,
    ModelResponse,
    ModelSettings,
    Retrying,
    ScriptedLLM,
    TextDelta,
    ToolSpec,
    Usage,
)

ASK = [Message.user("hi")]  # 1 prompt token for the scripted models


def priced(cost: float, tokens: int = 0) -> ModelResponse:
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    return ModelResponse(message=Message.assistant("ok"), model="m", cost=cost, usage=usage)


def retryable(message: str = "rate limited") -> LLMError:
    return LLMError(message, kind="rate_limit", retryable=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowLLM(LLM):
    model_id = "slow"

    def __init__(self) -> None:
        self.started = 0

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        self.started += 1
        await asyncio.sleep(30)
        raise AssertionError("should have been cancelled")


# -- budgets ------------------------------------------------------------------------------------


async def test_steps_raise_before_the_call_that_would_exceed() -> None:
    inner = ScriptedLLM(["a", "b", "c"])
    llm = Budgeted(inner, Budget(max_steps=2))
    await llm.complete(ASK)
    await llm.complete(ASK)
    with pytest.raises(BudgetExceeded) as info:
        await llm.complete(ASK)
    assert (info.value.what, info.value.limit, info.value.used) == ("steps", 2, 2)
    assert len(inner.calls) == 2  # the third call never reached the model


async def test_tokens_raise_after_crossing_then_before_any_further_call() -> None:
    inner = ScriptedLLM(["one two three", "four five six", "never"])  # 1 + 3 tokens each
    llm = Budgeted(inner, Budget(max_tokens=6))
    await llm.complete(ASK)  # 4 tokens
    with pytest.raises(BudgetExceeded, match="tokens used 8 of 6") as info:
        await llm.complete(ASK)  # 8 > 6: raised after the call, the response is kept
    assert info.value.data["response"].text == "four five six"
    with pytest.raises(BudgetExceeded, match="tokens"):
        await llm.complete(ASK)
    assert len(inner.calls) == 2


async def test_reaching_a_limit_exactly_blocks_the_next_call() -> None:
    inner = ScriptedLLM([priced(0.5), priced(0.5), priced(0.5)])
    llm = Budgeted(inner, Budget(max_cost=1.0))
    await llm.complete(ASK)
    await llm.complete(ASK)  # 1.0 of 1.0: not crossed, but reached
    with pytest.raises(BudgetExceeded) as info:
        await llm.complete(ASK)
    assert info.value.what == "cost" and len(inner.calls) == 2


async def test_cost_crossing_raises_after_the_call() -> None:
    llm = Budgeted(ScriptedLLM([priced(0.4), priced(0.4), priced(0.4)]), Budget(max_cost=1.0))
    await llm.complete(ASK)
    await llm.complete(ASK)
    with pytest.raises(BudgetExceeded) as info:
        await llm.complete(ASK)
    assert info.value.what == "cost" and info.value.used == pytest.approx(1.2)


async def test_wall_time_is_checked_before_a_call() -> None:
    clock = FakeClock()
    inner = ScriptedLLM(["a", "b"])
    meter = BudgetMeter(Budget(max_seconds=10), clock=clock)
    llm = Budgeted(inner, meter)
    clock.now += 4
    await llm.complete(ASK)
    clock.now += 7
    with pytest.raises(BudgetExceeded, match="seconds used 11 of 10"):
        await llm.complete(ASK)
    assert len(inner.calls) == 1


async def test_wall_time_cancels_a_call_that_outlives_the_budget() -> None:
    slow = SlowLLM()
    llm = Budgeted(slow, Budget(max_seconds=0.05))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BudgetExceeded) as info:
        await llm.complete(ASK)
    assert info.value.what == "seconds" and loop.time() - started < 5 and slow.started == 1


async def test_snapshot_reports_use_and_limits() -> None:
    clock = FakeClock()
    meter = BudgetMeter(Budget(max_steps=5, max_tokens=100), clock=clock)
    llm = Budgeted(ScriptedLLM([priced(0.1, tokens=30), priced(0.2, tokens=20)]), meter)
    await llm.complete(ASK)
    await llm.complete(ASK)
    clock.now += 2.5
    snap = meter.snapshot()
    assert (snap.steps, snap.tokens, snap.seconds) == (2, 50, 2.5)
    assert snap.cost == pytest.approx(0.3) and snap.max_steps == 5 and snap.max_cost is None
    assert snap.exceeded is None and snap.model_dump()["max_tokens"] == 100
    meter.record(tokens=50)
    assert meter.snapshot().exceeded == "tokens"


async def test_one_meter_is_shared_and_concurrent_calls_cannot_overspend_steps() -> None:
    meter = BudgetMeter(Budget(max_steps=5))
    planner = Budgeted(ScriptedLLM(lambda m, t: "plan"), meter)
    executor = Budgeted(ScriptedLLM(lambda m, t: "act"), meter)
    results = await asyncio.gather(
        *(model.complete(ASK) for model in [planner, executor] * 10), return_exceptions=True
    )
    assert sum(isinstance(r, ModelResponse) for r in results) == 5
    assert sum(isinstance(r, BudgetExceeded) for r in results) == 15
    assert meter.snapshot().steps == 5


def test_meter_is_thread_safe() -> None:
    meter = BudgetMeter(Budget(max_steps=50))
    granted: list[int] = []

    def worker() -> None:
        for _ in range(20):
            try:
                meter.begin_step()
            except BudgetExceeded:
                continue
            meter.record(tokens=1)
            granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 50 and meter.snapshot().tokens == 50


async def test_budgeted_stream_records_the_final_response() -> None:
    llm = Budgeted(ScriptedLLM(["one two", "three"]), Budget(max_tokens=3))
    events = [event async for event in llm.stream(ASK)]
    assert events[0] == TextDelta(text="one two") and llm.meter.snapshot().tokens == 3
    with pytest.raises(BudgetExceeded):
        [event async for event in llm.stream(ASK)]


def test_negative_limits_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_cost"):
        Budget(max_cost=-1)


# -- Retrying -----------------------------------------------------------------------------------


class Sleeps(list[float]):
    async def __call__(self, delay: float) -> None:
        self.append(delay)


async def test_retrying_retries_retryable_errors_with_backoff() -> None:
    inner = ScriptedLLM([retryable(), retryable(), "finally"])
    sleeps = Sleeps()
    llm = Retrying(inner, attempts=3, backoff_s=0.5, sleep=sleeps)
    assert (await llm.complete(ASK)).text == "finally"
    assert len(inner.calls) == 3 and sleeps == [0.5, 1.0]


async def test_retrying_gives_up_after_n_attempts() -> None:
    inner = ScriptedLLM([retryable("1"), retryable("2"), retryable("3"), "never"])
    llm = Retrying(inner, attempts=3, sleep=Sleeps())
    with pytest.raises(LLMError, match=r"^3$"):
        await llm.complete(ASK)
    assert len(inner.calls) == 3 and inner.remaining == 1


async def test_retrying_does_not_retry_other_errors() -> None:
    inner = ScriptedLLM([LLMError("bad request", retryable=False), "never"])
    with pytest.raises(LLMError, match="bad request"):
        await Retrying(inner, sleep=Sleeps()).complete(ASK)
    budget_inner = ScriptedLLM([BudgetExceeded("cost", 1, 2), "never"])
    with pytest.raises(BudgetExceeded):
        await Retrying(budget_inner, sleep=Sleeps()).complete(ASK)
    assert len(inner.calls) == 1 and len(budget_inner.calls) == 1


async def test_retrying_honours_retry_after_and_a_custom_predicate() -> None:
    sleeps = Sleeps()
    inner = ScriptedLLM([LLMError("slow down", retryable=True, retry_after=7), "ok"])
    assert (await Retrying(inner, sleep=sleeps).complete(ASK)).text == "ok"
    assert sleeps == [7]
    inner = ScriptedLLM([LLMError("flaky json", kind="invalid_output"), "ok"])
    llm = Retrying(inner, retry_on=lambda e: e.data.get("kind") == "invalid_output", sleep=sleeps)
    assert (await llm.complete(ASK)).text == "ok"
    with pytest.raises(ConfigError):
        Retrying(inner, attempts=0)


async def test_retrying_stream_retries_before_the_first_event() -> None:
    inner = ScriptedLLM([retryable(), "streamed"])
    events = [e async for e in Retrying(inner, sleep=Sleeps()).stream(ASK)]
    assert events[0] == TextDelta(text="streamed") and len(inner.calls) == 2


# -- Fallback -----------------------------------------------------------------------------------


async def test_fallback_moves_to_the_next_model_on_llm_error() -> None:
    first = ScriptedLLM([LLMError("auth failed", retryable=False)], model_id="primary")
    second = ScriptedLLM(["from backup"], model_id="backup")
    llm = Fallback([first, second])
    response = await llm.complete(ASK)
    assert response.text == "from backup" and response.model == "backup"
    assert llm.model_id == "primary" and len(first.calls) == len(second.calls) == 1


async def test_fallback_raises_one_error_when_all_fail() -> None:
    llm = Fallback(
        [
            ScriptedLLM([LLMError("down")], model_id="a"),
            ScriptedLLM([retryable("busy")], model_id="b"),
        ]
    )
    with pytest.raises(LLMError, match=r"all 2 models failed: a: down; b: busy") as info:
        await llm.complete(ASK)
    assert len(info.value.data["errors"]) == 2 and info.value.data["retryable"] is True
    with pytest.raises(ConfigError):
        Fallback([])


async def test_fallback_does_not_swallow_budget_errors() -> None:
    second = ScriptedLLM(["never"])
    llm = Fallback([ScriptedLLM([BudgetExceeded("steps", 1, 1)]), second])
    with pytest.raises(BudgetExceeded):
        await llm.complete(ASK)
    assert second.calls == []


async def test_fallback_stream_and_composition() -> None:
    first = ScriptedLLM([retryable(), retryable()])
    backup = ScriptedLLM(["b1", "b2"])
    llm = Budgeted(Retrying(Fallback([first, backup]), sleep=Sleeps()), Budget(max_steps=2))
    events = [e async for e in llm.stream(ASK)]
    assert events[0] == TextDelta(text="b1")
    assert (await llm.complete(ASK)).text == "b2"
    assert llm.meter.snapshot().steps == 2

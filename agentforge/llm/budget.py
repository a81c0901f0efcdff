"""Enforced budgets for model calls: steps, tokens, cost (USD) and wall time.

A `BudgetMeter` is shared by everything that spends from one budget (e.g. the planner, executor
and reflector models of one run, each wrapped in `Budgeted`). It raises `BudgetExceeded`

- before a call, once a limit is reached (steps done ≥ max_steps, tokens ≥ max_tokens, …);
- after a call whose usage crossed a limit (the response is attached as `exc.data["response"]`).

Steps are reserved atomically before the call, so concurrent callers can never exceed
`max_steps`; tokens and cost are only known afterwards, so a limit can be overshot by the calls
already in flight. Wall time counts from the meter's creation. Thread- and async-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from agentforge.errors import BudgetExceeded, ConfigError
from agentforge.llm.types import ModelResponse


@dataclass(frozen=True)
class Budget:
    """Limits of one run; None means unlimited."""

    max_steps: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_tokens", "max_cost", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"budget {name} must be >= 0, got {value}", **{name: value})


class BudgetSnapshot(BaseModel):
    """What has been spent, next to the limits, at one moment."""

    steps: int
    tokens: int
    cost: float
    seconds: float
    max_steps: int | None
    max_tokens: int | None
    max_cost: float | None
    max_seconds: float | None

    @property
    def exceeded(self) -> str | None:
        """The first limit reached ("steps", "tokens", "cost", "seconds"), or None."""
        for what in ("steps", "tokens", "cost", "seconds"):
            limit = getattr(self, f"max_{what}")
            if limit is not None and getattr(self, what) >= limit:
                return what
        return None


class BudgetMeter:
    """Counts usage against a `Budget` and enforces it (see the module docstring)."""

    def __init__(self, budget: Budget, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._steps = 0
        self._tokens = 0
        self._cost = 0.0

    def elapsed(self) -> float:
        return self._clock() - self._started

    def remaining_seconds(self) -> float | None:
        if self.budget.max_seconds is None:
            return None
        return max(0.0, self.budget.max_seconds - self.elapsed())

    def _check(self, *, reached: bool) -> None:
        """Raise if a limit is reached (`reached`: used ≥ limit) or crossed (used > limit)."""
        budget = self.budget
        for what, limit, used in (
            ("steps", budget.max_steps, self._steps),
            ("tokens", budget.max_tokens, self._tokens),
            ("cost", budget.max_cost, self._cost),
            ("seconds", budget.max_seconds, self.elapsed()),
        ):
            if limit is None or (what == "steps" and not reached):
                continue
            if used > limit or (reached and used >= limit):
                raise BudgetExceeded(what, limit, used)

    def begin_step(self) -> None:
        """Check every limit and reserve one step; call right before a model call."""
        with self._lock:
            self._check(reached=True)
            self._steps += 1

    def record(
        self, response: ModelResponse | None = None, *, tokens: int = 0, cost: float = 0.0
    ) -> None:
        """Add a call's usage; raise if it crossed a limit (the response goes in `exc.data`)."""
        if response is not None:
            tokens += response.usage.total_tokens
            cost += response.cost
        with self._lock:
            self._tokens += tokens
            self._cost += cost
            try:
                self._check(reached=False)
            except BudgetExceeded as exc:
                exc.data["response"] = response
                raise

    def check(self) -> None:
        """Raise if any limit is already reached (without reserving a step)."""
        with self._lock:
            self._check(reached=True)

    def snapshot(self) -> BudgetSnapshot:
        with self._lock:
            return BudgetSnapshot(
                steps=self._steps,
                tokens=self._tokens,
                cost=self._cost,
                seconds=self.elapsed(),
                max_steps=self.budget.max_steps,
                max_tokens=self.budget.max_tokens,
                max_cost=self.budget.max_cost,
                max_seconds=self.budget.max_seconds,
            )

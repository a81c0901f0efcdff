"""What a run's nodes work with (LangGraph's runtime context): the role models, memory, tools,
the budget meter, the optional environment and the limits. Not checkpointed: resume builds it
anew."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentforge.errors import InputError
from agentforge.llm import LLM
from agentforge.llm.budget import BudgetMeter
from agentforge.memory.engine import Memory
from agentforge.tools import ToolContext, ToolRegistry


class Environment(Protocol):
    """A task environment that can judge the outcome itself (evals, tests)."""

    async def reward(self, state: dict[str, Any]) -> float | None:
        """The environment's reward for the run so far (1.0 success, 0.0 failure), or None."""
        ...


async def environment_done(environment: Environment | None) -> bool:
    """Whether the environment says the episode is over (an optional `async done()` method,
    as MiniWoB++ ends an episode on the deciding action)."""
    done = getattr(environment, "done", None)
    return bool(await done()) if done is not None else False


@dataclass(frozen=True)
class Limits:
    max_steps: int = 20  # executor actions
    max_replans: int = 1
    max_subgoals: int = 6
    plan_recall_k: int = 8
    step_recall_k: int = 3
    tools_k: int = 12  # tools offered to the model when more are registered
    keep_observations: int = 3  # latest observations shown in full; older ones shortened
    observation_chars: int = 4000
    tool_timeout_s: float = 60.0
    distill_items: int = 3
    distill_max_tokens: int = 600
    skill_min_score: float = 0.02  # fused recall score at which a skill is considered a match

    def __post_init__(self) -> None:
        """`max_steps=0` ran a run that could take no step and called it a failure."""
        bad = [
            f"{name}={value}"
            for name, value in vars(self).items()
            if isinstance(value, int)
            and name != "tool_timeout_s"
            and value < (0 if name == "max_replans" else 1)
        ]
        if self.tool_timeout_s <= 0:
            bad.append(f"tool_timeout_s={self.tool_timeout_s}")
        if bad:
            raise InputError(f"run limits must be positive: {', '.join(bad)}")


@dataclass
class RunContext:
    planner: LLM
    executor: LLM
    reflector: LLM
    tools: ToolRegistry
    tool_ctx: ToolContext
    meter: BudgetMeter
    memory: Memory | None = None
    environment: Environment | None = None
    limits: Limits = field(default_factory=Limits)
    learn: bool = True  # False (frozen memory): recall only; no lessons, retains or credit
    # the next step's memory recall, started as soon as an action's result is known, keyed by
    # that action's index (execution.py); what is left when the run ends is cancelled
    prefetched: dict[int, asyncio.Task[Any]] = field(default_factory=dict)
    # namespace -> (failed calls in the run when read, its tool records), see execution.py
    tool_records: dict[str, tuple[int, list[Any]]] = field(default_factory=dict)

    async def aclose(self) -> None:
        for task in self.prefetched.values():
            task.cancel()
        await asyncio.gather(*self.prefetched.values(), return_exceptions=True)
        self.prefetched.clear()

"""What the harness needs from an environment. A task is the raw WebArena-format dict of a suite
file (`intent`, `start_url`, `eval`, …); each worker owns one environment and one browser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentforge.tools.builtin.browser_session import BrowserSession


@dataclass(frozen=True)
class Evaluation:
    """An episode's result as the benchmark defines it: `reward` on its own scale, `success` the
    benchmark's success criterion, `details` what each evaluator checked (for traces)."""

    reward: float
    success: bool
    details: dict[str, Any] = field(default_factory=dict)


class EvalEnvironment(Protocol):
    async def start(self) -> None:
        """Bring up what the environment serves (once per worker)."""
        ...

    async def reset(self, task: dict[str, Any], session: BrowserSession, seed: int) -> str:
        """Fresh state for `task`; open its start page in `session`; return the instruction the
        agent gets (the task's intent, or the page's own for MiniWoB++)."""
        ...

    async def evaluate(self, task: dict[str, Any], session: BrowserSession,
                       answer: str) -> Evaluation:
        """Judge the episode from the page, the environment's state and the agent's answer."""
        ...

    async def close(self) -> None: ...

    # optional: `async def ended(self, session) -> bool` — the episode is over (MiniWoB++ ends
    # one on the deciding action); the run then stops and is evaluated

"""`WebEnvironment`: a suite against a site the user runs themselves (any WebArena-format suite
whose `__PLACEHOLDER__`s map to live URLs). It opens the start page and evaluates with the
WebArena evaluators; it cannot reset the site's state between tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentforge.evals.envs.base import Evaluation
from agentforge.evals.evaluators import Judge, evaluate_task, substitute

if TYPE_CHECKING:
    from agentforge.tools.builtin.browser_session import BrowserSession


class WebEnvironment:
    def __init__(self, placeholders: dict[str, str], judge: Judge | None = None) -> None:
        self.placeholders = placeholders
        self.judge = judge

    async def start(self) -> None:
        return None

    async def reset(self, task: dict[str, Any], session: BrowserSession, seed: int) -> str:
        start = substitute(str(task.get("start_url") or ""), self.placeholders)
        if start:
            await session.goto(start.split(" |AND| ")[0])
        return str(task["intent"])

    async def evaluate(self, task: dict[str, Any], session: BrowserSession,
                       answer: str) -> Evaluation:
        return await evaluate_task(task, answer=answer, page=session.page,
                                   placeholders=self.placeholders, judge=self.judge)

    async def close(self) -> None:
        return None

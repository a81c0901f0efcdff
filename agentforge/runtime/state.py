"""The graph state: plain JSON-able values (checkpointed by LangGraph); steps appended."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class RunState(TypedDict, total=False):
    run_id: str
    task: str
    namespace: str
    template: str | None  # task family / intent template, when the caller knows it
    steps: Annotated[list[dict[str, Any]], operator.add]  # typed steps, see steps.py
    plan: list[str]
    context: list[dict[str, Any]]  # what the planner recalled: {id, level, kind, content}
    skill: dict[str, Any] | None  # a matched skill: {id, name, actions (bound), pos}
    action_count: int
    final: dict[str, Any] | None  # FinalStep
    verdict: dict[str, Any] | None  # ReflectionStep
    replans: int
    tokens: int
    cost: float

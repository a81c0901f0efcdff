"""Nodes `recall_context` and `plan`: the planner sees recalled insights, skills, similar past
episodes and lessons, plus a retrieved subset of tools, and writes subgoals (validated JSON)."""

from __future__ import annotations

import re
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from agentforge.llm import Message
from agentforge.runtime.common import emit, hit_line, hit_summary
from agentforge.runtime.context import RunContext
from agentforge.runtime.prompts import load_prompt
from agentforge.runtime.state import RunState
from agentforge.runtime.steps import PlanStep, dump, render_steps
from agentforge.runtime.structured import ask_structured
from agentforge.types import Level

PLAN_LEVELS = [Level.INSIGHT, Level.SKILL, Level.EXPERIENCE, Level.EPISODE]
SKILL_RECALL_K = 3


class PlanOutput(BaseModel):
    subgoals: list[str] = Field(min_length=1, max_length=12)
    skill: str | None = None
    params: dict[str, str] = Field(default_factory=dict)


async def recall_context(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    if ctx.memory is None:
        return {"context": []}
    # the planner always recalls (the tuned "recall at all" gate is for per-step recall)
    result = await ctx.memory.arecall(state["task"], namespace=state["namespace"],
                                      k=ctx.limits.plan_recall_k, levels=PLAN_LEVELS,
                                      run_id=state["run_id"], min_score=0.0)
    # skills are matched by their task template, whatever tuned weights rank first: a few are
    # always looked up with the memory's base weights
    skills = await ctx.memory.arecall(state["task"], namespace=state["namespace"],
                                      k=SKILL_RECALL_K, levels=[Level.SKILL],
                                      weights=ctx.memory.weights, min_score=0.0, log=False)
    seen = {h.id for h in result.hits}
    context = [hit_summary(h) for h in result.hits]
    context += [hit_summary(h) for h in skills.hits if h.id not in seen]
    emit(runtime, state, "memory_recalled", "recall_context", purpose="plan",
         latency_ms=round(result.latency_ms, 2),
         hits=[{"id": c["id"], "level": c["level"], "score": c["score"],
                "text": c["content"][:120]} for c in context])
    return {"context": context}


def bind_template(template: str, task: str) -> dict[str, str] | None:
    """Bind `{param}` placeholders of a task template against a task text, or None."""
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)"
                      for i, p in enumerate(parts))
    match = re.fullmatch(pattern, task.strip(), flags=re.IGNORECASE | re.DOTALL)
    return {k: v.strip() for k, v in match.groupdict().items()} if match else None


def match_skill(state: RunState, output: PlanOutput | None, min_score: float
                ) -> dict[str, Any] | None:
    """A recalled skill the task instantiates: bound from its template, or from the planner's
    validated choice (every parameter given, no unknown skill)."""
    for item in state.get("context", []):
        meta = item.get("metadata") or {}
        if item["level"] != "skill" or not meta.get("actions") or item["score"] < min_score:
            continue
        name = meta.get("name") or item.get("title")
        params = bind_template(meta["template"], state["task"]) if meta.get("template") else None
        if params is None and output is not None and output.skill == name:
            params = output.params
        required = set((meta.get("parameters") or {}).keys())
        if params is not None and required <= set(params):
            return {"id": item["id"], "name": name, "actions": meta["actions"],
                    "params": params, "pos": 0}
    return None


async def plan(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    replans = state.get("replans", 0)
    verdict = state.get("verdict")
    previous = ""
    if verdict and verdict.get("replan"):
        replans += 1
        previous = ("\nPREVIOUS ATTEMPT (failed: " + verdict.get("reason", "") + "):\n"
                    + render_steps(state.get("steps", []), last=8) + "\n")
    tools = await ctx.tools.aselect(state["task"], ctx.limits.tools_k, ctx.memory,
                                    namespace=state["namespace"])
    tool_text = "\n".join(f"- {t.name}: {t.description.splitlines()[0]}" for t in tools) or "-"
    memory_text = "\n".join(hit_line(_as_hit(c)) for c in state.get("context", [])) or "(none)"
    prompt = load_prompt("planner").render(
        max_subgoals=ctx.limits.max_subgoals, tools=tool_text, memory=memory_text,
        previous=previous, task=state["task"])
    output, response = await ask_structured(ctx.planner, [Message.user(prompt)], PlanOutput,
                                            max_tokens=400)
    subgoals = output.subgoals[: ctx.limits.max_subgoals] if output else [state["task"]]
    skill = match_skill(state, output, ctx.limits.skill_min_score) if not previous else None
    step = PlanStep(subgoals=subgoals, recalled=[c["id"] for c in state.get("context", [])],
                    replan=replans)
    emit(runtime, state, "plan", "plan", subgoals=subgoals, valid=output is not None,
         skill=skill["name"] if skill else None)
    tokens = response.usage.total_tokens if response else 0
    return {"plan": subgoals, "steps": [dump(step)], "replans": replans, "skill": skill,
            "verdict": None, "final": None,
            "tokens": state.get("tokens", 0) + tokens,
            "cost": state.get("cost", 0.0) + (response.cost if response else 0.0)}


def _as_hit(item: dict[str, Any]) -> Any:
    from agentforge.types import RecallHit
    return RecallHit.model_construct(
        id=item["id"], level=Level(item["level"]), kind=item["kind"], title=item.get("title"),
        content=item["content"], metadata=item.get("metadata") or {})

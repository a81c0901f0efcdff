"""Nodes `verify`, `reflect` and `retain`: judge the outcome (the environment's reward when there
is one, else a judge prompt), replan (bounded) or distil lessons from success and failure
(validated JSON only), retain the episode and the lessons, and credit what was recalled."""

from __future__ import annotations

import json
import re
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from agentforge.llm import Message
from agentforge.runtime.common import emit
from agentforge.runtime.context import RunContext
from agentforge.runtime.grounding import unsupported
from agentforge.runtime.prompts import load_prompt
from agentforge.runtime.state import RunState
from agentforge.runtime.steps import (
    ActionStep,
    Experience,
    ReflectionStep,
    dump,
    render_steps,
    step_from_dict,
)
from agentforge.runtime.structured import ask_structured
from agentforge.types import Level, MemoryInput, Outcome, Provenance, Trust

# runs that stopped on a budget before answering; and the reasons after which no replan runs
UNANSWERED = {"step budget", "tokens budget", "cost budget", "seconds budget", "steps budget"}
NO_REPLAN = UNANSWERED | {"answered at the step budget"}
# the model failed (a wrong model name, no key, the provider down): nothing about the task was
# learnt, so no judge runs (it would fail the same way), the outcome is `unknown`, and an episode
# that took no action is not retained
MODEL_ERROR = "error"


class Judgement(BaseModel):
    success: bool
    reason: str = Field(default="", max_length=500)


class Distilled(BaseModel):
    items: list[Experience] = Field(default_factory=list, max_length=5)


def _usage(state: RunState, response: Any) -> dict[str, Any]:
    if response is None:
        return {}
    return {"tokens": state.get("tokens", 0) + response.usage.total_tokens,
            "cost": state.get("cost", 0.0) + response.cost}


async def verify(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    final = state.get("final") or {}
    if ctx.environment is not None:
        reward = await ctx.environment.reward(dict(state))
        if reward is not None:
            outcome = "success" if reward >= 1.0 else "failure"
            verdict = ReflectionStep(outcome=outcome, reward=reward, judged_by="environment",
                                     reason=f"environment reward {reward:g}")
            emit(runtime, state, "judged", "verify", outcome=outcome, reward=reward)
            return {"verdict": dump(verdict)}
    if final.get("reason") == MODEL_ERROR:
        verdict = ReflectionStep(outcome="unknown", judged_by="runtime",
                                 reason="the model failed (see the answer): no verdict")
        emit(runtime, state, "judged", "verify", outcome=verdict.outcome, reason=verdict.reason)
        return {"verdict": dump(verdict)}
    if final.get("reason") in UNANSWERED:  # stopped before answering: nothing for a judge to pass
        reason = f"the run stopped on its {final['reason']} before answering"
        verdict = ReflectionStep(outcome="failure", judged_by="runtime", reason=reason)
        emit(runtime, state, "judged", "verify", outcome=verdict.outcome, reason=verdict.reason)
        return {"verdict": dump(verdict)}
    prompt = load_prompt("judge").render(task=state["task"],
                                         steps=render_steps(state.get("steps", []), last=12),
                                         answer=final.get("answer", ""))
    judgement, response = await ask_structured(ctx.reflector, [Message.user(prompt)], Judgement,
                                               max_tokens=200)
    if judgement is None:
        verdict = ReflectionStep(outcome="unknown", judged_by="none",
                                 reason="the judge gave no valid verdict")
    else:
        verdict = ReflectionStep(outcome="success" if judgement.success else "failure",
                                 judged_by="judge", reason=judgement.reason)
    verdict = _grounded(verdict, state)
    emit(runtime, state, "judged", "verify", outcome=verdict.outcome, reason=verdict.reason)
    return {"verdict": dump(verdict), **_usage(state, response)}


def _grounded(verdict: ReflectionStep, state: RunState) -> ReflectionStep:
    """A judge's `success` for an answer whose numbers no tool result states becomes `unknown`:
    memory keeps the episode but credits nothing and distils no lesson from it."""
    if verdict.outcome != "success":
        return verdict
    answer = (state.get("final") or {}).get("answer", "")
    missing = unsupported(answer, state["task"], state.get("steps", []))
    if not missing:
        return verdict
    shown = ", ".join(missing[:3])
    return verdict.model_copy(update={
        "outcome": "unknown", "judged_by": "runtime",
        "reason": f"the judge passed the answer, but no tool result or the task states {shown} "
                  f"(judge: {verdict.reason})"})


async def reflect(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    verdict = ReflectionStep.model_validate(state["verdict"])
    final = state.get("final") or {}
    can_replan = (verdict.outcome == "failure" and state.get("replans", 0) < ctx.limits.max_replans
                  and final.get("reason") not in NO_REPLAN)
    if can_replan:
        verdict.replan = True
        emit(runtime, state, "reflected", "reflect", replan=True, reason=verdict.reason)
        return {"verdict": dump(verdict), "steps": [dump(verdict)]}
    if not ctx.learn or ctx.memory is None or verdict.outcome == "unknown":
        # nothing would keep the lessons (no memory, or no outcome to learn from): spend no tokens
        emit(runtime, state, "reflected", "reflect", replan=False, lessons=0, valid=True)
        return {"verdict": dump(verdict), "steps": [dump(verdict)]}
    outcome_text = "succeeded" if verdict.outcome == "success" else "failed"
    prompt = load_prompt("distill").render(
        outcome_text=outcome_text, max_items=ctx.limits.distill_items, task=state["task"],
        steps=render_steps(state.get("steps", []), last=16), outcome=verdict.outcome,
        reason=verdict.reason)
    distilled, response = await ask_structured(ctx.reflector, [Message.user(prompt)], Distilled,
                                               max_tokens=ctx.limits.distill_max_tokens)
    if distilled is not None:
        useful = [e for e in distilled.items if is_lesson(e, state["task"])]
        verdict.experiences = useful[: ctx.limits.distill_items]
    emit(runtime, state, "reflected", "reflect", replan=False, lessons=len(verdict.experiences),
         valid=distilled is not None)
    return {"verdict": dump(verdict), "steps": [dump(verdict)], **_usage(state, response)}


# the distil prompt's own placeholders: a weak model copies them back instead of a lesson
_PLACEHOLDERS = {"...", "one-line summary", "the lesson in 1-3 sentences", "title",
                 "description", "content", "lesson"}


def is_lesson(item: Experience, task: str) -> bool:
    """A valid-JSON item is kept only if it says something: not the prompt's placeholders and
    not the task restated."""
    task_text = " ".join(task.lower().split())
    for text in (item.title, item.description, item.content):
        if " ".join(text.lower().split()).strip(" .") in _PLACEHOLDERS:
            return False
    content = " ".join(item.content.lower().split()).strip(" .")
    return content not in task_text and content != " ".join(item.title.lower().split())


def after_reflect(state: RunState) -> str:
    verdict = state.get("verdict") or {}
    return "plan" if verdict.get("replan") else "retain"


_ELEMENT = re.compile(r'^\[(\d+)\] (\w+) "((?:[^"\\]|\\.)*)"', re.MULTILINE)


def action_trace(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's actions as skills are induced from them: tool, arguments, success, and for an
    element id the element it named in the observation before (so a replay can use its label)."""
    trace: list[dict[str, Any]] = []
    seen = ""
    for raw in steps:
        step = step_from_dict(raw)
        if step.type == "plan":
            trace, seen = [], ""  # a replan starts over
        if not isinstance(step, ActionStep):
            continue
        target = None
        element = step.arguments.get("id")
        if isinstance(element, int):
            found = {int(m.group(1)): (m.group(2), json.loads(f'"{m.group(3)}"'))
                     for m in _ELEMENT.finditer(seen)}
            if element in found:
                target = {"role": found[element][0], "name": found[element][1]}
        trace.append({"tool": step.tool, "args": step.arguments, "ok": step.ok,
                      "target": target})
        if step.ok:
            seen = step.observation
    return trace


def episode_text(state: RunState, verdict: ReflectionStep) -> str:
    return (f"Task: {state['task']}\nOutcome: {verdict.outcome} ({verdict.reason})\n"
            + render_steps(state.get("steps", []), last=30))


async def retain(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    verdict = ReflectionStep.model_validate(state["verdict"])
    if ctx.memory is None or not ctx.learn:
        return {}
    final = state.get("final") or {}
    if final.get("reason") == MODEL_ERROR and not state.get("action_count"):
        return {}  # the model failed before the run did anything: no trajectory to keep
    run_id, ns = state["run_id"], state["namespace"]
    meta = {"run_id": run_id, "outcome": verdict.outcome, "reward": verdict.reward,
            "template": state.get("template"), "actions": state.get("action_count", 0),
            "tokens": state.get("tokens", 0), "trace": action_trace(state.get("steps", []))}
    tags = [t for t in [state.get("template")] if t]
    items = [MemoryInput(content=episode_text(state, verdict), level=Level.EPISODE,
                         kind="episode", title=state["task"][:120], metadata=meta, tags=tags,
                         provenance=Provenance(source=run_id, role="runtime"))]
    for exp in verdict.experiences:
        items.append(MemoryInput(
            content=f"{exp.title}. {exp.description} {exp.content}", title=exp.title,
            level=Level.EXPERIENCE, kind=f"lesson_{verdict.outcome}", tags=tags,
            metadata={"run_id": run_id, "outcome": verdict.outcome,
                      "template": state.get("template")},
            provenance=Provenance(source=run_id, role="reflector", trust=Trust.DERIVED)))
    result = await ctx.memory.aretain(items, namespace=ns)
    credited = 0
    if verdict.outcome != "unknown":
        credited = await ctx.memory.arecord_outcome(run_id, Outcome(verdict.outcome))
    emit(runtime, state, "retained", "retain", episode=result.ids[0], lessons=len(items) - 1,
         credited=credited)
    return {}

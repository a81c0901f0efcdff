"""Node `execute`: one executor step per node run (so a checkpoint follows every step). Recalls
memory conditioned on the latest observation, shows tool lessons, then either replays the next
action of a matched skill or asks the model for one tool call; `finish` ends the loop."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from langgraph.runtime import Runtime

from agentforge.errors import BudgetExceeded, LLMError
from agentforge.llm import Message, ModelSettings, ToolCall, ToolSpec
from agentforge.memory.records import ToolRecord
from agentforge.runtime.common import emit, hit_line
from agentforge.runtime.context import RunContext, environment_done
from agentforge.runtime.prompts import load_prompt
from agentforge.runtime.state import RunState
from agentforge.runtime.steps import ActionStep, FinalStep, dump, step_from_dict
from agentforge.tools import invoke_tool, tool_lessons
from agentforge.types import Level, RecallResult

STEP_RECALL_POOL = 20
OBSERVE = "browser_observe"
_NOT_RUN = "Not run: this exact call just failed"
_NOT_DONE_AGAIN = "Not run: this exact call was the previous step"
_REPEATABLE = {"browser_scroll", "browser_press", "browser_back", "browser_observe"}

FINISH = ToolSpec(
    name="finish",
    description="Finish the task: give the final answer (or say why it cannot be done).",
    parameters={"type": "object", "properties": {"answer": {"type": "string"}},
                "required": ["answer"]},
)


def _actions_since_plan(state: RunState) -> list[ActionStep]:
    actions: list[ActionStep] = []
    for raw in state.get("steps", []):
        step = step_from_dict(raw)
        if step.type == "plan":
            actions = []
        elif isinstance(step, ActionStep):
            actions.append(step)
    return actions


def conversation(state: RunState, ctx: RunContext, memory_text: str, lessons: str
                 ) -> list[Message]:
    """The executor's messages, rendered from the typed steps (older observations shortened)."""
    plan = "\n".join(f"{i}. {g}" for i, g in enumerate(state.get("plan", []), start=1))
    system = load_prompt("executor").render(task=state["task"], plan=plan,
                                            memory=memory_text or "(none)",
                                            tool_lessons=lessons)
    messages = [Message.system(system), Message.user(state["task"])]
    actions = _actions_since_plan(state)
    keep = ctx.limits.keep_observations
    for i, action in enumerate(actions):
        call = ToolCall(id=f"call_{action.index}", name=action.tool, arguments=action.arguments)
        messages.append(Message.assistant(None, tool_calls=[call]))
        text = action.observation
        if i < len(actions) - keep:
            text = text[:300] + (" …(shortened)" if len(text) > 300 else "")
        messages.append(Message.tool(text[: ctx.limits.observation_chars], tool_call_id=call.id,
                                     name=action.tool))
    return messages


def _step_recall(state: RunState, ctx: RunContext, observation: str | None
                 ) -> Coroutine[Any, Any, RecallResult]:
    """A step's recall, conditioned on the latest observation through the keyword channel; the
    dense channel embeds the task alone, whose embedding the plan's recall cached (embedding
    the page text as well cost 10-25 ms per step on two cores)."""
    assert ctx.memory is not None
    cue = None if observation is None else f"{state['task']}\n{observation[:300]}"
    # the namespace's tuned weights (evolving recall), with a small candidate pool
    weights = replace(ctx.memory.tuning(state["namespace"]).weights, candidates=STEP_RECALL_POOL)
    return ctx.memory.arecall(state["task"], namespace=state["namespace"],
                              k=ctx.limits.step_recall_k, levels=[Level.INSIGHT, Level.EXPERIENCE],
                              run_id=state["run_id"], weights=weights, keyword_query=cue)


def _prefetch(state: RunState, ctx: RunContext, step: ActionStep) -> None:
    """Start the next step's recall now, while the graph checkpoints and moves on; only when a
    model step surely follows (so a recall is never logged, and credited, without being used)."""
    if ctx.memory is not None and step.index < ctx.limits.max_steps:
        ctx.prefetched[step.index] = asyncio.ensure_future(
            _step_recall(state, ctx, step.observation))


async def _step_memory(state: RunState, ctx: RunContext, runtime: Runtime[RunContext],
                       tool_names: list[str]) -> tuple[str, str, list[str]]:
    if ctx.memory is None:
        return "", "", []
    actions = _actions_since_plan(state)
    pending = ctx.prefetched.pop(actions[-1].index, None) if actions else None
    result = await (pending or _step_recall(state, ctx,
                                            actions[-1].observation if actions else None))
    emit(runtime, state, "memory_recalled", "execute", purpose="step",
         latency_ms=round(result.latency_ms, 2),
         hits=[{"id": h.id, "score": round(h.score, 4), "text": h.content[:120]}
               for h in result.hits])
    records = await _tool_records(state, ctx)
    failed = {r.name for r in records if r.errors} & set(tool_names)
    lessons = []
    for name in sorted(failed):
        lessons += await tool_lessons(ctx.memory, name, namespace=state["namespace"])
    lesson_text = ("\nTOOL LESSONS (errors seen before and what fixed them):\n"
                   + "\n".join(lessons)) if lessons else ""
    return ("\n".join(hit_line(h) for h in result.hits), lesson_text,
            [h.id for h in result.hits])


async def _tool_records(state: RunState, ctx: RunContext) -> list[ToolRecord]:
    """The namespace's tool records, read once per run and again after each failed call (the
    only change in this run that adds a lesson)."""
    assert ctx.memory is not None
    failures = sum(1 for s in state.get("steps", []) if s.get("type") == "action"
                   and not s.get("ok", True))
    cached = ctx.tool_records.get(state["namespace"])
    if cached is None or cached[0] != failures:
        records = await asyncio.to_thread(ctx.memory.c.store.tools, state["namespace"])
        cached = ctx.tool_records[state["namespace"]] = (failures, records)
    return cached[1]


def bind_action(action: dict[str, Any], params: dict[str, str]) -> ToolCall:
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: params.get(m.group(1), m.group(0)),
                          value)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value
    return ToolCall(id="replay", name=action["tool"], arguments=fill(action.get("args", {})))


async def _run_call(state: RunState, ctx: RunContext, runtime: Runtime[RunContext],
                    call: ToolCall, index: int, **extra: Any) -> ActionStep:
    emit(runtime, state, "step_started", "execute", index=index, tool=call.name)
    result = await invoke_tool(ctx.tools, ctx.tool_ctx, call, timeout_s=ctx.limits.tool_timeout_s)
    emit(runtime, state, "tool_called", "execute", index=index, tool=call.name, ok=result.ok,
         latency_ms=round(result.latency_ms, 1), error=result.error)
    return ActionStep(index=index, tool=call.name, arguments=call.arguments, ok=result.ok,
                      observation=result.content if result.ok else (result.error or "error"),
                      error=None if result.ok else result.error, latency_ms=result.latency_ms,
                      **extra)


async def _replay(state: RunState, ctx: RunContext, runtime: Runtime[RunContext]
                  ) -> dict[str, Any] | None:
    skill = dict(state["skill"] or {})
    if skill["pos"] >= len(skill["actions"]):
        return None
    index = state.get("action_count", 0) + 1
    call = bind_action(skill["actions"][skill["pos"]], skill["params"])
    step = await _run_call(state, ctx, runtime, call, index, replayed_skill=skill["name"])
    skill["pos"] += 1
    # a failed replay step hands control back to the model (skill dropped)
    return {"steps": [dump(step)], "action_count": index, "skill": skill if step.ok else None}


async def execute(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    index = state.get("action_count", 0) + 1
    if index > ctx.limits.max_steps:
        return await _answer_at_budget(state, ctx, runtime)
    if state.get("skill"):
        replayed = await _replay(state, ctx, runtime)
        if replayed is not None:
            return await _unless_done(state, ctx, runtime, replayed)
    if not _actions_since_plan(state) and ctx.tool_ctx.has_browser and OBSERVE in ctx.tools:
        # the page is open already (an eval environment opened it): the model starts from it
        call = ToolCall(id="observe", name=OBSERVE, arguments={})
        step = await _run_call(state, ctx, runtime, call, index)
        return {"steps": [dump(step)], "action_count": index}
    tools = await ctx.tools.aselect(state["task"], ctx.limits.tools_k, ctx.memory,
                                    namespace=state["namespace"])
    memory_text, lessons, recalled = await _step_memory(state, ctx, runtime,
                                                        [t.name for t in tools])
    messages = conversation(state, ctx, memory_text, lessons)
    try:
        response = await ctx.executor.complete(
            messages, tools=[*(t.spec() for t in tools), FINISH],
            settings=ModelSettings(tool_choice="required", max_tokens=512))
    except BudgetExceeded as exc:
        return _finish(state, runtime, f"Stopped: {exc.message}.", f"{exc.what} budget")
    except LLMError as exc:
        return _finish(state, runtime, f"Stopped: the model failed: {exc.message}", "error")
    tokens = response.usage.total_tokens
    emit(runtime, state, "tokens", "execute", role="executor", tokens=tokens, cost=response.cost)
    usage = {"tokens": state.get("tokens", 0) + tokens, "cost": state.get("cost", 0.0)
             + response.cost}
    calls = response.tool_calls
    if not calls:
        return {**_finish(state, runtime, response.text.strip() or "(no answer)", "answered"),
                **usage}
    call = calls[0]  # one action at a time: the model sees each result before the next
    if call.name == FINISH.name:
        answer = call.arguments.get("answer")
        text = answer if isinstance(answer, str) else json.dumps(call.arguments)
        return {**_finish(state, runtime, text, "answered"), **usage}
    repeated = _repeated_failure(state, call)
    if repeated is not None:  # the same call again would fail the same way: say so instead
        step = ActionStep(index=index, tool=call.name, arguments=call.arguments, ok=False,
                          observation=repeated, error=repeated, tokens=tokens,
                          thought=response.text or None, recalled=recalled)
        return {"steps": [dump(step)], "action_count": index, **usage}
    step = await _run_call(state, ctx, runtime, call, index, tokens=tokens,
                           thought=response.text or None, recalled=recalled)
    update = await _unless_done(state, ctx, runtime,
                                {"steps": [dump(step)], "action_count": index, **usage})
    if "final" not in update:
        _prefetch(state, ctx, step)
    return update


async def _answer_at_budget(state: RunState, ctx: RunContext, runtime: Runtime[RunContext]
                            ) -> dict[str, Any]:
    """The step budget is spent: one call forced to `finish` turns what the run found into an
    answer (a weak model often has it in a tool result and never says so). The answer is still
    judged; with no answer the run stops unanswered."""
    messages = [*conversation(state, ctx, "", ""), Message.user(BUDGET_SPENT)]
    try:
        response = await ctx.executor.complete(
            messages, tools=[FINISH], settings=ModelSettings(tool_choice=FINISH.name,
                                                             max_tokens=256))
    except (BudgetExceeded, LLMError):
        response = None
    answer, usage = None, {}
    if response is not None:
        emit(runtime, state, "tokens", "execute", role="executor",
             tokens=response.usage.total_tokens, cost=response.cost)
        usage = {"tokens": state.get("tokens", 0) + response.usage.total_tokens,
                 "cost": state.get("cost", 0.0) + response.cost}
        calls = [c for c in response.tool_calls if c.name == FINISH.name]
        text = calls[0].arguments.get("answer") if calls else None
        answer = text.strip() if isinstance(text, str) and text.strip() else None
    if answer is None:  # the call's tokens count even when it gave no answer
        return {**_finish(state, runtime, "Stopped: the step budget ran out.", "step budget"),
                **usage}
    return {**_finish(state, runtime, answer, "answered at the step budget"), **usage}


BUDGET_SPENT = ("The step budget is spent: no more tool calls. Call finish now with your best "
                "answer from the results above: the answer itself (the number, name or text the "
                "task asks for), not a statement that the task is done.")


async def _unless_done(state: RunState, ctx: RunContext, runtime: Runtime[RunContext],
                       update: dict[str, Any]) -> dict[str, Any]:
    """The node's update, ending the run when the action ended the environment's episode."""
    if not await environment_done(ctx.environment):
        return update
    final = _finish(state, runtime, "(the environment ended the episode)", "environment done")
    return {**update, "final": final["final"], "steps": update["steps"] + final["steps"]}


def _repeated_failure(state: RunState, call: ToolCall) -> str | None:
    """Why the model's call must not run: it repeats the previous call exactly, which failed
    (it would fail the same way) or already ran (doing it again changes nothing)."""
    actions = _actions_since_plan(state)
    last = actions[-1] if actions else None
    if last is None or last.tool != call.name or last.arguments != call.arguments:
        return None
    if (last.error or "").startswith((_NOT_RUN, _NOT_DONE_AGAIN)):
        return last.error
    if last.ok:
        if call.name in _REPEATABLE:
            return None
        return (f"{_NOT_DONE_AGAIN}: its result is above. Take the next step of the plan with "
                "another tool or other arguments, or finish with the answer.")
    return (f"{_NOT_RUN} ({(last.error or '').splitlines()[0][:200]}). "
            "Change the arguments (use an element id from the latest observation) or do "
            "something else.")


def _finish(state: RunState, runtime: Runtime[RunContext], answer: str, reason: str
            ) -> dict[str, Any]:
    final = FinalStep(answer=answer, reason=reason)
    emit(runtime, state, "final", "execute", answer=answer[:500], reason=reason)
    return {"final": dump(final), "steps": [dump(final)]}


def after_execute(state: RunState) -> str:
    return "verify" if state.get("final") else "execute"

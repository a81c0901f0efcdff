"""`Forge`: the SDK face. Wires settings, models per role, memory, tools and the run graph, and runs
tasks (`run` / `arun`), streams their events (`events`), and resumes interrupted runs by id."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agentforge.errors import AgentForgeError, ConfigError, NotFoundError
from agentforge.evolve.evolver import Evolver, LearnPolicy
from agentforge.llm import LLM, Budget, Budgeted, BudgetMeter, resolve_model
from agentforge.memory.engine import Memory
from agentforge.runtime.context import Environment, Limits, RunContext
from agentforge.runtime.events import Event, event_from_stream
from agentforge.runtime.graph import build_graph
from agentforge.runtime.runs import RunIndex, RunInfo
from agentforge.settings import Settings
from agentforge.skills import discover_skills, retain_skills
from agentforge.tools import Tool, ToolContext, ToolRegistry
from agentforge.types import parse_namespace

if TYPE_CHECKING:
    from agentforge.tools.builtin.browser_session import BrowserSession

DEFAULT_TOOLS = ("browser", "http", "python", "files", "memory")


class RunResult(BaseModel):
    run_id: str
    task: str
    answer: str
    outcome: str
    reward: float | None
    status: str
    steps: list[dict[str, Any]]
    actions: int
    tokens: int
    cost: float
    seconds: float
    # why the run stopped: "answered", "answered at the step budget", "<what> budget",
    # "environment done", or "error" (the model failed: `answer` says how)
    stop_reason: str | None = None


class Forge:
    """An agent with memory. `Forge(model="gpt-4o-mini")`, `Forge(model="test")` (scripted),
    or `Forge()` for the configured / local default."""

    def __init__(self, model: str | LLM | None = None, *, memory: Memory | None = None,
                 tools: Sequence[Tool | str] | None = None, settings: Settings | None = None,
                 namespace: str | Sequence[str] | None = None,
                 planner: str | LLM | None = None, executor: str | LLM | None = None,
                 reflector: str | LLM | None = None, limits: Limits | None = None,
                 budget: Budget | None = None, workspace: Path | None = None,
                 skills: Sequence[str | Path] = (), use_memory: bool = True,
                 learn: LearnPolicy | None = None) -> None:
        self.settings = settings or Settings()
        home = self.settings.resolved_home()
        self.memory = memory if memory is not None or not use_memory else (
            Memory.from_settings(self.settings))
        self._owns_memory = memory is None and use_memory
        self.namespace = parse_namespace(namespace or self.settings.namespace)
        self.models = {role: resolve_model(override or model, role=role, settings=self.settings)
                       for role, override in (("planner", planner), ("executor", executor),
                                              ("reflector", reflector))}
        self.registry = _registry(tools)
        self.skills = [s for root in skills for s in discover_skills(root)]
        for skill in self.skills:  # a skill's own tools (tools.py beside SKILL.md)
            for extra in skill.load_tools():
                self.registry.add(extra, replace=True)
        self._skills_retained = False
        self.limits = limits or Limits()
        self.budget = budget or Budget()
        self.workspace = workspace or home / "workspace"
        self.runs = RunIndex(home / "runs.db")
        # learning beyond the runtime's own lessons (insights, skills, conflicts, weights)
        self.evolver = (Evolver(self.memory, self.models["reflector"], self.namespace, learn)
                        if learn is not None and learn.steps and self.memory is not None
                        else None)

    # --- running ----------------------------------------------------------------------------

    def _context(self, run_id: str, stack: AsyncExitStack, limits: Limits,
                 environment: Environment | None, *, learn: bool = True,
                 browser: BrowserSession | None = None) -> RunContext:
        meter = BudgetMeter(self.budget)
        self.workspace.mkdir(parents=True, exist_ok=True)
        tool_ctx = ToolContext(memory=self.memory, workspace=self.workspace, run_id=run_id,
                               namespace=self.namespace, learn=learn, browser_session=browser)
        stack.push_async_callback(tool_ctx.aclose)
        ctx = RunContext(
            planner=Budgeted(self.models["planner"], meter),
            executor=Budgeted(self.models["executor"], meter),
            reflector=Budgeted(self.models["reflector"], meter),
            tools=self.registry, tool_ctx=tool_ctx, meter=meter, memory=self.memory,
            environment=environment, limits=limits, learn=learn)
        stack.push_async_callback(ctx.aclose)
        return ctx

    async def events(self, task: str | None = None, *, run_id: str | None = None,
                     resume: bool = False, template: str | None = None,
                     environment: Environment | None = None, max_steps: int | None = None,
                     learn: bool = True, browser: BrowserSession | None = None,
                     ) -> AsyncIterator[Event | RunResult]:
        """Run (or resume) a task, yielding its events as they happen and the result last.

        `learn=False` runs with frozen memory: recall as usual, but no lessons are distilled and
        nothing is retained, credited or recorded in tool memory. `browser` is a started
        session the run's browser tools use (and leave open), e.g. an eval environment's."""
        from agentforge.runtime.checkpoint import InlineSqliteSaver

        if resume:
            if run_id is None:
                raise ConfigError("resume needs a run id")
            info = self.runs.get(run_id)
            task = info.task
        elif not task or not task.strip():
            raise ConfigError("the task is empty")
        run_id = run_id or uuid.uuid4().hex[:12]
        if self.skills and self.memory is not None and not self._skills_retained:
            await retain_skills(self.memory, self.skills, self.namespace)  # idempotent
            self._skills_retained = True
        limits = self.limits if max_steps is None else _with(self.limits, max_steps=max_steps)
        if not resume:
            await asyncio.to_thread(  # never block the loop on runs.db: checkpoints share it
                self.runs.create, run_id, task, self.namespace, self.models["executor"].model_id,
                {"template": template, "max_steps": limits.max_steps})
        config = {"configurable": {"thread_id": run_id}, "recursion_limit": 10_000}
        start = time.monotonic()
        values: dict[str, Any] = {}
        async with AsyncExitStack() as stack:
            saver = stack.enter_context(InlineSqliteSaver.open(self.runs.path))
            graph = build_graph().compile(checkpointer=saver)
            if resume:
                snapshot = await graph.aget_state(config)
                if not snapshot.values:
                    raise NotFoundError(f"run {run_id} has no checkpoint to resume from")
                if not snapshot.next:
                    raise ConfigError(f"run {run_id} already finished; nothing to resume")
            context = self._context(run_id, stack, limits, environment, learn=learn,
                                    browser=browser)
            graph_input = None if resume else {
                "run_id": run_id, "task": task.strip(), "namespace": self.namespace,
                "template": template, "steps": [{"type": "task", "task": task.strip()}],
                "action_count": 0, "replans": 0, "tokens": 0, "cost": 0.0}
            await asyncio.to_thread(self.runs.update, run_id, status="running")
            try:
                async for mode, chunk in graph.astream(graph_input, config, context=context,
                                                       stream_mode=["custom", "values"]):
                    if mode == "values":
                        values = chunk
                    elif (event := event_from_stream(chunk)) is not None:
                        yield event
            except (asyncio.CancelledError, KeyboardInterrupt):
                await asyncio.to_thread(self.runs.update, run_id, status="interrupted")
                raise
            except AgentForgeError as exc:
                await asyncio.to_thread(self.runs.update, run_id, status="failed",
                                        error=str(exc))
                raise
        result = self._result(run_id, task, values, time.monotonic() - start)
        await asyncio.to_thread(
            self.runs.update, run_id, status="finished", outcome=result.outcome,
            answer=result.answer, actions=result.actions, tokens=result.tokens,
            cost=result.cost, seconds=result.seconds)
        if self.evolver is not None and learn:
            skill = next((s.get("replayed_skill") for s in result.steps
                          if s.get("replayed_skill")), None)
            reports = await self.evolver.after_episode(run_id, result.outcome, skill=skill)
            yield Event(kind="learned", run_id=run_id, node="learn",
                        data={"steps": [r.summary() for r in reports],
                              "operations": [op for r in reports for op in r.operations]})
        yield result

    async def arun(self, task: str, **kwargs: Any) -> RunResult:
        result: RunResult | None = None
        async for item in self.events(task, **kwargs):
            if isinstance(item, RunResult):
                result = item
        assert result is not None
        return result

    async def aresume(self, run_id: str, **kwargs: Any) -> RunResult:
        result: RunResult | None = None
        async for item in self.events(run_id=run_id, resume=True, **kwargs):
            if isinstance(item, RunResult):
                result = item
        assert result is not None
        return result

    def run(self, task: str, **kwargs: Any) -> RunResult:
        return asyncio.run(self.arun(task, **kwargs))

    def resume(self, run_id: str, **kwargs: Any) -> RunResult:
        return asyncio.run(self.aresume(run_id, **kwargs))

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        return self.runs.list(limit)

    def get_run(self, run_id: str) -> RunInfo:
        return self.runs.get(run_id)

    def close(self) -> None:
        if self._owns_memory and self.memory is not None:
            self.memory.close()

    def __enter__(self) -> Forge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _result(run_id: str, task: str, values: dict[str, Any], seconds: float) -> RunResult:
        final = values.get("final") or {}
        verdict = values.get("verdict") or {}
        return RunResult(
            run_id=run_id, task=task, answer=final.get("answer", ""),
            outcome=verdict.get("outcome", "unknown"), reward=verdict.get("reward"),
            status="finished", steps=values.get("steps", []),
            actions=values.get("action_count", 0), tokens=values.get("tokens", 0),
            cost=values.get("cost", 0.0), seconds=seconds, stop_reason=final.get("reason"))


def _registry(tools: Sequence[Tool | str] | None) -> ToolRegistry:
    from agentforge.tools.builtin import default_tools

    registry = ToolRegistry()
    names = [t for t in (tools if tools is not None else DEFAULT_TOOLS) if isinstance(t, str)]
    for item in default_tools(names) if names else []:
        registry.add(item)
    for item in tools or []:
        if not isinstance(item, str):
            registry.add(item)
    return registry


def _with(limits: Limits, **changes: Any) -> Limits:
    from dataclasses import replace
    return replace(limits, **changes)

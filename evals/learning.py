"""Learning inside an evolving harness run: the `Evolver` after each training episode, skills
admitted only after a replay on a fresh instance of their template in the real environment, and a
flashback check — after a learning pass that changed skills or recall weights, a few tasks that
succeeded earlier run again (frozen); if one now fails, that pass's skill and weight changes are
undone."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentforge.evolve.evolver import Evolver, LearnPolicy
from agentforge.evolve.report import LearnReport

if TYPE_CHECKING:
    from agentforge.evals.harness import Episode, RunConfig, _Worker
    from agentforge.evals.suite import Suite, Task
    from agentforge.evolve.induction import SkillCandidate
    from agentforge.sdk import Forge

FLASHBACKS = "flashbacks.jsonl"
_REVERTIBLE = ("skills", "weights")


@dataclass
class Learner:
    evolver: Evolver
    forge: Forge
    suite: Suite
    out: Path
    config: RunConfig
    flashback: int = 2  # earlier successes re-run after a pass that changed skills or weights
    seed: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _successes: list[Episode] = field(default_factory=list)
    _verifications: int = 0

    @classmethod
    def create(cls, forge: Forge, suite: Suite, out: Path, config: RunConfig) -> Learner | None:
        policy = LearnPolicy.parse(config.learn, every=config.learn_every,
                                   max_tokens=config.learn_tokens)
        if config.memory != "evolving" or not policy.steps or forge.memory is None:
            return None  # experiences only: the runtime's own distillation is all the learning
        evolver = Evolver(forge.memory, forge.models["reflector"], forge.namespace, policy)
        return cls(evolver, forge, suite, out, config, flashback=config.flashback,
                   seed=config.seed)

    async def after_episode(self, worker: _Worker, episode: Episode,
                            record: dict[str, Any]) -> dict[str, Any]:
        """Learn from a finished training episode; returns what the trace keeps of it."""
        skill = next((s.get("replayed_skill") for s in record.get("steps", [])
                      if s.get("replayed_skill")), None)
        async with self._lock:  # one learning pass at a time, whatever the number of workers
            reports = await self.evolver.after_episode(
                record.get("run_id") or "", record["outcome"], skill=skill,
                verify=lambda candidate: self._verify(worker, candidate))
            if record["success"]:
                self._successes.append(episode)
            flash = await self._flashback(worker, reports, episode)
        return {"learning": [r.summary() for r in reports],
                "learn_tokens": sum(r.tokens for r in reports),
                "learn_rejected": [x for r in reports for x in r.rejected][:10],
                **({"flashback": flash} if flash else {})}

    # --- skill verification by replay -----------------------------------------------------

    async def _verify(self, worker: _Worker, candidate: SkillCandidate) -> bool:
        """Replay the candidate on a fresh instance of a training task of its template."""
        from agentforge.runtime.planning import bind_template
        from agentforge.skills import bind
        from agentforge.tools import ToolContext, invoke_tool

        task = self._task_for(candidate.template_id)
        if task is None or worker.session is None:
            return False
        self._verifications += 1
        from agentforge.evals.harness import episode_seed

        seed = episode_seed(self.seed, 100_000 + self._verifications, task.task_id)
        intent = await worker.env.reset(task.raw, worker.session, seed)
        skill = candidate.to_skill()
        params = bind_template(skill.template or "", intent)
        if params is None:
            return False
        ctx = ToolContext(workspace=self.forge.workspace, browser_session=worker.session,
                          learn=False)
        for call in bind(skill, params):
            result = await invoke_tool(self.forge.registry, ctx, call, timeout_s=30.0)
            if not result.ok:
                return False
        evaluation = await worker.env.evaluate(task.raw, worker.session, "")
        answers_only = task.raw["eval"]["eval_types"] == ["string_match"]
        return evaluation.success or answers_only  # a skill brings the page; the model answers

    def _task_for(self, template_id: str | None) -> Task | None:
        for task in self.suite.tasks:
            if task.split == "train" and f"{self.suite.name}:{task.template}" == template_id:
                return task
        return None

    # --- flashback ---------------------------------------------------------------------------

    async def _flashback(self, worker: _Worker, reports: list[LearnReport],
                         current: Episode) -> dict[str, Any] | None:
        changed = [r for r in reports if r.step in _REVERTIBLE and (r.created or r.changed)]
        earlier = [e for e in self._successes if e.key != current.key][-self.flashback:]
        if not changed or not earlier:
            return None
        from agentforge.evals.harness import Episode, Phase

        results = []
        for episode in earlier:
            again = Episode(Phase(episode.phase.pass_no, "flashback", False), episode.task,
                            episode.seed)
            record = await worker.run(again, self.forge, self.config, self.suite)
            results.append({"task_id": episode.task.task_id, "success": record["success"],
                            "tokens": record["tokens"]})
        regressed = [r["task_id"] for r in results if not r["success"]]
        undone: list[str] = []
        if regressed:
            for report in changed:
                for op in report.operations:
                    await self.evolver.memory.aundo(op)
                    undone.append(op)
        summary = {"after": current.key, "reran": results, "regressed": regressed,
                   "undone": undone, "steps": [r.summary() for r in changed]}
        _append(self.out / FLASHBACKS, summary)
        return summary


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())

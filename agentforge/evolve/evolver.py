"""`Evolver`: runs the learning steps at a cadence with a hard token budget.

After every episode it votes on the insights the run recalled and counts a replayed skill's
outcome; every `every` episodes (or on demand, `learn()`) it resolves conflicts, distils insights,
retires failing ones, consolidates (merge near-duplicates, forget by utility and age), induces
skills from repeated successes (admitted only after a replay check) and tunes the recall
weights. Each step files its changes under its own undoable operation, so a caller (the eval
harness' flashback check) can take back a step that made things worse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentforge.errors import BudgetExceeded
from agentforge.evolve.report import LearnReport
from agentforge.llm import Budget, Budgeted, BudgetMeter

if TYPE_CHECKING:
    from agentforge.evolve.induction import SkillCandidate
    from agentforge.llm import LLM
    from agentforge.memory.engine import Memory

STEPS = ("conflicts", "insights", "skills", "weights")
VerifySkill = Callable[["SkillCandidate"], Awaitable[bool]]


@dataclass(frozen=True)
class LearnPolicy:
    steps: frozenset[str] = frozenset(STEPS)
    every: int = 1  # episodes between learning passes; 0: only when `learn()` is called
    max_tokens: int = 3000  # hard cap on the LLM tokens of one learning pass
    min_successes: int = 2  # successful episodes of a template before a skill is induced
    # logged recalls with outcomes before weights are tuned (fewer: a few episodes' noise; a
    # 0.5B model's run tuned recall off at ~20)
    min_tuning_logs: int = 60

    @classmethod
    def parse(cls, steps: Collection[str], **kwargs: int) -> LearnPolicy:
        from agentforge.errors import ConfigError

        unknown = sorted(set(steps) - set(STEPS) - {"experiences"})
        if unknown:
            raise ConfigError(f"unknown learning step(s) {', '.join(unknown)}; "
                              f"known: experiences, {', '.join(STEPS)}")
        return cls(steps=frozenset(s for s in steps if s in STEPS), **kwargs)


@dataclass
class Evolver:
    memory: Memory
    llm: LLM
    namespace: str
    policy: LearnPolicy = field(default_factory=LearnPolicy)
    episodes: int = 0

    async def after_episode(self, run_id: str, outcome: str, *, skill: str | None = None,
                            verify: VerifySkill | None = None) -> list[LearnReport]:
        """Per-episode bookkeeping, then a learning pass when the cadence says so."""
        reports: list[LearnReport] = []
        self.episodes += 1
        if "insights" in self.policy.steps and outcome in ("success", "failure"):
            from agentforge.evolve.insights import vote_insights

            reports.append(await vote_insights(self.memory, self.namespace, run_id, outcome))
        if skill and "skills" in self.policy.steps and outcome in ("success", "failure"):
            from agentforge.evolve.skills import record_skill_outcome

            await record_skill_outcome(self.memory, self.namespace, skill,
                                       outcome == "success")
        if self.policy.every and self.episodes % self.policy.every == 0:
            reports += await self.learn(verify=verify)
        return reports

    async def learn(self, *, verify: VerifySkill | None = None) -> list[LearnReport]:
        """One learning pass over the namespace, within the policy's token budget."""
        meter = BudgetMeter(Budget(max_tokens=self.policy.max_tokens))
        llm = Budgeted(self.llm, meter)
        reports: list[LearnReport] = []
        steps = self.policy.steps
        try:
            if "conflicts" in steps:
                from agentforge.evolve.conflicts import resolve_conflicts

                reports.append(await resolve_conflicts(
                    self.memory, self.namespace, llm, max_tokens=self._left(meter)))
            if "insights" in steps:
                from agentforge.evolve.insights import distil_insights, retire_insights

                reports.append(await distil_insights(
                    self.memory, self.namespace, llm, max_tokens=self._left(meter)))
                reports.append(await retire_insights(self.memory, self.namespace))
        except BudgetExceeded as exc:
            reports.append(LearnReport(step="budget", namespace=self.namespace,
                                       notes={"stopped": exc.message}))
        reports.append(await self._consolidate())  # growth control: merge, supersede, forget
        if "skills" in steps:
            reports.append(await self._skills(verify))
        if "weights" in steps:
            from agentforge.evolve.weights import tune_weights

            reports.append(await tune_weights(self.memory, self.namespace,
                                              min_logs=self.policy.min_tuning_logs))
        return reports

    async def _consolidate(self) -> LearnReport:
        """The LLM-free reflect: near-duplicates merged, keyed facts superseded, items forgotten
        by utility and age — memory stays bounded as episodes accumulate."""
        done = await self.memory.areflect(self.namespace)
        return LearnReport(step="consolidate", namespace=self.namespace, op_id=done.op_id,
                           changed=[c.record_id for c in done.changes],
                           notes={"counts": done.counts(), "truncated": done.truncated})

    def _left(self, meter: BudgetMeter) -> int:
        return max(0, self.policy.max_tokens - meter.snapshot().tokens)

    async def _skills(self, verify: VerifySkill | None) -> LearnReport:
        from agentforge.evolve.induction import induce_skills
        from agentforge.evolve.skills import admit_skill, known_skill, load_episode_traces

        traces = await load_episode_traces(self.memory, self.namespace)
        candidates = induce_skills(traces, min_successes=self.policy.min_successes)
        report = LearnReport(step="skills", namespace=self.namespace)
        for candidate in candidates:
            if await known_skill(self.memory, self.namespace, candidate):
                continue  # held already, unchanged: verified when it was admitted
            if verify is not None and not await verify(candidate):
                report.rejected.append(f"{candidate.name}: the replay check failed")
                continue
            admitted = await admit_skill(self.memory, self.namespace, candidate,
                                         verified_by="replay" if verify else "offline")
            report.created += admitted.created
            report.changed += admitted.changed
            if admitted.op_id:
                report.op_ids.append(admitted.op_id)
            report.rejected += admitted.rejected
        return report

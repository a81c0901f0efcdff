"""`reflect` without an LLM: merge near-duplicates, resolve keyed conflicts by superseding, and
forget by utility and age. Plans first, then applies the plan in one transaction (unless
`dry_run`); every change goes to history under one operation that `undo` reverses.

LLM distillation (insights, skills) plugs in on this hook in the runtime; it must hand over changes
as the same validated `Change` objects, so nothing an LLM says is applied unchecked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from agentforge.memory.components import Components
from agentforge.memory.records import MemoryRecord, utcnow, utility
from agentforge.memory.store import blob_to_vector
from agentforge.types import Level, Status


@dataclass(frozen=True)
class ReflectPolicy:
    merge_threshold: float = 0.95  # cosine at or above which two items of a level/kind merge
    half_life_days: float = 30.0  # utility halves after this long without a recall
    forget_below: float = 0.05  # forget items whose decayed utility falls below this…
    min_age_days: float = 14.0  # …and that are at least this old
    failing_uses: int = 3  # forget items recalled into at least this many failed runs…
    failing_utility: float = 0.25  # …whose utility is below this


@dataclass(frozen=True)
class ReflectBudget:
    max_changes: int = 1000
    max_seconds: float = 30.0


@dataclass
class Change:
    record_id: str
    action: str  # merge | absorb | supersede | forget
    fields: dict[str, Any]
    reason: str


@dataclass
class ReflectReport:
    namespace: str
    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    op_id: str | None = None
    truncated: bool = False
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self.changes:
            out[change.action] = out.get(change.action, 0) + 1
        return out


def _keeper_first(a: MemoryRecord, b: MemoryRecord) -> tuple[MemoryRecord, MemoryRecord]:
    def rank(r: MemoryRecord) -> tuple[float, int, float]:
        return (r.utility, r.recalls, -r.created_at.timestamp())

    return (a, b) if rank(a) >= rank(b) else (b, a)


@dataclass
class _Usage:
    """A record's usage as the merges planned so far leave it: a keeper that absorbs a second
    duplicate adds it to what it absorbed already (each absorb holds the running totals)."""

    recalls: int
    successes: int
    failures: int
    tags: set[str]

    @classmethod
    def of(cls, record: MemoryRecord) -> _Usage:
        return cls(record.recalls, record.successes, record.failures, set(record.tags))

    def absorb(self, other: _Usage) -> None:
        self.recalls += other.recalls
        self.successes += other.successes
        self.failures += other.failures
        self.tags |= other.tags


def plan_merges(records: list[MemoryRecord], policy: ReflectPolicy, budget: _Clock) -> list[Change]:
    changes: list[Change] = []
    usage: dict[str, _Usage] = {}
    groups: dict[tuple[str, str], list[MemoryRecord]] = {}
    for r in records:
        if r.level != Level.EPISODE.value:
            groups.setdefault((r.level, r.kind), []).append(r)
    gone: set[str] = set()
    for group in groups.values():
        if len(group) < 2:
            continue
        matrix = np.stack([blob_to_vector(r.embedding) for r in group])
        for i in range(len(group)):
            if budget.spent(len(changes)):
                return changes
            if group[i].id in gone:
                continue
            sims = matrix[i + 1 :] @ matrix[i]
            for j in np.nonzero(sims >= policy.merge_threshold)[0] + i + 1:
                other = group[int(j)]
                if other.id in gone or (group[i].key and other.key and group[i].key != other.key):
                    continue
                keep, drop = _keeper_first(group[i], other)
                gone.add(drop.id)
                kept = usage.setdefault(keep.id, _Usage.of(keep))
                kept.absorb(usage.get(drop.id) or _Usage.of(drop))
                changes.append(
                    Change(
                        drop.id,
                        "merge",
                        {
                            "status": Status.MERGED.value,
                            "valid_to": utcnow(),
                            "superseded_by": keep.id,
                        },
                        f"near-duplicate of {keep.id} (cosine {float(sims[int(j) - i - 1]):.3f})",
                    )
                )
                changes.append(
                    Change(
                        keep.id,
                        "absorb",
                        {
                            "recalls": kept.recalls,
                            "successes": kept.successes,
                            "failures": kept.failures,
                            "utility": utility(kept.successes, kept.failures),
                            "tags": sorted(kept.tags),
                        },
                        f"absorbed {drop.id}",
                    )
                )
                if drop is group[i]:
                    break
    return changes


def plan_supersedes(records: list[MemoryRecord]) -> list[Change]:
    by_key: dict[str, list[MemoryRecord]] = {}
    for r in records:
        if r.key:
            by_key.setdefault(r.key, []).append(r)
    changes = []
    for key, group in by_key.items():
        group.sort(key=lambda r: (r.valid_from, r.created_at))
        newest = group[-1]
        for old in group[:-1]:
            changes.append(
                Change(
                    old.id,
                    "supersede",
                    {
                        "status": Status.SUPERSEDED.value,
                        "valid_to": newest.valid_from,
                        "superseded_by": newest.id,
                    },
                    f"newer value for {key}",
                )
            )
    return changes


def forget(record_id: str, now: datetime, reason: str) -> Change:
    """A change that forgets a record (its validity closed at `now`; undo restores it)."""
    return Change(record_id, "forget", {"status": Status.FORGOTTEN.value, "valid_to": now}, reason)


def plan_forgetting(records: list[MemoryRecord], policy: ReflectPolicy) -> list[Change]:
    now = utcnow()
    changes = []
    for r in records:
        if r.level == Level.EPISODE.value:
            continue  # episodes are the evidence; they are never decayed away
        if r.failures >= policy.failing_uses and r.utility < policy.failing_utility:
            reason = f"failed in {r.failures} runs (utility {r.utility:.2f})"
            changes.append(forget(r.id, now, reason))
            continue
        age = now - (r.last_recalled_at or r.created_at)
        decayed = r.utility * 0.5 ** (age / timedelta(days=policy.half_life_days))
        if decayed < policy.forget_below and age >= timedelta(days=policy.min_age_days):
            changes.append(
                forget(r.id, now, f"unused for {age.days} days (decayed utility {decayed:.3f})")
            )
    return changes


class _Clock:
    def __init__(self, budget: ReflectBudget) -> None:
        self.budget = budget
        self.start = time.monotonic()
        self.truncated = False

    def spent(self, changes: int) -> bool:
        over = (
            changes >= self.budget.max_changes
            or time.monotonic() - self.start > self.budget.max_seconds
        )
        self.truncated = self.truncated or over
        return over


def plan(
    c: Components, namespace: str, policy: ReflectPolicy, budget: ReflectBudget
) -> tuple[list[Change], bool]:
    clock = _Clock(budget)
    records = list(c.store.iter_records(namespace))
    changes = plan_supersedes(records)
    touched = {ch.record_id for ch in changes}
    records = [r for r in records if r.id not in touched]
    changes += plan_merges(records, policy, clock)
    touched |= {ch.record_id for ch in changes if ch.action != "absorb"}
    changes += plan_forgetting([r for r in records if r.id not in touched], policy)
    if len(changes) > budget.max_changes:
        clock.truncated = True
        changes = changes[: budget.max_changes]
        if changes and changes[-1].action == "merge":  # keep merge/absorb pairs whole
            changes.pop()
    return changes, clock.truncated


def apply(c: Components, namespace: str, changes: list[Change], kind: str = "reflect"
          ) -> tuple[str, list[MemoryRecord]]:
    """Apply planned changes in one transaction (one operation named `kind` in history),
    skipping any whose record moved meanwhile."""
    touched: list[MemoryRecord] = []
    with c.store.write() as s:
        op = c.store.begin_operation(s, kind, namespace, changes=len(changes))
        for change in changes:
            record = c.store.fetch(s, [change.record_id]).get(change.record_id)
            if record is None or record.status != Status.ACTIVE.value:
                continue
            c.store.change(s, op, record, change.action, reason=change.reason, **change.fields)
            touched.append(record)
    return op.id, touched

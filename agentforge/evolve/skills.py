"""Skills (L3) in memory: the episodes induction reads, and the skills it gives.

`load_episode_traces` reads the episodes that carry a template and an action trace;
`agentforge.evolve.induction` induces and checks a skill per template (no LLM). Admitted skills
are `Level.SKILL` memories under doc id "skill:<name>" (a changed skill supersedes its previous
version; `undo` takes either step back) that export as SKILL.md folders. Replay outcomes are
counted in the skill's metadata (`replays`), with history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentforge.errors import NotFoundError
from agentforge.evolve.induction import EpisodeTrace, SkillCandidate, induce
from agentforge.evolve.report import LearnReport
from agentforge.memory.records import MemoryRecord
from agentforge.skills import (
    SKILL_FILE,
    Skill,
    SkillAction,
    skill_metadata,
    skill_text,
    skill_to_markdown,
)
from agentforge.types import Level, MemoryInput, Provenance, Trust, parse_namespace

if TYPE_CHECKING:
    from agentforge.memory.engine import Memory


# --- memory -----------------------------------------------------------------------------------


def _namespace(memory: Memory, namespace: str | Sequence[str] | None) -> str:
    return memory.namespace if namespace is None else parse_namespace(namespace)


async def load_episode_traces(memory: Memory, namespace: str | Sequence[str] | None = None
                              ) -> list[EpisodeTrace]:
    """The active episodes of a namespace that carry a template and an action trace, oldest
    first."""
    ns, store = _namespace(memory, namespace), memory.c.store

    def read() -> list[MemoryRecord]:
        with store.read() as s:
            return store.active_where(s, ns, level=Level.EPISODE.value)

    records = sorted(await asyncio.to_thread(read), key=lambda r: r.created_at)
    return [t for t in map(episode_trace, records) if t is not None]


def episode_trace(record: MemoryRecord) -> EpisodeTrace | None:
    meta = record.meta or {}
    template, trace = meta.get("template"), meta.get("trace")
    if not isinstance(template, str) or not template or not isinstance(trace, list):
        return None
    return EpisodeTrace(
        task=_task_text(record),
        template_id=template,
        outcome=str(meta.get("outcome") or "unknown"),
        actions=[a for a in trace if isinstance(a, dict)],
        run_id=meta.get("run_id") or record.source,
    )


def _task_text(record: MemoryRecord) -> str:
    """The task of an episode: its content starts "Task: <task>\nOutcome: …" (the title is cut)."""
    content = record.content
    if content.startswith("Task: "):
        end = content.find("\nOutcome: ")
        task = content[len("Task: ") : end] if end >= 0 else content[6:].split("\n", 1)[0]
        return task.strip()
    return (record.title or content.split("\n", 1)[0]).strip()


def skill_from_metadata(meta: Mapping[str, Any]) -> Skill:
    return Skill(
        name=meta["name"],
        description=meta.get("description") or "",
        parameters=dict(meta.get("parameters") or {}),
        tools=list(meta.get("tools") or []),
        template=meta.get("template"),
        body=meta.get("body") or "",
        actions=[SkillAction(**a) for a in meta.get("actions") or []],
    )


def _skill_records(memory: Memory, ns: str) -> dict[str, list[MemoryRecord]]:
    """Active skill records by doc id ("skill:<name>")."""
    store = memory.c.store
    with store.read() as s:
        records = store.active_where(s, ns, level=Level.SKILL.value)
    out: dict[str, list[MemoryRecord]] = {}
    for record in records:
        if record.doc_id and record.doc_id.startswith("skill:"):
            out.setdefault(record.doc_id, []).append(record)
    return out


def _unchanged(old: Mapping[str, Any], skill: Skill) -> bool:
    return (
        old.get("template") == skill.template
        and old.get("actions") == [a.model_dump() for a in skill.actions]
        and list(old.get("parameters") or {}) == list(skill.parameters)
    )


async def known_skill(memory: Memory, namespace: str | Sequence[str] | None,
                      candidate: SkillCandidate) -> bool:
    """Whether memory already holds this candidate unchanged (no need to verify it again)."""
    skill = candidate.to_skill()
    records = await asyncio.to_thread(_skill_records, memory, _namespace(memory, namespace))
    return any(_unchanged(r.meta or {}, skill) for r in records.get(f"skill:{skill.name}", []))


async def admit_skill(memory: Memory, namespace: str | Sequence[str] | None,
                      candidate: SkillCandidate, *, verified_by: str) -> LearnReport:
    """Retain a checked candidate as a `Level.SKILL` memory (operation "learn-skills")."""
    return await admit_skills(memory, namespace, [candidate], verified_by=verified_by)


async def admit_skills(memory: Memory, namespace: str | Sequence[str] | None,
                       candidates: Sequence[SkillCandidate], *, verified_by: str) -> LearnReport:
    """Retain candidates under one "learn-skills" operation, merging before creating: a skill
    already stored the same is left alone; a changed one supersedes the stored version (kept in
    history, restored by undo); a hand-written skill of the same name is never replaced."""
    ns = _namespace(memory, namespace)
    report = LearnReport(step="skills", namespace=ns)
    stored = await asyncio.to_thread(_skill_records, memory, ns)
    items: list[MemoryInput] = []
    names: set[str] = set()
    for candidate in candidates:
        skill = candidate.to_skill()
        if skill.name in names:
            report.rejected.append(f"{candidate.template_id}: another template gave {skill.name}")
            continue
        names.add(skill.name)
        old = stored.get(f"skill:{skill.name}", [])
        old_meta = old[0].meta if old else {}
        if old and not old_meta.get("induced_from"):
            report.rejected.append(f"{skill.name}: a hand-written skill has this name; kept it")
            continue
        if old and _unchanged(old_meta, skill):
            report.notes.setdefault("unchanged", []).append(skill.name)
            continue
        meta = {**skill_metadata(skill), "template_id": candidate.template_id,
                "verified_by": verified_by, "successes": candidate.successes,
                "failures": candidate.failures, "induced_from": list(candidate.induced_from),
                "replays": _replays(old_meta)}
        items.append(MemoryInput(
            content=skill_text(skill), level=Level.SKILL, kind="workflow", title=skill.name,
            tags=["skill", "induced"], metadata=meta, doc_id=f"skill:{skill.name}",
            provenance=Provenance(source=candidate.template_id, role="evolve",
                                  trust=Trust.DERIVED)))
        report.changed += [r.id for r in old]
    if items:
        result = await memory.aretain(items, namespace=ns, operation="learn-skills")
        report.op_id = result.op_id
        report.created = list(dict.fromkeys(result.ids))
    return report


async def learn_skills(memory: Memory, namespace: str | Sequence[str] | None = None, *,
                       min_successes: int = 2, verified_by: str = "offline-replay"
                       ) -> LearnReport:
    """The whole step: read the episodes, induce, admit what passed the checks."""
    induction = induce(await load_episode_traces(memory, namespace), min_successes=min_successes)
    report = await admit_skills(memory, namespace, induction.candidates, verified_by=verified_by)
    report.rejected = induction.rejected + report.rejected
    return report


async def export_skills(memory: Memory, namespace: str | Sequence[str] | None,
                        directory: str | Path) -> list[Path]:
    """Write every active skill as `<directory>/<name>/SKILL.md` (`discover_skills(directory)`
    and `retain_skills` import them again)."""
    stored = await asyncio.to_thread(_skill_records, memory, _namespace(memory, namespace))
    paths = []
    for doc_id in sorted(stored):
        skill = skill_from_metadata(stored[doc_id][0].meta)
        folder = Path(directory) / skill.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / SKILL_FILE
        path.write_text(skill_to_markdown(skill), encoding="utf-8")
        paths.append(path)
    return paths


# --- replay outcomes --------------------------------------------------------------------------


def _replays(meta: Mapping[str, Any]) -> dict[str, int]:
    found = meta.get("replays") if isinstance(meta.get("replays"), Mapping) else {}
    return {"successes": int(found.get("successes", 0)), "failures": int(found.get("failures", 0))}


async def record_skill_outcome(memory: Memory, namespace: str | Sequence[str] | None,
                               skill_name: str, success: bool) -> str:
    """Count one replay of a skill as a success or a failure (operation "skill-outcome" in
    history; undo takes it back). Returns the operation id."""
    ns, store = _namespace(memory, namespace), memory.c.store
    outcome = "successes" if success else "failures"

    def work() -> str:
        with store.write() as s:
            records = store.active_where(s, ns, doc_id=f"skill:{skill_name}",
                                         level=Level.SKILL.value)
            if not records:
                raise NotFoundError(f"no skill named {skill_name!r} in namespace {ns}")
            op = store.begin_operation(s, "skill-outcome", ns, skill=skill_name, success=success)
            for record in records:
                replays = _replays(record.meta)
                replays[outcome] += 1
                store.change(s, op, record, "credit", reason=f"skill replay: {outcome[:-2]}",
                             meta={**record.meta, "replays": replays})
            return op.id

    return await asyncio.to_thread(work)


async def skill_success_rate(memory: Memory, namespace: str | Sequence[str] | None,
                             skill_name: str) -> float | None:
    """The share of a skill's replays that succeeded; None before its first replay."""
    stored = await asyncio.to_thread(_skill_records, memory, _namespace(memory, namespace))
    records = stored.get(f"skill:{skill_name}")
    if not records:
        raise NotFoundError(f"no skill named {skill_name!r}")
    replays = _replays(records[0].meta)
    total = replays["successes"] + replays["failures"]
    return replays["successes"] / total if total else None

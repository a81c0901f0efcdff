"""Small helpers shared by the nodes: events and the memory-hit text the prompts show."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentforge.memory.records import utcnow
from agentforge.runtime.context import RunContext
from agentforge.runtime.events import Event, EventKind
from agentforge.runtime.state import RunState
from agentforge.types import RecallHit


def emit(runtime: Runtime[RunContext], state: RunState, kind: EventKind, node: str,
         **data: Any) -> None:
    event = Event(kind=kind, run_id=state.get("run_id", ""), node=node,
                  data={**data, "at": utcnow().isoformat()})
    writer = runtime.stream_writer
    if writer is not None:
        writer({"agentforge_event": True, "event": event.model_dump(mode="json")})


def hit_line(hit: RecallHit, max_chars: int = 400) -> str:
    label = hit.level.value
    meta = hit.metadata or {}
    if hit.level.value == "episode":
        label = f"past episode, {meta.get('outcome', 'unknown')}"
    elif hit.kind.startswith("lesson"):
        label = f"lesson from a {meta.get('outcome', 'past')} run"
    elif hit.level.value == "skill":
        label = f"skill {meta.get('name', hit.title or '')}".strip()
    text = hit.content if not hit.title or hit.content.startswith(hit.title) else (
        f"{hit.title}: {hit.content}")
    text = " ".join(text.split())
    return f"- [{label}] {text[:max_chars]}"


def hit_summary(hit: RecallHit) -> dict[str, Any]:
    return {"id": hit.id, "level": hit.level.value, "kind": hit.kind,
            "title": hit.title, "content": hit.content[:500], "score": round(hit.score, 4),
            "metadata": hit.metadata}

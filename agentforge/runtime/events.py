"""The event stream of a run (step started, tool called, memory recalled, tokens spent, …), emitted
through LangGraph's custom stream and consumed alike by the CLI, the SDK and the eval harness."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

EventKind = Literal[
    "run_started", "memory_recalled", "plan", "step_started", "tool_called", "tokens",
    "final", "judged", "reflected", "retained", "learned", "run_finished", "error",
]


class Event(BaseModel):
    kind: EventKind
    run_id: str
    node: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.kind}: " + ", ".join(f"{k}={v}" for k, v in self.data.items())


def event_from_stream(chunk: Any) -> Event | None:
    """Our events travel as dicts tagged `agentforge_event` through LangGraph's custom stream."""
    if isinstance(chunk, dict) and chunk.get("agentforge_event"):
        return Event.model_validate(chunk["event"])
    return None

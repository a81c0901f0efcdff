"""Memory tools for the agent itself: recall what it knows, retain a fact or lesson for later
runs. They use the run's memory, namespace and run id (recalls are logged for credit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentforge.errors import ToolError
from agentforge.tools.base import ToolContext
from agentforge.tools.decorator import tool
from agentforge.types import Level, Provenance, Trust

if TYPE_CHECKING:
    from agentforge.memory.engine import Memory

RECALL_LEVELS = (Level.EXPERIENCE, Level.INSIGHT, Level.SKILL, Level.EPISODE)


def _memory(ctx: ToolContext) -> Memory:
    if ctx.memory is None:
        raise ToolError("memory is off for this run")
    return ctx.memory


@tool
async def memory_recall(ctx: ToolContext, query: str, k: int = 5) -> str:
    """Search long-term memory (facts, lessons from past runs, strategies, skills).

    Args:
        query: What to look for, in a few words or a question.
        k: How many memories to return (1-20).
    """
    result = await _memory(ctx).arecall(
        query,
        k=max(1, min(k, 20)),
        levels=list(RECALL_LEVELS),
        namespace=ctx.namespace,
        run_id=ctx.run_id,
    )
    if not result.hits:
        return "no memories match"
    lines = []
    for hit in result.hits:
        text = " ".join(hit.content.split())
        text = text if len(text) <= 500 else text[:500] + "…"
        title = f" {hit.title}:" if hit.title else ""
        lines.append(f"- [{hit.level.value}/{hit.kind}]{title} {text}")
    return "\n".join(lines)


@tool
async def memory_retain(ctx: ToolContext, content: str, kind: str = "fact") -> str:
    """Remember something for later runs: a fact you were told or a lesson you learned.

    Args:
        content: What to remember, as a self-contained sentence or two.
        kind: "fact" for information, "lesson" for what worked or failed and why.
    """
    result = await _memory(ctx).aretain(
        content,
        level=Level.EXPERIENCE,
        kind=kind.strip().lower() or "fact",
        namespace=ctx.namespace,
        provenance=Provenance(source=ctx.run_id, role="executor", trust=Trust.OBSERVED),
    )
    if result.created == 0:
        return "already known (nothing new stored)"
    return f"remembered ({result.created} new item{'s' if result.created > 1 else ''})"


MEMORY_TOOLS = [memory_recall, memory_retain]

"""`ToolRegistry`: the tools of an agent, and the choice of the few a task needs.

With more tools than the model should see, `aselect` ranks them by tool memory: each tool's
description is retained as a `Level.TOOL` memory (kind "tool_description", doc id "tool:<name>"),
recalled with the task, and combined with the tool's success rate from its call record.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from agentforge.errors import ConfigError
from agentforge.llm.types import ToolSpec
from agentforge.tools.base import Tool
from agentforge.types import Level

if TYPE_CHECKING:
    from agentforge.memory.engine import Memory

RELEVANCE_WEIGHT = 0.75  # the rest of the score is the (smoothed) success rate
_WORD = re.compile(r"[a-z0-9]+")


class ToolRegistry:
    """Tools by name, in registration order."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._retained: set[tuple[int, str, str, int]] = set()  # (memory, namespace, tool, hash)
        for item in tools:
            self.add(item)

    def add(self, item: Tool, *, replace: bool = False) -> Tool:
        if not isinstance(item, Tool):
            raise ConfigError(f"{item!r} is not a Tool: decorate the function with @tool")
        if item.name in self._tools and not replace and self._tools[item.name] is not item:
            raise ConfigError(f"a tool named {item.name!r} is already registered")
        self._tools[item.name] = item
        return item

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[ToolSpec]:
        return [t.spec() for t in self._tools.values()]

    # --- selection --------------------------------------------------------------------------

    def select(self, task: str, k: int) -> list[Tool]:
        """The `k` tools most relevant to the task by word overlap (no memory needed); all of
        them when there are at most `k`. `aselect` ranks with tool memory."""
        tools = list(self._tools.values())
        if len(tools) <= k:
            return tools
        words = set(_WORD.findall(task.lower()))
        scores = {t.name: _overlap(words, t) for t in tools}
        return _top(tools, scores, k)

    async def aselect(
        self, task: str, k: int, memory: Memory | None = None, *, namespace: str | None = None
    ) -> list[Tool]:
        """The `k` tools to offer for `task`: all of them when there are at most `k`; otherwise
        ranked by recalled description relevance and success rate from tool memory."""
        tools = list(self._tools.values())
        if len(tools) <= k:
            return tools
        if memory is None:
            return self.select(task, k)
        ns = namespace or memory.namespace
        await self.remember(memory, namespace=ns)
        result = await memory.arecall(
            task,
            namespace=ns,
            k=len(tools),
            levels=[Level.TOOL],
            kinds=["tool_description"],
            log=False,
        )
        top = max((h.score for h in result.hits), default=0.0) or 1.0
        relevance: dict[str, float] = {}
        for hit in result.hits:
            name = hit.metadata.get("tool")
            if name in self._tools and name not in relevance:
                relevance[name] = hit.score / top
        records = await asyncio.to_thread(memory.c.store.tools, ns)
        rates = {r.name: (r.successes + 1) / (r.calls + 2) for r in records}
        scores = {
            t.name: RELEVANCE_WEIGHT * relevance.get(t.name, 0.0)
            + (1 - RELEVANCE_WEIGHT) * rates.get(t.name, 0.5)
            for t in tools
        }
        return _top(tools, scores, k)

    async def remember(self, memory: Memory, *, namespace: str | None = None) -> int:
        """Retain every tool's description as tool memory (idempotent; cached per process).
        Returns how many tools were (re)written."""
        ns = namespace or memory.namespace
        todo = []
        for t in self._tools.values():
            key = (id(memory), ns, t.name, hash(t.description))
            if key not in self._retained:
                todo.append((key, t))
        for key, t in todo:
            await memory.aretain(
                describe(t),
                namespace=ns,
                level=Level.TOOL,
                kind="tool_description",
                title=t.name,
                doc_id=f"tool:{t.name}",
                metadata={"tool": t.name},
            )
            self._retained.add(key)
        return len(todo)


def describe(t: Tool) -> str:
    """The text embedded for a tool: name, description and argument names with descriptions."""
    args = "; ".join(
        f"{name}: {schema.get('description', '')}".strip(": ")
        for name, schema in t.parameters.get("properties", {}).items()
    )
    return f"{t.name}: {t.description}" + (f"\nArguments: {args}" if args else "")


def _overlap(words: set[str], t: Tool) -> float:
    mine = set(_WORD.findall(f"{t.name.replace('_', ' ')} {t.description}".lower()))
    return len(words & mine) / (len(mine) ** 0.5 or 1.0)


def _top(tools: list[Tool], scores: dict[str, float], k: int) -> list[Tool]:
    order = {t.name: i for i, t in enumerate(tools)}
    return sorted(tools, key=lambda t: (-scores[t.name], order[t.name]))[:k]

"""Built-in tools, by group: "browser", "http", "python", "files", "memory".

`default_tools(["browser", "files"])` returns those groups' tools; single tool names work too
(`default_tools(["http_fetch"])`). Groups are imported on demand.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from agentforge.errors import ConfigError
from agentforge.tools.base import Tool

GROUPS: dict[str, tuple[str, str]] = {  # group -> (module, list attribute)
    "browser": ("agentforge.tools.builtin.browser", "BROWSER_TOOLS"),
    "http": ("agentforge.tools.builtin.http", "HTTP_TOOLS"),
    "python": ("agentforge.tools.builtin.python_exec", "PYTHON_TOOLS"),
    "files": ("agentforge.tools.builtin.files", "FILE_TOOLS"),
    "memory": ("agentforge.tools.builtin.memory_tools", "MEMORY_TOOLS"),
}


def group_tools(group: str) -> list[Tool]:
    module, attribute = GROUPS[group]
    return list(getattr(importlib.import_module(module), attribute))


def default_tools(names: Sequence[str] | None = None) -> list[Tool]:
    """The built-in tools of the named groups (or single tools); all groups when `names` is
    None. Unknown names raise ConfigError listing what exists."""
    wanted = list(GROUPS) if names is None else list(names)
    chosen: dict[str, Tool] = {}
    by_name: dict[str, Tool] | None = None
    for name in wanted:
        if name in GROUPS:
            tools = group_tools(name)
        else:
            if by_name is None:
                by_name = {t.name: t for g in GROUPS for t in group_tools(g)}
            if name not in by_name:
                raise ConfigError(
                    f"unknown tool or tool group {name!r}; groups: {', '.join(GROUPS)}; "
                    f"tools: {', '.join(by_name)}"
                )
            tools = [by_name[name]]
        for t in tools:
            chosen.setdefault(t.name, t)
    return list(chosen.values())


__all__ = ["GROUPS", "default_tools", "group_tools"]

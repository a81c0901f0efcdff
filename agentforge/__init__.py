"""AgentForge: agents that get better with use.

The public API is listed in `__all__`; names are imported lazily, so `import agentforge` (and the
CLI's `--help`) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from agentforge._version import __version__

if TYPE_CHECKING:
    from agentforge.errors import (
        AgentForgeError,
        BudgetExceeded,
        ConfigError,
        LLMError,
        MemoryStoreError,
        Retry,
        ToolError,
    )
    from agentforge.evolve.evolver import LearnPolicy
    from agentforge.memory.engine import Memory
    from agentforge.sdk import Forge, RunResult
    from agentforge.settings import Settings
    from agentforge.tools import Tool, ToolContext, tool

_EXPORTS = {
    "Forge": "agentforge.sdk",
    "RunResult": "agentforge.sdk",
    "Memory": "agentforge.memory.engine",
    "LearnPolicy": "agentforge.evolve.evolver",
    "Settings": "agentforge.settings",
    "Tool": "agentforge.tools",
    "ToolContext": "agentforge.tools",
    "tool": "agentforge.tools",
    "AgentForgeError": "agentforge.errors",
    "BudgetExceeded": "agentforge.errors",
    "ConfigError": "agentforge.errors",
    "LLMError": "agentforge.errors",
    "MemoryStoreError": "agentforge.errors",
    "Retry": "agentforge.errors",
    "ToolError": "agentforge.errors",
}

__all__ = [
    "AgentForgeError",
    "BudgetExceeded",
    "ConfigError",
    "Forge",
    "LLMError",
    "LearnPolicy",
    "Memory",
    "MemoryStoreError",
    "Retry",
    "RunResult",
    "Settings",
    "Tool",
    "ToolContext",
    "ToolError",
    "__version__",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentforge' has no attribute {name!r}")
    return getattr(import_module(module), name)

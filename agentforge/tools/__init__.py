"""Tools: typed functions the model can call (`@tool`), their registry, and invocation with tool
memory. Built-ins live in `agentforge.tools.builtin` (imported on demand)."""

from agentforge.tools.base import Tool, ToolContext
from agentforge.tools.decorator import tool
from agentforge.tools.invoke import ToolResult, invoke_tool, tool_lessons
from agentforge.tools.registry import ToolRegistry

__all__ = [
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "invoke_tool",
    "tool",
    "tool_lessons",
]

"""AgentForge: agents that get better with use."""

from agentforge._version import __version__

__all__ = ["__version__"]

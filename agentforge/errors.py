"""The AgentForge error hierarchy: each error says whose fault it is and carries its data.

The CLI turns any `AgentForgeError` into one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

from typing import Any


class AgentForgeError(Exception):
    """Base of every error AgentForge raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return self.message


class ConfigError(AgentForgeError):
    """The user's setup or input is wrong (bad setting, bad namespace, bad file)."""

    exit_code = 2


class InputError(ConfigError):
    """A value given by the user or caller cannot be accepted (empty, binary, too large…)."""


class NotFoundError(ConfigError):
    """A record, run or history entry the user named does not exist."""


class LLMError(AgentForgeError):
    """A model call failed (provider error, timeout, invalid structured output)."""


class ToolError(AgentForgeError):
    """A tool failed in a way the model cannot correct."""


class Retry(ToolError):
    """Raised by a tool to hand the model a correction and let it try again."""


class MemoryStoreError(AgentForgeError):
    """The memory store or index failed or is inconsistent (never shadows builtin MemoryError)."""


class BudgetExceeded(AgentForgeError):
    """A run or reflect hit an enforced budget (steps, tokens, cost, wall time)."""

    def __init__(self, what: str, limit: float, used: float) -> None:
        super().__init__(
            f"budget exceeded: {what} used {used:g} of {limit:g}", what=what, limit=limit, used=used
        )
        self.what = what
        self.limit = limit
        self.used = used

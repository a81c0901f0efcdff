"""What one learning step did: the operation it filed (undo takes it back), what it created and
changed, the tokens it spent, and what it refused to apply (LLM output that failed validation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LearnReport:
    step: str  # insights | retire | conflicts | skills | weights
    namespace: str
    op_id: str | None = None  # None: nothing was written
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    tokens: int = 0
    rejected: list[str] = field(default_factory=list)  # why each refused proposal was refused
    notes: dict[str, Any] = field(default_factory=dict)
    op_ids: list[str] = field(default_factory=list)  # further operations, for multi-op steps

    @property
    def operations(self) -> list[str]:
        """Every operation this step filed (undo them all to take the step back)."""
        return ([self.op_id] if self.op_id else []) + self.op_ids

    def summary(self) -> str:
        parts = [f"{self.step}: {len(self.created)} created, {len(self.changed)} changed"]
        if self.rejected:
            parts.append(f"{len(self.rejected)} rejected")
        if self.tokens:
            parts.append(f"{self.tokens} tokens")
        return ", ".join(parts)

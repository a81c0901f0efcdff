"""Shared types: namespaces, memory levels, provenance, recall results.

Scores follow one contract everywhere: higher is more similar / more relevant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentforge.errors import InputError

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
MAX_NAMESPACE_DEPTH = 8


class Level(StrEnum):
    """Levels of the memory hierarchy, raw to distilled."""

    EPISODE = "episode"  # L0: one run of a task, append-only
    EXPERIENCE = "experience"  # L1: distilled from one episode, or a plain fact
    INSIGHT = "insight"  # L2: cross-episode strategy
    SKILL = "skill"  # L3: parameterised workflow
    TOOL = "tool"  # tool memory: lessons and descriptions per tool


class Trust(StrEnum):
    OBSERVED = "observed"
    DERIVED = "derived"
    IMPORTED = "imported"


class Status(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    MERGED = "merged"
    FORGOTTEN = "forgotten"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


def parse_namespace(value: str | Sequence[str]) -> str:
    """Validate a namespace given as "a/b" or ("a", "b") and return its canonical "a/b" form."""
    parts = value.split("/") if isinstance(value, str) else list(value)
    if not parts or len(parts) > MAX_NAMESPACE_DEPTH:
        raise InputError(f"namespace must have 1 to {MAX_NAMESPACE_DEPTH} parts, got {value!r}")
    for part in parts:
        if not isinstance(part, str) or not _SEGMENT.match(part):
            raise InputError(
                f"bad namespace {value!r}: each part is 1-64 characters of letters, digits, "
                "'_', '.', '-', starting with a letter or digit"
            )
    return "/".join(parts)


class Provenance(BaseModel):
    """Where a memory came from."""

    model_config = ConfigDict(frozen=True)

    source: str | None = None  # document id, episode id or run id
    step: int | None = None
    role: str | None = None  # user | planner | executor | reflector | import
    trust: Trust = Trust.OBSERVED


class MemoryInput(BaseModel):
    """One thing to retain."""

    content: str
    level: Level = Level.EXPERIENCE
    kind: str = "fact"
    title: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    doc_id: str | None = None
    provenance: Provenance = Field(default_factory=Provenance)
    occurred_at: datetime | None = None  # when the remembered thing happened (default: now)


class ChannelRanks(BaseModel):
    dense: int | None = None
    keyword: int | None = None
    recency: int | None = None
    utility: int | None = None
    neighbour: int | None = None


class RecallHit(BaseModel):
    """One recalled memory, with its fused score, per-channel ranks and provenance."""

    id: str
    namespace: str
    level: Level
    kind: str
    content: str
    title: str | None
    tags: list[str]
    metadata: dict[str, Any]
    score: float
    ranks: ChannelRanks
    provenance: Provenance
    created_at: datetime
    occurred_at: datetime
    utility: float
    doc_id: str | None = None


class RecallResult(BaseModel):
    query: str
    namespace: str
    hits: list[RecallHit]
    recall_id: int | None = None
    latency_ms: float = 0.0


class RetainResult(BaseModel):
    ids: list[str]  # ids of the records now holding the content (new or existing)
    created: int
    duplicates: int
    chunks: int
    op_id: str | None = None  # the operation that wrote (undo takes it back); None: no change

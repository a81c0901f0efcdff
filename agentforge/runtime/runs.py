"""The run index: one row per run (id, task, status, outcome, usage) in `runs.db` under the home
directory, beside LangGraph's SQLite checkpoints (same file), so runs can be listed, shown and
resumed by id."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentforge.errors import NotFoundError

_DDL = """CREATE TABLE IF NOT EXISTS agentforge_runs (
  id TEXT PRIMARY KEY, task TEXT NOT NULL, namespace TEXT NOT NULL, model TEXT NOT NULL,
  status TEXT NOT NULL, outcome TEXT, answer TEXT, actions INTEGER DEFAULT 0,
  tokens INTEGER DEFAULT 0, cost REAL DEFAULT 0, seconds REAL DEFAULT 0, error TEXT,
  options TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"""


class RunInfo(BaseModel):
    id: str
    task: str
    namespace: str
    model: str
    status: str  # running | finished | failed | interrupted
    outcome: str | None = None
    answer: str | None = None
    actions: int = 0
    tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    options: dict[str, Any] = {}
    created_at: str
    updated_at: str


class RunIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_DDL)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60)
        conn.row_factory = sqlite3.Row
        return conn

    def create(self, run_id: str, task: str, namespace: str, model: str,
               options: dict[str, Any]) -> None:
        now = datetime.now(UTC).isoformat()
        with self._lock, self._connect() as conn:
            conn.execute(
                "INSERT INTO agentforge_runs (id, task, namespace, model, status, options, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                (run_id, task, namespace, model, json.dumps(options), now, now))

    def update(self, run_id: str, **fields: Any) -> None:
        fields["updated_at"] = datetime.now(UTC).isoformat()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._lock, self._connect() as conn:
            conn.execute(f"UPDATE agentforge_runs SET {cols} WHERE id = ?",
                         (*fields.values(), run_id))

    def get(self, run_id: str) -> RunInfo:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM agentforge_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no run with id {run_id!r} (see `agentforge runs list`)")
        return _info(row)

    def list(self, limit: int = 20) -> list[RunInfo]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM agentforge_runs ORDER BY created_at DESC LIMIT ?",
                                (limit,)).fetchall()
        return [_info(r) for r in rows]


def _info(row: sqlite3.Row) -> RunInfo:
    data = dict(row)
    data["options"] = json.loads(data.get("options") or "{}")
    return RunInfo.model_validate(data)

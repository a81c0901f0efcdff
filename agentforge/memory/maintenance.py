"""Consistency check, repair, statistics, export and import of a memory store."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentforge.errors import InputError
from agentforge.memory.components import Components, reconcile, sync_records
from agentforge.memory.normalize import content_hash
from agentforge.memory.records import MemoryRecord, utcnow
from agentforge.memory.store import snapshot, vector_to_blob
from agentforge.types import Level, Status, parse_namespace

EXPORT_FORMAT = "agentforge-memory/1"


async def check(c: Components) -> dict[str, Any]:
    """Compare the store's active records with the index, namespace by namespace."""
    pending = len(await asyncio.to_thread(c.store.pending_ids))
    report: dict[str, Any] = {"ok": pending == 0, "pending": pending, "namespaces": {}}
    namespaces = set(await asyncio.to_thread(c.store.namespaces)) | set(await c.index.namespaces())
    for ns in sorted(namespaces):
        active = await asyncio.to_thread(c.store.active_ids, ns)
        indexed = await c.index.ids(ns)
        missing, extra = active - indexed, indexed - active
        report["namespaces"][ns] = {
            "records": len(active),
            "vectors": len(indexed),
            "missing": len(missing),
            "extra": len(extra),
        }
        report["ok"] = report["ok"] and not missing and not extra
    return report


async def repair(c: Components) -> dict[str, Any]:
    """Apply pending changes, then re-index missing vectors and drop stray ones."""
    fixed = await reconcile(c)
    for ns in sorted(
        set(await asyncio.to_thread(c.store.namespaces)) | set(await c.index.namespaces())
    ):
        active = await asyncio.to_thread(c.store.active_ids, ns)
        indexed = await c.index.ids(ns)
        if indexed - active:
            await c.index.delete(ns, sorted(indexed - active))
            fixed += len(indexed - active)
        missing = active - indexed
        if missing:
            with c.store.read() as s:
                records = list(c.store.fetch(s, sorted(missing)).values())
            await sync_records(c, records)
            fixed += len(records)
    return {"fixed": fixed, **await check(c)}


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


async def stats(c: Components, namespace: str | None) -> dict[str, Any]:
    rows = await asyncio.to_thread(c.store.counts, namespace)
    by_ns: dict[str, dict[str, Any]] = {}
    for ns, level, status, count in rows:
        entry = by_ns.setdefault(ns, {"levels": {}, "status": {}, "total": 0})
        if status == "active":
            entry["levels"][level] = entry["levels"].get(level, 0) + count
        entry["status"][status] = entry["status"].get(status, 0) + count
        entry["total"] += count
    for ns, entry in by_ns.items():
        entry["vectors"] = await c.index.count(ns)
        entry["tools"] = len(await asyncio.to_thread(c.store.tools, ns))
    url = str(c.store.engine.url)
    disk = (
        _disk_bytes(Path(url.removeprefix("sqlite:///"))) if url.startswith("sqlite:///") else None
    )
    return {
        "namespaces": by_ns,
        "database": url,
        "database_bytes": disk,
        "embedder": c.embedder.model_id,
    }


def _export_line(record: MemoryRecord) -> str:
    data = snapshot(record)
    data["embedding"] = base64.b64encode(record.embedding).decode("ascii")
    return json.dumps(data, ensure_ascii=False)


def export_records(
    c: Components, out: TextIO, namespace: str | None, include_inactive: bool = True
) -> int:
    """Write a JSON-lines export (header line, then one record per line); returns the count."""
    out.write(json.dumps({"format": EXPORT_FORMAT, "embedder": c.embedder.model_id}) + "\n")
    c.store.fold_recall_counters()  # the usage counters as the recall log has them
    count = 0
    for ns in [namespace] if namespace else c.store.namespaces():
        for record in c.store.iter_records(ns, include_inactive=include_inactive):
            out.write(_export_line(record) + "\n")
            count += 1
    return count


class ExportedRecord(BaseModel):
    """One line of an export, validated before anything is written."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    namespace: str
    level: Level
    kind: str = "fact"
    title: str | None = None
    content: str = Field(min_length=1)
    doc_id: str | None = None
    chunk_index: int = 0
    tags: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    key: str | None = None
    status: Status = Status.ACTIVE
    created_at: AwareDatetime | None = None
    occurred_at: AwareDatetime | None = None
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
    superseded_by: str | None = None
    source: str | None = None
    step: int | None = None
    role: str | None = None
    recalls: int = 0
    successes: int = 0
    failures: int = 0
    utility: float = 0.5
    last_recalled_at: AwareDatetime | None = None
    embedding: str | None = None
    embedding_model: str = ""

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return parse_namespace(value)

    def to_record(self, namespace: str | None) -> MemoryRecord:
        now = utcnow()
        fields = self.model_dump(exclude={"embedding"}, exclude_none=True)
        fields.update(
            namespace=namespace or self.namespace,
            level=self.level.value,
            status=self.status.value,
            content_hash=content_hash(self.content),
            created_at=self.created_at or now,
            occurred_at=self.occurred_at or now,
            valid_from=self.valid_from or self.occurred_at or now,
            trust="imported",
            index_state="pending",
        )
        vector = base64.b64decode(self.embedding, validate=True) if self.embedding else b""
        return MemoryRecord(embedding=vector, **fields)


def _records(path: Path, namespace: str | None) -> Iterator[MemoryRecord]:
    """Every record of an export file, validated; InputError names the file and line."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            header = json.loads(handle.readline() or "{}")
            if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
                raise InputError(f"{path} is not an AgentForge memory export ({EXPORT_FORMAT})")
            for number, line in enumerate(handle, start=2):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    raise InputError(f"{path}:{number}: not valid JSON") from None
                if not isinstance(data, dict):
                    raise InputError(f"{path}:{number}: not a memory record (not an object)")
                try:
                    yield ExportedRecord.model_validate(data).to_record(namespace)
                except (ValidationError, ValueError) as exc:
                    reason = (
                        str(exc).splitlines()[0]
                        if not isinstance(exc, ValidationError)
                        else _first_error(exc)
                    )
                    raise InputError(
                        f"{path}:{number}: not a valid memory record: {reason}"
                    ) from None
        except UnicodeDecodeError:
            raise InputError(f"{path} is not UTF-8 text (binary file?)") from None
        except json.JSONDecodeError:
            raise InputError(f"{path} is not an AgentForge memory export (bad header)") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "record"
    return f"{where}: {err.get('msg', 'invalid')}"


async def import_records(
    c: Components,
    path: Path,
    *,
    namespace: str | None = None,
    progress: Callable[[int], None] | None = None,
    batch: int = 500,
) -> int:
    """Import an export file. The whole file is validated first (a bad line imports nothing);
    records keep their ids, stats and validity; ids already present are skipped (import is
    idempotent). Vectors are reused when present and of our embedder's size, else recomputed.
    Each batch is one transaction."""
    target = parse_namespace(namespace) if namespace else None
    for _ in _records(path, target):  # validation pass: nothing is written on a bad file
        pass
    imported = 0
    chunk: list[MemoryRecord] = []

    async def flush() -> None:
        nonlocal imported
        stale = [r for r in chunk if len(r.embedding) != c.embedder.dim * 4]
        if stale:
            vectors = await c.embedder.embed([r.content for r in stale])
            for r, v in zip(stale, vectors, strict=True):
                r.embedding, r.embedding_model = vector_to_blob(v), c.embedder.model_id
        added = await asyncio.to_thread(_insert_new, c, list(chunk))
        await sync_records(c, added)
        imported += len(added)
        if progress:
            progress(len(chunk))
        chunk.clear()

    for record in _records(path, target):
        chunk.append(record)
        if len(chunk) >= batch:
            await flush()
    if chunk:
        await flush()
    return imported


def _insert_new(c: Components, records: list[MemoryRecord]) -> list[MemoryRecord]:
    with c.store.write() as s:
        existing = c.store.fetch(s, [r.id for r in records])
        new = [r for r in records if r.id not in existing]
        if new:
            op = c.store.begin_operation(s, "import", new[0].namespace, items=len(new))
            s.add_all(new)
            c.store.records_created(s, op, new, reason="import")
        return new


def file_size(path: Path) -> int:
    return os.path.getsize(path)

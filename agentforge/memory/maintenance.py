"""Consistency check, repair, statistics, export and import of a memory store."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from agentforge.errors import InputError
from agentforge.memory.components import Components, reconcile, sync_records
from agentforge.memory.records import MemoryRecord
from agentforge.memory.store import snapshot

EXPORT_FORMAT = "agentforge-memory/1"


async def check(c: Components) -> dict[str, Any]:
    """Compare the store's active records with the index, namespace by namespace."""
    pending = len(await asyncio.to_thread(c.store.pending_index, 1_000_000))
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
    count = 0
    for ns in [namespace] if namespace else c.store.namespaces():
        for record in c.store.iter_records(ns, include_inactive=include_inactive):
            out.write(_export_line(record) + "\n")
            count += 1
    return count


def _read_export(path: Path) -> tuple[dict[str, Any], Iterator[tuple[int, dict[str, Any]]]]:
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    handle = path.open(encoding="utf-8")
    try:
        header = json.loads(handle.readline() or "{}")
    except json.JSONDecodeError:
        handle.close()
        raise InputError(f"{path} is not an AgentForge memory export (bad header)") from None
    if header.get("format") != EXPORT_FORMAT:
        handle.close()
        raise InputError(f"{path} is not an AgentForge memory export ({EXPORT_FORMAT})")

    def lines() -> Iterator[tuple[int, dict[str, Any]]]:
        with handle:
            for number, line in enumerate(handle, start=2):
                if line.strip():
                    try:
                        yield number, json.loads(line)
                    except json.JSONDecodeError:
                        raise InputError(f"{path}:{number}: not valid JSON") from None

    return header, lines()


async def import_records(
    c: Components,
    path: Path,
    *,
    namespace: str | None = None,
    progress: Callable[[int], None] | None = None,
    batch: int = 500,
) -> int:
    """Import an export file. Records keep their ids, stats and validity; ids already present
    are skipped (import is idempotent). Vectors are reused when the embedder matches, else
    recomputed. Each batch is one transaction."""
    from agentforge.memory.store import vector_to_blob
    from agentforge.types import parse_namespace

    header, lines = _read_export(path)
    same_model = header.get("embedder") == c.embedder.model_id
    target = parse_namespace(namespace) if namespace else None
    imported = 0
    chunk: list[dict[str, Any]] = []

    async def flush() -> None:
        nonlocal imported
        records = [_record_from(d, target) for d in chunk]
        if not same_model:
            vectors = await c.embedder.embed([r.content for r in records])
            for r, v in zip(records, vectors, strict=True):
                r.embedding, r.embedding_model = vector_to_blob(v), c.embedder.model_id
        added = await asyncio.to_thread(_insert_new, c, records)
        await sync_records(c, added)
        imported += len(added)
        if progress:
            progress(len(chunk))
        chunk.clear()

    for number, data in lines:
        if not isinstance(data, dict) or "content" not in data or "id" not in data:
            raise InputError(f"{path}:{number}: not a memory record")
        chunk.append(data)
        if len(chunk) >= batch:
            await flush()
    if chunk:
        await flush()
    return imported


def _record_from(data: dict[str, Any], namespace: str | None) -> MemoryRecord:
    from agentforge.memory.store import _restore_value

    fields = {k: _restore_value(k, v) for k, v in data.items() if k != "embedding"}
    if namespace:
        fields["namespace"] = namespace
    fields["index_state"] = "pending"
    fields["trust"] = "imported"
    fields.pop("seq", None)
    try:
        embedding = base64.b64decode(data.get("embedding", ""))
        return MemoryRecord(embedding=embedding, **fields)
    except Exception as exc:
        raise InputError(f"bad record {data.get('id')!r} in import: {exc}") from None


def _insert_new(c: Components, records: list[MemoryRecord]) -> list[MemoryRecord]:
    with c.store.write() as s:
        existing = c.store.fetch(s, [r.id for r in records])
        new = [r for r in records if r.id not in existing]
        if new:
            op = c.store.begin_operation(s, "import", new[0].namespace, items=len(new))
            for r in new:
                s.add(r)
                c.store.record_created(s, op, r, reason="import")
        return new


def file_size(path: Path) -> int:
    return os.path.getsize(path)

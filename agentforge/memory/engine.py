"""`Memory`: the facade the SDK, the runtime and the CLI use. Async core; the sync methods are thin
wrappers that run the same coroutines on a private event loop thread."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar

from agentforge.errors import InputError
from agentforge.memory import reflect as reflect_ops
from agentforge.memory.batcher import MicroBatcher
from agentforge.memory.components import Components, reconcile, sync_records
from agentforge.memory.embedders import Embedder
from agentforge.memory.fusion import FusionWeights
from agentforge.memory.index import VectorIndex
from agentforge.memory.recall import RecallRequest, RecallTuning, recall_batch, weights_key
from agentforge.memory.records import (
    HistoryEntry,
    Operation,
    RecallLog,
    ToolRecord,
    as_utc,
    utcnow,
)
from agentforge.memory.retain import retain_items
from agentforge.memory.store import SQLStore
from agentforge.settings import Settings
from agentforge.types import (
    Level,
    MemoryInput,
    Outcome,
    Provenance,
    RecallResult,
    RetainResult,
    Status,
    parse_namespace,
)

T = TypeVar("T")


class _LoopThread:
    """A private event loop on a daemon thread, so sync callers share batchers and executors."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, daemon=True, name="agentforge-memory"
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result()
        coro.close()
        raise RuntimeError(
            "Memory's sync methods cannot run inside an event loop; await the "
            "a-prefixed method instead (e.g. `await memory.arecall(...)`)"
        )

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class Memory:
    """Hierarchical experience and tool memory: retain / recall / reflect."""

    def __init__(
        self,
        store: SQLStore,
        index: VectorIndex,
        embedder: Embedder,
        *,
        namespace: str = "default",
        weights: FusionWeights | None = None,
    ) -> None:
        self.c = Components(store=store, index=index, embedder=embedder)
        self.namespace = parse_namespace(namespace)
        self.weights = weights or FusionWeights()
        self._tunings: dict[str, RecallTuning | None] = {}  # namespace -> tuned, None: not tuned
        # per event loop (a future belongs to its loop; sync calls run on `_thread`'s loop
        # while callers may await on theirs) and namespace
        self._tuning_loads: dict[
            tuple[asyncio.AbstractEventLoop, str], asyncio.Future[RecallTuning]
        ] = {}
        self._recaller: MicroBatcher[RecallRequest, RecallResult] = MicroBatcher(
            lambda reqs: recall_batch(self.c, reqs), max_batch=256, max_wait_ms=0.0
        )
        self._opened = False
        self._open_lock = threading.Lock()
        self._thread: _LoopThread | None = None

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Memory:
        """The embedded defaults (SQLite + chroma under the home directory + local embedder), or
        whatever the settings name."""
        from agentforge.memory.embedders import make_embedder
        from agentforge.memory.index.chroma_index import ChromaVectorIndex

        settings = settings or Settings()
        store = SQLStore.from_url(
            settings.resolved_database_url(), dense_mirror=settings.dense_mirror
        )
        if settings.chroma_host:
            index = ChromaVectorIndex.http(settings.chroma_host, settings.chroma_port)
        else:
            index = ChromaVectorIndex.persistent(settings.chroma_path())
        return cls(store, index, make_embedder(settings), namespace=settings.namespace)

    @classmethod
    def in_memory(cls, embedder: Embedder | None = None, **kwargs: Any) -> Memory:
        """SQLite in memory, a numpy index and (by default) the hash embedder: for unit tests."""
        from agentforge.memory.embedders import HashEmbedder
        from agentforge.memory.index import NumpyVectorIndex

        return cls(
            SQLStore.from_url("sqlite://"), NumpyVectorIndex(), embedder or HashEmbedder(), **kwargs
        )

    async def aopen(self) -> None:
        """Reconcile the index with the store (finishes any write a crash interrupted)."""
        if not self._opened:
            await reconcile(self.c)
            self._opened = True

    def _ns(self, namespace: str | Sequence[str] | None) -> str:
        return self.namespace if namespace is None else parse_namespace(namespace)

    # --- retain / recall --------------------------------------------------------------------

    async def aretain(
        self,
        content: str | MemoryInput | Sequence[str | MemoryInput],
        *,
        namespace: str | Sequence[str] | None = None,
        level: Level | str = Level.EXPERIENCE,
        kind: str = "fact",
        title: str | None = None,
        tags: str | Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        doc_id: str | None = None,
        provenance: Provenance | None = None,
        occurred_at: datetime | None = None,
        operation: str = "retain",
    ) -> RetainResult:
        """Store content (one item or many) without any LLM call. Idempotent under `doc_id`.
        History files the created records under one operation named `operation`."""
        await self.aopen()
        if isinstance(content, (str, bytes, MemoryInput)):
            raw: list[Any] = [content]
        elif isinstance(content, Sequence):
            raw = list(content)
        else:
            raise InputError(f"cannot retain a {type(content).__name__}: give text or MemoryInput")
        if not raw:
            raise InputError("nothing to retain")
        items = [
            c
            if isinstance(c, MemoryInput)
            else MemoryInput(
                content=c if isinstance(c, str) else _text(c),
                level=_level(level),
                kind=kind,
                title=title,
                tags=_names(tags) or [],
                metadata=dict(metadata or {}),
                doc_id=doc_id,
                provenance=provenance or Provenance(),
                occurred_at=occurred_at,
            )
            for c in raw
        ]
        _json_metadata(items)
        return await retain_items(self.c, self._ns(namespace), items, operation)

    def request(
        self,
        query: str,
        *,
        namespace: str | Sequence[str] | None = None,
        k: int | None = 10,
        token_budget: int | None = None,
        levels: Level | str | Sequence[Level | str] | None = None,
        kinds: str | Sequence[str] | None = None,
        tags: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        as_of: datetime | None = None,
        run_id: str | None = None,
        log: bool = True,
        weights: FusionWeights | None = None,
        min_score: float | None = None,
        keyword_query: str | None = None,
    ) -> RecallRequest:
        if not isinstance(query, str) or not query.strip():
            raise InputError("recall needs a non-empty query")
        if (k is not None and k < 1) or (token_budget is not None and token_budget < 1):
            raise InputError("k and token_budget must be positive")
        ns = self._ns(namespace)
        tuning = self.tuning(ns)
        return RecallRequest(
            query=query.strip(),
            namespace=ns,
            k=k,
            token_budget=token_budget,
            levels=_levels(levels),
            kinds=tuple(_names(kinds) or ()) or None,
            tags=tuple(_names(tags) or ()) or None,
            since=_utc(since),
            until=_utc(until),
            as_of=_utc(as_of),
            run_id=run_id,
            log=log,
            weights=weights or tuning.weights,
            min_score=tuning.min_score if min_score is None else min_score,
            keyword_query=keyword_query.strip() if keyword_query else None,
        )

    async def arecall(self, query: str, **kwargs: Any) -> RecallResult:
        """Multi-channel recall (dense, BM25, recency, utility) fused by weighted RRF.
        Concurrent calls are served by one embedder call and one index query."""
        await self.aopen()
        ns = self._ns(kwargs.get("namespace"))
        if ns not in self._tunings:
            await self._load_tuning(ns)
        return await self._recaller.submit(self.request(query, **kwargs))

    async def _load_tuning(self, ns: str) -> None:
        """One store read per namespace however many recalls wait for it (they then submit
        together, so the batcher still coalesces them)."""
        key = (asyncio.get_running_loop(), ns)
        load = self._tuning_loads.get(key)
        if load is None:
            load = asyncio.ensure_future(asyncio.to_thread(self.tuning, ns))
            self._tuning_loads[key] = load
            load.add_done_callback(lambda _: self._tuning_loads.pop(key, None))
        await asyncio.shield(load)

    def tuning(self, namespace: str | Sequence[str] | None = None) -> RecallTuning:
        """The weights and `min_score` gate recall uses in a namespace: the ones
        `agentforge.evolve.weights.tune_weights` stored for it, else this memory's `weights`.
        Cached per namespace; `reload_tuning` (called by tuning and undo) drops the cache.
        An explicit `weights=` / `min_score=` of one recall wins over both."""
        ns = self._ns(namespace)
        if ns not in self._tunings:
            stored = self.c.store.read_meta_json(weights_key(ns))
            self._tunings[ns] = None if stored is None else RecallTuning.from_dict(stored)
        return self._tunings[ns] or RecallTuning(self.weights)

    def reload_tuning(self, namespace: str | Sequence[str] | None = None) -> None:
        """Forget cached tuned weights (of one namespace, or all) so the next recall reads them."""
        if namespace is None:
            self._tunings.clear()
        else:
            self._tunings.pop(self._ns(namespace), None)

    # --- outcomes and reflection ------------------------------------------------------------

    async def arecord_outcome(self, run_id: str, outcome: Outcome | str) -> int:
        """Credit every item recalled during `run_id` with the run's outcome; returns how many
        records were credited. Each recall log is credited once."""
        outcome = Outcome(outcome)
        return await asyncio.to_thread(self._credit, run_id, outcome)

    def _credit(self, run_id: str, outcome: Outcome) -> int:
        store = self.c.store
        with store.write() as s:
            store.fold_recall_counters(s)  # a run ended: bring the usage counters up to date
            logs = store.uncredited_recalls(s, run_id)
            ids = sorted({i for log in logs for i in log.result_ids})
            if not logs:
                return 0
            op = store.begin_operation(
                s, "credit", logs[0].namespace, run_id=run_id, outcome=outcome.value
            )
            for record in store.fetch(s, ids).values():
                succ = record.successes + (outcome == Outcome.SUCCESS)
                fail = record.failures + (outcome == Outcome.FAILURE)
                store.change(
                    s,
                    op,
                    record,
                    "credit",
                    reason=f"run {run_id}: {outcome.value}",
                    successes=succ,
                    failures=fail,
                    utility=reflect_ops.utility(succ, fail),
                )
            for log in logs:
                log.credited = True
                s.add(log)
            return len(ids)

    async def areflect(
        self,
        namespace: str | Sequence[str] | None = None,
        *,
        dry_run: bool = False,
        policy: reflect_ops.ReflectPolicy | None = None,
        budget: reflect_ops.ReflectBudget | None = None,
    ) -> reflect_ops.ReflectReport:
        """Consolidate: merge near-duplicates, supersede conflicting keyed facts, forget by
        utility and age. `dry_run` plans without changing anything; `aundo(op_id)` reverts."""
        await self.aopen()
        ns = self._ns(namespace)
        start = utcnow()
        # forgetting and merging read the usage counters: as the recall log has them
        await asyncio.to_thread(self.c.store.fold_recall_counters)
        changes, truncated = await asyncio.to_thread(
            reflect_ops.plan,
            self.c,
            ns,
            policy or reflect_ops.ReflectPolicy(),
            budget or reflect_ops.ReflectBudget(),
        )
        report = reflect_ops.ReflectReport(ns, dry_run, changes, truncated=truncated)
        if not dry_run and changes:
            report.op_id, touched = await asyncio.to_thread(reflect_ops.apply, self.c, ns, changes)
            await sync_records(self.c, touched)
        report.seconds = (utcnow() - start).total_seconds()
        return report

    async def aforget(self, ids: str | Sequence[str], *, reason: str = "forgotten by user") -> str:
        """Close the validity of records (kept in history; `aundo` restores them)."""
        ids = _names(ids) or []
        if not ids:
            raise InputError("nothing to forget: give at least one id")
        store = self.c.store

        def work() -> tuple[str, list[Any]]:
            with store.write() as s:
                found = store.fetch(s, list(ids))
                missing = [i for i in ids if i not in found]
                if missing:
                    raise InputError(f"no memory with id {missing[0]!r}")
                op = store.begin_operation(s, "forget", next(iter(found.values())).namespace)
                for record in found.values():
                    if record.status == Status.ACTIVE.value:
                        store.change(
                            s,
                            op,
                            record,
                            "forget",
                            reason=reason,
                            status=Status.FORGOTTEN.value,
                            valid_to=utcnow(),
                        )
                return op.id, list(found.values())

        op_id, touched = await asyncio.to_thread(work)
        await sync_records(self.c, touched)
        return op_id

    async def aundo(self, op_id: str) -> Operation:
        """Revert every change of an operation (retain, reflect, forget, credit, import)."""
        undo_op = await asyncio.to_thread(self.c.store.undo, op_id)
        self.reload_tuning()
        await reconcile(self.c)
        return undo_op

    # --- tool memory ------------------------------------------------------------------------

    async def arecord_tool_call(
        self,
        tool: str,
        *,
        success: bool,
        latency_ms: float,
        error: str | None = None,
        fix: str | None = None,
        args: dict[str, Any] | None = None,
        cost: float = 0.0,
        description: str | None = None,
        namespace: str | Sequence[str] | None = None,
    ) -> ToolRecord:
        ns = self._ns(namespace)
        store = self.c.store

        def work() -> ToolRecord:
            with store.write() as s:
                record = store.tool_record(s, ns, tool)
                record.calls += 1
                record.successes += int(success)
                record.failures += int(not success)
                record.total_latency_ms += latency_ms
                record.total_cost += cost
                record.description = description or record.description
                if error:
                    record.errors = [
                        *record.errors,
                        {"error": error[:500], "fix": fix, "at": utcnow().isoformat()},
                    ][-50:]
                if success and args is not None:
                    record.examples = [*record.examples, args][-10:]
                record.updated_at = utcnow()
                s.add(record)
                return record

        return await asyncio.to_thread(work)

    # --- inspection -------------------------------------------------------------------------

    def history(self, **kwargs: Any) -> list[HistoryEntry]:
        return self.c.store.history(**kwargs)

    def operations(self, **kwargs: Any) -> list[Operation]:
        return self.c.store.operations(**kwargs)

    def recall_log(self, **kwargs: Any) -> list[RecallLog]:
        return self.c.store.recall_log(**kwargs)

    async def astats(self, namespace: str | Sequence[str] | None = None) -> dict[str, Any]:
        from agentforge.memory.maintenance import stats

        return await stats(self.c, None if namespace is None else self._ns(namespace))

    async def acheck(self) -> dict[str, Any]:
        from agentforge.memory.maintenance import check

        return await check(self.c)

    async def arepair(self) -> dict[str, Any]:
        from agentforge.memory.maintenance import repair

        return await repair(self.c)

    # --- sync wrappers ----------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._thread is None:
            with self._open_lock:
                if self._thread is None:
                    self._thread = _LoopThread()
        return self._thread.run(coro)

    def open(self) -> None:
        self._run(self.aopen())

    def retain(self, content: Any, **kwargs: Any) -> RetainResult:
        return self._run(self.aretain(content, **kwargs))

    def recall(self, query: str, **kwargs: Any) -> RecallResult:
        return self._run(self.arecall(query, **kwargs))

    def record_outcome(self, run_id: str, outcome: Outcome | str) -> int:
        return self._run(self.arecord_outcome(run_id, outcome))

    def reflect(self, namespace: Any = None, **kwargs: Any) -> reflect_ops.ReflectReport:
        return self._run(self.areflect(namespace, **kwargs))

    def forget(self, ids: str | Sequence[str], **kwargs: Any) -> str:
        return self._run(self.aforget(ids, **kwargs))

    def undo(self, op_id: str) -> Operation:
        return self._run(self.aundo(op_id))

    def record_tool_call(self, tool: str, **kwargs: Any) -> ToolRecord:
        return self._run(self.arecord_tool_call(tool, **kwargs))

    def stats(self, namespace: Any = None) -> dict[str, Any]:
        return self._run(self.astats(namespace))

    def check(self) -> dict[str, Any]:
        return self._run(self.acheck())

    def repair(self) -> dict[str, Any]:
        return self._run(self.arepair())

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()
            self._thread = None
        self.c.index.close()
        self.c.embedder.close()
        self.c.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    """Tags, kinds or ids as a list: one string is one name, not its characters."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _level(name: Level | str) -> Level:
    try:
        return Level(name)
    except ValueError:
        known = ", ".join(level.value for level in Level)
        raise InputError(f"unknown level {name!r}; choose from {known}") from None


def _levels(value: Level | str | Sequence[Level | str] | None) -> tuple[str, ...] | None:
    names = [value] if isinstance(value, (str, Level)) else list(value or ())
    return tuple(_level(name).value for name in names) or None


def _json_metadata(items: Sequence[MemoryInput]) -> None:
    """Metadata is stored as JSON: say so here, not with the failed INSERT's SQL."""
    for item in items:
        try:
            json.dumps(item.metadata)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"metadata must be JSON (str, number, bool, list, dict): {exc}"
            ) from None


def _text(value: object) -> str:
    from agentforge.memory.normalize import normalize

    return normalize(value)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)

"""Coalesce concurrent `embed` calls into one model call, and cache query embeddings.

Each running event loop gets its own queue and drain task, created on first use, so one
`BatchingEmbedder` can serve several loops (and threads) over its lifetime.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from agentforge.errors import ConfigError, MemoryStoreError
from agentforge.memory.embedders.base import Embedder, check_texts, empty_rows


@dataclass
class EmbedStats:
    """Counters of a BatchingEmbedder; `cache_*` count query texts only."""

    model_calls: int = 0
    texts_encoded: int = 0
    cache_hits: int = 0
    cache_misses: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future[np.ndarray]


@dataclass
class _LoopState:
    """The queue of one event loop; touched only from that loop's thread."""

    pending: deque[_Request] = field(default_factory=deque)
    queued: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class BatchingEmbedder(Embedder):
    """Wraps an embedder: concurrent `embed` calls share one `inner.encode` per batch.

    A drain task takes everything queued (waiting at most `max_wait_ms` for more once the
    first request arrives, up to `max_batch` texts; a single larger request goes alone) and
    runs one `inner.encode` in a worker thread. `embed(..., query=True)` goes through an LRU
    cache keyed by the exact text; `encode` passes straight to `inner`.
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        max_batch: int = 256,
        max_wait_ms: float = 1.0,
        cache_size: int = 4096,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0 or cache_size < 0:
            raise ConfigError(
                f"invalid batching settings: max_batch={max_batch}, "
                f"max_wait_ms={max_wait_ms}, cache_size={cache_size}"
            )
        self.inner = inner
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.cache_size = cache_size
        self.stats = EmbedStats()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # guards the cache and the stats
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._loops_lock = threading.Lock()

    @property  # type: ignore[override]
    def model_id(self) -> str:
        return self.inner.model_id

    @property  # type: ignore[override]
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        rows = self.inner.encode(items)
        self._count_call(len(items))
        return rows

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        items = check_texts(texts)
        if not items:
            return empty_rows(self.dim)
        if not query or self.cache_size == 0:
            return await self._submit(items)
        found, missing = self._lookup(items)
        if missing:
            rows = await self._submit(missing)
            self._remember(missing, rows)
            found.update(zip(missing, rows, strict=True))
        return np.stack([found[text] for text in items])

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
        self.inner.close()

    # -- cache -------------------------------------------------------------------------------

    def _lookup(self, items: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        found: dict[str, np.ndarray] = {}
        missing: dict[str, None] = {}
        with self._lock:
            for text in items:
                row = self._cache.get(text)
                if row is not None:
                    self._cache.move_to_end(text)
                    found[text] = row
                    self.stats.cache_hits += 1
                elif text not in missing:
                    missing[text] = None
                    self.stats.cache_misses += 1
        return found, list(missing)

    def _remember(self, texts: list[str], rows: np.ndarray) -> None:
        with self._lock:
            for text, row in zip(texts, rows, strict=True):
                frozen = row.copy()
                frozen.flags.writeable = False
                self._cache[text] = frozen
                self._cache.move_to_end(text)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _count_call(self, n_texts: int) -> None:
        with self._lock:
            self.stats.model_calls += 1
            self.stats.texts_encoded += n_texts

    # -- batching ----------------------------------------------------------------------------

    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        with self._loops_lock:
            state = self._loops.get(loop)
            if state is None:
                for old in [lp for lp in self._loops if lp.is_closed()]:
                    del self._loops[old]
                state = self._loops[loop] = _LoopState()
            return state

    async def _submit(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        state = self._state(loop)
        future: asyncio.Future[np.ndarray] = loop.create_future()
        state.pending.append(_Request(texts, future))
        state.queued += len(texts)
        state.wakeup.set()
        if state.task is None or state.task.done():
            state.task = loop.create_task(self._drain(state))
        return await future

    async def _drain(self, state: _LoopState) -> None:
        """Serve batches until the queue is empty, then end (the next submit restarts it)."""
        try:
            while state.pending:
                await self._wait_for_more(state)
                batch = self._take(state)
                if batch:
                    await self._run(batch)
        except asyncio.CancelledError:
            while state.pending:
                state.pending.popleft().future.cancel()
            state.queued = 0
            raise

    async def _wait_for_more(self, state: _LoopState) -> None:
        if self.max_wait <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while state.queued < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            state.wakeup.clear()
            try:
                await asyncio.wait_for(state.wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, state: _LoopState) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        while state.pending:
            request = state.pending[0]
            if batch and size + len(request.texts) > self.max_batch:
                break
            state.pending.popleft()
            state.queued -= len(request.texts)
            if not request.future.done():  # skip callers that were cancelled meanwhile
                batch.append(request)
                size += len(request.texts)
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        try:
            rows = await asyncio.to_thread(self.encode, texts)
            if rows.shape[0] != len(texts):
                raise MemoryStoreError(
                    f"embedder {self.model_id} returned {rows.shape[0]} rows for {len(texts)} texts"
                )
        except asyncio.CancelledError:
            for request in batch:
                request.future.cancel()
            raise
        except Exception as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        start = 0
        for request in batch:
            end = start + len(request.texts)
            if not request.future.done():
                request.future.set_result(rows[start:end])
            start = end

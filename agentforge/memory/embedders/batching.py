"""Coalesce concurrent `embed` calls into one model call, and cache query embeddings.

The queueing is the shared `MicroBatcher` (one queue per event loop), with requests weighed by
their number of texts.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from agentforge.errors import ConfigError, MemoryStoreError
from agentforge.memory.batcher import MicroBatcher
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
        self.cache_size = cache_size
        self.stats = EmbedStats()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # guards the cache and the stats
        self._batcher: MicroBatcher[list[str], np.ndarray] = MicroBatcher(
            self._encode_batch, max_batch=max_batch, max_wait_ms=max_wait_ms, size=len
        )

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
            self._remember(missing, await self._submit(missing), found)
        return np.stack([found[text] for text in items])

    def embed_blocking(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """`embed` in the calling thread: the same cache, one model call of its own."""
        items = check_texts(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for positions, rows in self.embed_parts_blocking(items, query=query):
            out[positions] = rows
        return out

    def embed_parts_blocking(
        self, texts: Sequence[str], *, query: bool = False
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """`embed_blocking` in parts: the cached rows first, then the model's micro-batches as
        they end."""
        items = check_texts(texts)
        if not items:
            return
        if not query or self.cache_size == 0:
            self._count_call(len(items))
            yield from self.inner.encode_parts(items)
            return
        found, missing = self._lookup(items)
        cached = [i for i, text in enumerate(items) if text in found]
        if cached:
            yield cached, np.stack([found[items[i]] for i in cached])
        if not missing:
            return
        at: dict[str, list[int]] = {}  # a text asked for twice is one model input
        for i, text in enumerate(items):
            at.setdefault(text, []).append(i)
        self._count_call(len(missing))
        for positions, rows in self.inner.encode_parts(missing):
            texts_done = [missing[j] for j in positions]
            self._remember(texts_done, rows, found)
            spots = [i for text in texts_done for i in at[text]]
            yield spots, np.stack([found[items[i]] for i in spots])

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

    def _remember(self, texts: list[str], rows: np.ndarray, found: dict[str, np.ndarray]) -> None:
        """Cache the rows of `texts` and add them to `found`."""
        found.update(zip(texts, rows, strict=True))
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

    async def _submit(self, texts: list[str]) -> np.ndarray:
        return await self._batcher.submit(texts)

    async def _encode_batch(self, requests: list[list[str]]) -> list[np.ndarray]:
        """One model call for every request of a batch; each caller gets its own rows."""
        texts = [text for request in requests for text in request]
        rows = await asyncio.to_thread(self.encode, texts)
        if rows.shape[0] != len(texts):
            raise MemoryStoreError(
                f"embedder {self.model_id} returned {rows.shape[0]} rows for {len(texts)} texts"
            )
        out, start = [], 0
        for request in requests:
            out.append(rows[start : start + len(request)])
            start += len(request)
        return out

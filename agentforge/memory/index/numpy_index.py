"""In-memory brute-force index: one float32 matrix per namespace, exact cosine by matrix product.

For unit tests and small embedded uses. Thread-safe: one lock guards all namespaces. Operations
are fast and CPU-bound, so the async methods run inline instead of hopping to a thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from agentforge.errors import MemoryStoreError
from agentforge.memory.index.base import Hits, MetadataValue, VectorIndex, matches


@dataclass
class _Space:
    """One namespace: row i of `matrix` is item `ids[i]` with metadata `metas[i]`."""

    dim: int
    ids: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    metas: list[dict[str, MetadataValue]] = field(default_factory=list)
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = np.empty((0, self.dim), dtype=np.float32)

    def upsert(
        self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, MetadataValue]]
    ) -> None:
        fresh: list[int] = []
        for pos, (item, meta) in enumerate(zip(ids, metas, strict=True)):
            row = self.rows.get(item)
            if row is None:
                fresh.append(pos)
                continue
            self.matrix[row] = vectors[pos]
            self.metas[row] = meta
        if fresh:
            start = len(self.ids)
            self.matrix = np.concatenate([self.matrix, vectors[fresh]])
            for offset, pos in enumerate(fresh):
                self.rows[ids[pos]] = start + offset
                self.ids.append(ids[pos])
                self.metas.append(metas[pos])

    def delete(self, ids: list[str]) -> None:
        gone = {self.rows[item] for item in ids if item in self.rows}
        if not gone:
            return
        keep = [row for row in range(len(self.ids)) if row not in gone]
        self.matrix = self.matrix[keep]
        self.ids = [self.ids[row] for row in keep]
        self.metas = [self.metas[row] for row in keep]
        self.rows = {item: row for row, item in enumerate(self.ids)}

    def query(
        self, vectors: np.ndarray, k: int, where: dict[str, list[MetadataValue]] | None
    ) -> Hits:
        candidates = np.arange(len(self.ids))
        matrix = self.matrix
        if where:
            candidates = np.array(
                [row for row, meta in enumerate(self.metas) if matches(meta, where)], dtype=np.intp
            )
            matrix = matrix[candidates]
        if candidates.size == 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        # (queries, candidates): cosine, as rows are unit vectors. One product per query: one
        # for the batch rounds each row differently with the batch's size, near-ties reorder,
        # and a query's hits must not depend on its batch-mates (as the other indexes' do not)
        scores = np.stack([matrix @ vector for vector in vectors])
        take = min(k, candidates.size)
        if take < candidates.size:
            top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        else:
            top = np.broadcast_to(np.arange(candidates.size), (len(vectors), candidates.size))
        hits: Hits = []
        for qi, cols in enumerate(top):
            order = cols[np.argsort(-scores[qi, cols], kind="stable")]
            hits.append([(self.ids[candidates[c]], float(scores[qi, c])) for c in order])
        return hits


class NumpyVectorIndex(VectorIndex):
    """Exact in-memory index; see `VectorIndex` for the contract."""

    def __init__(self) -> None:
        self._spaces: dict[str, _Space] = {}
        self._lock = threading.Lock()

    async def _upsert(
        self,
        namespace: str,
        ids: list[str],
        vectors: np.ndarray,
        metadatas: list[dict[str, MetadataValue]],
    ) -> None:
        with self._lock:
            space = self._spaces.get(namespace)
            if space is None:
                space = _Space(dim=vectors.shape[1])
            _check_dim(namespace, space, vectors)
            space.upsert(ids, vectors.copy(), metadatas)
            self._spaces[namespace] = space

    async def _delete(self, namespace: str, ids: list[str]) -> None:
        with self._lock:
            space = self._spaces.get(namespace)
            if space is not None:
                space.delete(ids)

    async def _query(
        self,
        namespace: str,
        vectors: np.ndarray,
        k: int,
        where: dict[str, list[MetadataValue]] | None,
    ) -> Hits:
        return self._query_blocking(namespace, vectors, k, where)  # in memory: no thread hop

    def _query_blocking(
        self,
        namespace: str,
        vectors: np.ndarray,
        k: int,
        where: dict[str, list[MetadataValue]] | None,
    ) -> Hits:
        with self._lock:
            space = self._spaces.get(namespace)
            if space is None:
                return [[] for _ in range(len(vectors))]
            _check_dim(namespace, space, vectors)
            return space.query(vectors, k, where)

    async def _ids(self, namespace: str) -> set[str]:
        with self._lock:
            space = self._spaces.get(namespace)
            return set(space.ids) if space else set()

    async def _count(self, namespace: str) -> int:
        with self._lock:
            space = self._spaces.get(namespace)
            return len(space.ids) if space else 0

    async def _namespaces(self) -> list[str]:
        with self._lock:
            return list(self._spaces)

    async def _drop_namespace(self, namespace: str) -> None:
        with self._lock:
            self._spaces.pop(namespace, None)

    def _close(self) -> None:
        with self._lock:
            self._spaces.clear()


def _check_dim(namespace: str, space: _Space, vectors: np.ndarray) -> None:
    if vectors.shape[1] != space.dim:
        raise MemoryStoreError(
            f"namespace {namespace!r} holds {space.dim}-d vectors, got {vectors.shape[1]}-d",
            namespace=namespace,
            expected=space.dim,
            got=vectors.shape[1],
        )

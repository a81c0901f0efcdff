"""The vector index contract: a small abstract core every backend implements.

Contract (checked by the one contract test suite, `tests/memory/test_index_contract.py`):

* Vectors are float32 rows, L2-normalised by the caller (the embedder). Rows whose norm is not
  1 (within `NORM_TOLERANCE`) are rejected with `InputError`.
* Scores are cosine similarity in [-1, 1]: **higher is more similar**; an item queried with its
  own vector scores ≈ 1.
* Everything lives in a namespace ("default", "acme/web-agent"; see `parse_namespace`). A
  namespace exists from its first non-empty `upsert` until `drop_namespace`, even when all its
  items were deleted. Namespaces never see each other's items.
* `upsert` is idempotent: an existing id gets the new vector and *exactly* the new metadata
  (keys missing from the new metadata are gone).
* `query` returns one list per query row, best first, at most `k` `(id, score)` pairs.
  `where` maps a metadata key to its allowed values: AND across keys, OR within a key's values;
  values match by type and value (`1` does not match `"1"` or `True`). A key with no allowed
  values matches nothing. An unknown namespace gives empty lists. The numpy backend is exact;
  chroma's HNSW is approximate, so on large namespaces a true neighbour can be missed.
* A namespace holds vectors of one dimension; another dimension raises `MemoryStoreError`.
* Reads of unknown ids or namespaces, and deletes of them, are not errors.
* Backend failures raise `MemoryStoreError`; bad arguments raise `InputError` (a `ConfigError`).
  Using an index after `close()` raises `MemoryStoreError`.

Backends implement the underscore methods; the public methods validate once, here.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

import numpy as np

from agentforge.errors import InputError, MemoryStoreError
from agentforge.types import parse_namespace

MetadataValue = str | int | float | bool
Where = Mapping[str, Sequence[MetadataValue]]
Hits = list[list[tuple[str, float]]]

NORM_TOLERANCE = 1e-3
_METADATA_TYPES = (str, int, float, bool)


class VectorIndex(ABC):
    """Namespaced nearest-neighbour index over L2-normalised float32 vectors (cosine scores)."""

    _closed: bool = False

    async def upsert(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[Mapping[str, str | int | float | bool]],
    ) -> None:
        """Insert or replace items; each id gets its row of `vectors` and its metadata."""
        self._check_open()
        namespace = check_namespace(namespace)
        ids = check_ids(ids, unique=True)
        matrix = check_vectors(vectors, rows=len(ids))
        if len(metadatas) != len(ids):
            raise InputError(f"got {len(ids)} ids but {len(metadatas)} metadatas")
        metas = [check_metadata(meta) for meta in metadatas]
        if ids:
            await self._upsert(namespace, ids, matrix, metas)

    async def delete(self, namespace: str, ids: Sequence[str]) -> None:
        """Remove items by id; unknown ids are ignored."""
        self._check_open()
        namespace = check_namespace(namespace)
        ids = check_ids(ids, unique=False)
        if ids:
            await self._delete(namespace, list(dict.fromkeys(ids)))

    async def query(
        self,
        namespace: str,
        vectors: np.ndarray,
        k: int,
        where: Where | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Nearest items for each query row: best first, at most `k`, as `(id, cosine)` pairs."""
        checked = self._check_query(namespace, vectors, k, where)
        return checked if isinstance(checked, list) else await self._query(*checked)

    def query_blocking(
        self,
        namespace: str,
        vectors: np.ndarray,
        k: int,
        where: Where | None = None,
    ) -> list[list[tuple[str, float]]]:
        """`query` for code already running in a worker thread (recall's last stage): it blocks
        the calling thread instead of hopping to another one."""
        checked = self._check_query(namespace, vectors, k, where)
        return checked if isinstance(checked, list) else self._query_blocking(*checked)

    def _check_query(
        self, namespace: str, vectors: np.ndarray, k: int, where: Where | None
    ) -> Hits | tuple[str, np.ndarray, int, dict[str, list[MetadataValue]] | None]:
        """The backend's arguments, validated; or the answer itself when it is surely empty."""
        self._check_open()
        namespace = check_namespace(namespace)
        matrix = check_vectors(vectors, rows=None)
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise InputError(f"k must be a non-negative int, got {k!r}")
        filters = check_where(where)
        if k == 0 or len(matrix) == 0 or any(not values for values in filters.values()):
            return [[] for _ in range(len(matrix))]
        return namespace, matrix, k, filters or None

    async def ids(self, namespace: str) -> set[str]:
        """All ids in the namespace (empty for an unknown namespace)."""
        self._check_open()
        return await self._ids(check_namespace(namespace))

    async def count(self, namespace: str) -> int:
        """Number of items in the namespace (0 for an unknown namespace)."""
        self._check_open()
        return await self._count(check_namespace(namespace))

    async def namespaces(self) -> list[str]:
        """Existing namespaces, sorted."""
        self._check_open()
        return sorted(await self._namespaces())

    async def drop_namespace(self, namespace: str) -> None:
        """Remove a namespace and all its items; unknown namespaces are ignored."""
        self._check_open()
        await self._drop_namespace(check_namespace(namespace))

    def close(self) -> None:
        """Release the backend's resources; idempotent. The index is unusable afterwards."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryStoreError(f"{type(self).__name__} is closed")

    # The backend core: arguments arrive validated (namespace canonical, ids unique and
    # non-empty, vectors a C-contiguous float32 matrix, `where` non-empty lists or None).

    @abstractmethod
    async def _upsert(
        self,
        namespace: str,
        ids: list[str],
        vectors: np.ndarray,
        metadatas: list[dict[str, MetadataValue]],
    ) -> None: ...

    @abstractmethod
    async def _delete(self, namespace: str, ids: list[str]) -> None: ...

    @abstractmethod
    def _query_blocking(
        self,
        namespace: str,
        vectors: np.ndarray,
        k: int,
        where: dict[str, list[MetadataValue]] | None,
    ) -> Hits: ...

    async def _query(
        self,
        namespace: str,
        vectors: np.ndarray,
        k: int,
        where: dict[str, list[MetadataValue]] | None,
    ) -> Hits:
        """The async query; by default the blocking one in a worker thread."""
        return await asyncio.to_thread(self._query_blocking, namespace, vectors, k, where)

    @abstractmethod
    async def _ids(self, namespace: str) -> set[str]: ...

    @abstractmethod
    async def _count(self, namespace: str) -> int: ...

    @abstractmethod
    async def _namespaces(self) -> list[str]: ...

    @abstractmethod
    async def _drop_namespace(self, namespace: str) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str):
        raise InputError(f"namespace must be a str like 'acme/web-agent', got {namespace!r}")
    return parse_namespace(namespace)


def check_ids(ids: Sequence[str], *, unique: bool) -> list[str]:
    if isinstance(ids, str):
        raise InputError("ids must be a sequence of str, not a single str")
    out = list(ids)
    for item in out:
        if not isinstance(item, str) or not item:
            raise InputError(f"ids must be non-empty strings, got {item!r}")
    if unique and len(set(out)) != len(out):
        dupes = sorted(item for item, n in Counter(out).items() if n > 1)
        raise InputError(f"duplicate ids in one upsert: {dupes[:5]}")
    return out


def check_vectors(vectors: np.ndarray, rows: int | None) -> np.ndarray:
    """Return `vectors` as a C-contiguous float32 matrix of unit rows (a 1-D vector is one row)."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or (matrix.size and matrix.shape[1] == 0):
        raise InputError(f"vectors must be a 2-D (rows, dim) array, got shape {matrix.shape}")
    if rows is not None and len(matrix) != rows:
        raise InputError(f"got {rows} ids but {len(matrix)} vectors")
    if len(matrix):
        if not np.isfinite(matrix).all():
            raise InputError("vectors contain NaN or infinity")
        norms = np.linalg.norm(matrix, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
        if bad.size:
            row = int(bad[0])
            raise InputError(
                f"vectors must be L2-normalised; row {row} has norm {float(norms[row]):.4f}"
            )
    return matrix


def check_metadata(meta: Mapping[str, MetadataValue] | None) -> dict[str, MetadataValue]:
    out = dict(meta or {})
    for key, value in out.items():
        if not isinstance(key, str) or not key:
            raise InputError(f"metadata keys must be non-empty strings, got {key!r}")
        if not isinstance(value, _METADATA_TYPES):
            raise InputError(
                f"metadata {key!r} must be str, int, float or bool, got {type(value).__name__}"
            )
    return out


def check_where(where: Where | None) -> dict[str, list[MetadataValue]]:
    """Normalise a filter to {key: [values]}; a bare scalar counts as a one-value list."""
    out: dict[str, list[MetadataValue]] = {}
    for key, values in (where or {}).items():
        if not isinstance(key, str) or not key:
            raise InputError(f"where keys must be non-empty strings, got {key!r}")
        listed = [values] if isinstance(values, _METADATA_TYPES) else list(values)
        for value in listed:
            if not isinstance(value, _METADATA_TYPES):
                raise InputError(f"where values of {key!r} must be str, int, float or bool")
        out[key] = [value for _, value in dict.fromkeys((type(v), v) for v in listed)]
    return out


def matches(meta: Mapping[str, MetadataValue], where: Mapping[str, list[MetadataValue]]) -> bool:
    """True if `meta` satisfies `where` (AND across keys, OR within values, type-strict)."""
    for key, allowed in where.items():
        if key not in meta:
            return False
        value = meta[key]
        if not any(type(value) is type(a) and value == a for a in allowed):
            return False
    return True

"""Record ids by `seq`, for the in-process indexes whose labels are seqs (the dense mirror's
HNSW graphs, the keyword index's rows).

An object array: an index's labels become ids in one gather. At 100k rows, the ids of 64
queries' 60 dense labels took 2.6 ms through a dict (a hash probe and a key compare per label,
each a cache miss) and 0.9 ms this way. Not thread-safe: the owning index's lock guards it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SeqIds:
    def __init__(self, size: int = 1024) -> None:
        self._ids = np.full(size, None, dtype=object)

    def __setitem__(self, seq: int, record_id: str) -> None:
        self._grow(seq + 1)
        self._ids[seq] = record_id

    def assign(self, seqs: Sequence[int], record_ids: Sequence[str]) -> None:
        """Many at once (parallel sequences): what a build does, without a call per row."""
        if len(seqs):
            self._grow(max(seqs) + 1)
            self._ids[np.asarray(seqs, dtype=np.intp)] = record_ids

    def pop(self, seq: int) -> None:
        """Forget `seq` (nothing if it has no id)."""
        if 0 <= seq < len(self._ids):
            self._ids[seq] = None

    def names(self, seqs: np.ndarray) -> list[str | None] | list[list[str | None]]:
        """The ids of `seqs` (None for a seq without one), as nested lists of `seqs`' shape."""
        seqs = np.asarray(seqs).astype(np.intp, copy=False)
        inside = (seqs >= 0) & (seqs < len(self._ids))
        if inside.all():
            return self._ids[seqs].tolist()  # type: ignore[no-any-return]
        out = np.full(seqs.shape, None, dtype=object)
        out[inside] = self._ids[seqs[inside]]
        return out.tolist()  # type: ignore[no-any-return]

    def _grow(self, size: int) -> None:
        if size > len(self._ids):
            extra = max(size, 2 * len(self._ids)) - len(self._ids)
            self._ids = np.concatenate([self._ids, np.full(extra, None, dtype=object)])

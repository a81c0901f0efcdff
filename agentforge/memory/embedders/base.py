"""The embedder interface: texts in, L2-normalised float32 rows out (cosine = dot product)."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from types import TracebackType

import numpy as np

from agentforge.errors import InputError


class Embedder(ABC):
    """Turns texts into unit-length float32 vectors of a fixed dimension.

    `encode` is the one implementation (sync, may block on a model); `embed` is the async
    entry point the memory engine uses and by default runs `encode` in a worker thread.
    Rows are L2-normalised, so the score contract "higher is more similar" is a dot product.
    """

    model_id: str
    dim: int

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts` into a float32 array of shape (len(texts), dim); unit-norm rows."""

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Async `encode`; `query=True` marks search queries (wrappers may cache them)."""
        return await asyncio.to_thread(self.encode, texts)

    def embed_blocking(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """`embed` for code already running in a worker thread (recall's own thread): the
        same rows, without a hop to another thread."""
        return self.encode(texts)

    def encode_parts(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        """`encode` in parts, each as soon as it is ready: (positions in `texts`, their rows).
        Every position comes exactly once; by default in one part."""
        items = check_texts(texts)
        if items:
            yield list(range(len(items))), self.encode(items)

    def embed_parts_blocking(
        self, texts: Sequence[str], *, query: bool = False
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """`embed_blocking` in parts, as `encode_parts`: a caller starts on the first rows while
        the model still runs on the others."""
        items = check_texts(texts)
        if items:
            yield list(range(len(items))), self.embed_blocking(items, query=query)

    def close(self) -> None:  # noqa: B027 - an optional hook, deliberately not abstract
        """Release resources held by the embedder (no-op by default)."""

    def __enter__(self) -> Embedder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate an embedder's input: a sequence of strings, not a bare string."""
    if isinstance(texts, str | bytes):
        raise InputError("embedders take a sequence of texts, not a single string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InputError(f"text {i} is {type(text).__name__}, expected str", index=i)
    return out


def l2_normalize(rows: np.ndarray) -> np.ndarray:
    """Scale each row to unit L2 norm (all-zero rows stay zero); returns float32."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, np.float32(1e-12))


def empty_rows(dim: int) -> np.ndarray:
    """The result of embedding no texts."""
    return np.zeros((0, dim), dtype=np.float32)

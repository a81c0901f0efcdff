"""Embeddings from any provider litellm supports (OpenAI, Cohere, Ollama, …); litellm is lazy."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from agentforge.errors import ConfigError, LLMError
from agentforge.memory.embedders.base import Embedder, check_texts, empty_rows, l2_normalize

_DIM_PROBE = "dimension probe"


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _vectors(response: Any) -> list[list[float]]:
    """The embedding vectors of a litellm EmbeddingResponse, in input order."""
    data = _field(response, "data")
    indexed = []
    for position, item in enumerate(data):
        index = _field(item, "index")
        indexed.append((position if index is None else int(index), _field(item, "embedding")))
    indexed.sort(key=lambda pair: pair[0])
    return [vector for _, vector in indexed]


class LiteLLMEmbedder(Embedder):
    """Calls `litellm.embedding(model=, input=, timeout=)` in batches and normalises the rows.

    `dim` is discovered from the first response when not given (reading `dim` before any call
    makes one probe call). Provider failures raise LLMError.
    """

    def __init__(
        self, model: str, dim: int | None = None, timeout: float = 30.0, *, batch_size: int = 256
    ) -> None:
        if not model:
            raise ConfigError("LiteLLMEmbedder needs a model id, e.g. 'text-embedding-3-small'")
        if dim is not None and dim < 1:
            raise ConfigError(f"embedding dim must be positive, got {dim}", dim=dim)
        self.model = model
        self.model_id = model
        self.timeout = timeout
        self.batch_size = max(1, batch_size)
        self._dim = dim

    @property  # type: ignore[override]
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._call([_DIM_PROBE]).shape[1])
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        if not items:
            return empty_rows(self.dim)
        parts = [
            self._call(items[start : start + self.batch_size])
            for start in range(0, len(items), self.batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def _call(self, batch: list[str]) -> np.ndarray:
        litellm = _litellm()
        try:
            response = litellm.embedding(model=self.model, input=batch, timeout=self.timeout)
        except Exception as exc:
            raise LLMError(
                f"embedding call to {self.model} failed: {type(exc).__name__}: {exc}",
                model=self.model,
            ) from exc
        try:
            rows = np.asarray(_vectors(response), dtype=np.float32)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LLMError(f"malformed embedding response from {self.model}: {exc}") from exc
        if rows.ndim != 2 or rows.shape[0] != len(batch):
            raise LLMError(
                f"{self.model} returned {rows.shape[0] if rows.ndim else 0} embeddings "
                f"for {len(batch)} texts",
                model=self.model,
            )
        if self._dim is None:
            self._dim = int(rows.shape[1])
        elif rows.shape[1] != self._dim:
            raise LLMError(
                f"{self.model} returned dimension {rows.shape[1]}, expected {self._dim}",
                model=self.model,
            )
        return l2_normalize(rows)

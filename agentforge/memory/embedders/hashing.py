"""A deterministic feature-hashing embedder for unit tests: no model, no network, stable hashes."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from agentforge.errors import ConfigError
from agentforge.memory.embedders.base import Embedder, check_texts, empty_rows, l2_normalize

_WORD = re.compile(r"\w+")
_EMPTY_FEATURE = "\x00<empty>"
_BIGRAM_WEIGHT = 0.5


@lru_cache(maxsize=65536)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Bucket index and ±1 sign of a feature, from blake2b (stable across processes)."""
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return value % dim, 1.0 if (value >> 63) & 1 else -1.0


def _features(text: str) -> list[tuple[str, float]]:
    words = _WORD.findall(text.lower())
    if not words:
        return [(_EMPTY_FEATURE, 1.0)]
    feats = [(w, 1.0) for w in words]
    feats += [(f"{a} {b}", _BIGRAM_WEIGHT) for a, b in itertools.pairwise(words)]
    return feats


class HashEmbedder(Embedder):
    """Lowercased words and word bigrams hashed into `dim` signed buckets, L2-normalised.

    Texts sharing words get similar vectors, which is enough for tests of recall logic.
    A text without any word maps to one fixed unit vector.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 1:
            raise ConfigError(f"HashEmbedder dim must be positive, got {dim}", dim=dim)
        self.dim = dim
        self.model_id = f"hash-{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        if not items:
            return empty_rows(self.dim)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            for feature, weight in _features(text):
                index, sign = _bucket(feature, self.dim)
                out[row, index] += sign * weight
        dead = ~out.any(axis=1)  # every feature cancelled out (only likely at tiny dims)
        if dead.any():
            index, sign = _bucket(_EMPTY_FEATURE, self.dim)
            out[dead, index] = sign
        return l2_normalize(out)

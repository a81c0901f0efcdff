"""Build the configured embedder; provider modules are imported only when chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentforge.errors import ConfigError

if TYPE_CHECKING:
    from agentforge.memory.embedders.base import Embedder
    from agentforge.settings import Settings


def _inner(settings: Settings) -> Embedder:
    name = settings.embedder
    if name == "onnx":
        from agentforge.memory.embedders.onnx import OnnxEmbedder

        return OnnxEmbedder.from_package(
            batch_size=settings.embed_batch_size,
            quantize=settings.embedder_quantize,
            cache_dir=settings.cache_dir,
        )
    if name == "hub":
        from agentforge.memory.embedders.onnx import OnnxEmbedder

        return OnnxEmbedder.from_hub(
            settings.embedding_model,
            batch_size=settings.embed_batch_size,
            quantize=settings.embedder_quantize,
            quantize_cache_dir=settings.cache_dir,
        )
    if name == "litellm":
        from agentforge.memory.embedders.litellm_embedder import LiteLLMEmbedder

        return LiteLLMEmbedder(settings.embedding_model)
    if name == "hash":
        from agentforge.memory.embedders.hashing import HashEmbedder

        return HashEmbedder()
    raise ConfigError(
        f"unknown embedder {name!r}; choose onnx, hub, litellm or hash", embedder=name
    )


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by `settings.embedder`, wrapped in a BatchingEmbedder."""
    from agentforge.memory.embedders.batching import BatchingEmbedder

    return BatchingEmbedder(
        _inner(settings),
        max_batch=max(settings.embed_batch_size * 4, 64),
        max_wait_ms=0.0,  # callers (recall, retain) already batch; waiting only adds latency
        cache_size=settings.query_cache_size,
    )

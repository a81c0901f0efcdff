"""Embedders: texts to unit-length float32 vectors (cosine similarity = dot product).

Importing this package is cheap: onnxruntime, tokenizers, huggingface_hub and litellm are
imported only when a model is actually loaded or called.
"""

from agentforge.memory.embedders.base import Embedder
from agentforge.memory.embedders.batching import BatchingEmbedder, EmbedStats
from agentforge.memory.embedders.factory import make_embedder
from agentforge.memory.embedders.hashing import HashEmbedder
from agentforge.memory.embedders.litellm_embedder import LiteLLMEmbedder
from agentforge.memory.embedders.onnx import OnnxEmbedder

__all__ = [
    "BatchingEmbedder",
    "EmbedStats",
    "Embedder",
    "HashEmbedder",
    "LiteLLMEmbedder",
    "OnnxEmbedder",
    "make_embedder",
]

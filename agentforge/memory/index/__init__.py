"""Vector indexes: one small async contract (`VectorIndex`), an exact in-memory backend and chroma.

Scores are cosine similarity over L2-normalised float32 vectors: higher is more similar.
Importing this package does not import chromadb.
"""

from agentforge.memory.index.base import VectorIndex
from agentforge.memory.index.chroma_index import ChromaVectorIndex
from agentforge.memory.index.numpy_index import NumpyVectorIndex

__all__ = ["ChromaVectorIndex", "NumpyVectorIndex", "VectorIndex"]

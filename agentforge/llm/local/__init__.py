"""The local, in-process llama.cpp provider (`local/...` model ids) and model pulling.

`llama_cpp` (the `local` extra) is imported only when a model is first called.
"""

from agentforge.llm.local.provider import LocalLlamaModel, clear_model_cache

__all__ = ["LocalLlamaModel", "clear_model_cache"]

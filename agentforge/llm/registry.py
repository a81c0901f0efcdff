"""The one registry mapping model-id prefixes to lazy provider factories.

- `test` (or `test/<anything>`) → the offline `TestModel`;
- `local/<path-or-repo>` → the in-process llama.cpp provider (`LocalLlamaModel`; needs the
  `local` extra, else a ConfigError saying so);
- anything else → `LiteLLMModel` (litellm syntax: `openai/gpt-4o-mini`, `ollama/llama3`, …).

Factories import their provider module only when called, so resolving a model id imports nothing
heavy until a real model is built, and litellm itself only on the first real call.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from agentforge.errors import ConfigError
from agentforge.llm.base import LLM

ProviderFactory = Callable[..., LLM]
"""`factory(model_id, **options) -> LLM`; `model_id` is the full id, prefix included."""

_HINT = (
    "set AGENTFORGE_MODEL (or pass --model) to a litellm model id such as "
    "'openai/gpt-4o-mini' or 'ollama/llama3', or 'test' for the offline test model"
)


def _test(model_id: str, **options: Any) -> LLM:
    from agentforge.llm.scripted import TestModel

    options.pop("timeout", None)  # answers at once
    return TestModel(model_id=model_id, **options)


def _local(model_id: str, **options: Any) -> LLM:
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(
            f"local models need `pip install agentforge[local]` (llama-cpp-python) for "
            f"{model_id!r}; or {_HINT}",
            model=model_id,
        )
    from agentforge.llm.local.provider import LocalLlamaModel

    return LocalLlamaModel(model_id, **options)


def _litellm(model_id: str, **options: Any) -> LLM:
    from agentforge.llm.litellm_client import LiteLLMModel

    return LiteLLMModel(model_id, **options)


_PROVIDERS: dict[str, ProviderFactory] = {"test": _test, "local": _local}


def register_provider(prefix: str, factory: ProviderFactory) -> None:
    """Route model ids `prefix` and `prefix/...` to `factory` (replacing any earlier one)."""
    if not prefix or "/" in prefix:
        raise ConfigError(f"provider prefix must be a non-empty word without '/', got {prefix!r}")
    _PROVIDERS[prefix] = factory


def provider_prefixes() -> list[str]:
    return sorted(_PROVIDERS)


def create_model(model_id: str, **options: Any) -> LLM:
    """Build the model for `model_id`; options go to the provider (e.g. LiteLLM defaults)."""
    model_id = model_id.strip()
    if not model_id:
        raise ConfigError(f"empty model id; {_HINT}")
    factory = _PROVIDERS.get(model_id.split("/", 1)[0], _litellm)
    return factory(model_id, **options)

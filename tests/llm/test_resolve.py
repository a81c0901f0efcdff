"""Which model a role gets: explicit id > AGENTFORGE_<ROLE>_MODEL > AGENTFORGE_MODEL > local."""

from __future__ import annotations

from typing import Any

import pytest

from agentforge.errors import ConfigError
from agentforge.llm import (
    DEFAULT_MODEL,
    LiteLLMModel,
    ScriptedLLM,
    TestModel,
    create_model,
    register_provider,
    registry,
    resolve_model,
    resolve_model_id,
)
from agentforge.settings import Settings

ENV_VARS = [
    "AGENTFORGE_MODEL",
    "AGENTFORGE_MODEL_TIMEOUT",
    "AGENTFORGE_PLANNER_MODEL",
    "AGENTFORGE_EXECUTOR_MODEL",
    "AGENTFORGE_REFLECTOR_MODEL",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_precedence_explicit_then_role_then_global_then_default(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert resolve_model_id() == DEFAULT_MODEL == "local/default"
    clean_env.setenv("AGENTFORGE_MODEL", "openai/gpt-4o-mini")
    assert resolve_model_id(role="planner") == "openai/gpt-4o-mini"
    clean_env.setenv("AGENTFORGE_PLANNER_MODEL", "anthropic/claude-3-5-sonnet-latest")
    assert resolve_model_id(role="planner") == "anthropic/claude-3-5-sonnet-latest"
    assert resolve_model_id(role="executor") == "openai/gpt-4o-mini"
    assert resolve_model_id() == "openai/gpt-4o-mini"  # no role: the per-role env is ignored
    assert resolve_model_id("test", role="planner") == "test"


def test_each_role_has_its_env_var(clean_env: pytest.MonkeyPatch) -> None:
    for role in ("planner", "executor", "reflector"):
        clean_env.setenv(f"AGENTFORGE_{role.upper()}_MODEL", f"ollama/{role}")
    assert [resolve_model_id(role=r) for r in ("planner", "executor", "reflector")] == [
        "ollama/planner",
        "ollama/executor",
        "ollama/reflector",
    ]
    with pytest.raises(ConfigError, match="bad model role"):
        resolve_model_id(role="no such role")


def test_blank_values_count_as_unset_and_settings_can_be_passed(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AGENTFORGE_EXECUTOR_MODEL", "  ")
    assert resolve_model_id("  ", role="executor", settings=Settings(model="groq/llama3")) == (
        "groq/llama3"
    )
    assert resolve_model_id(settings=Settings(model="")) == DEFAULT_MODEL


def test_resolve_model_builds_the_provider(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AGENTFORGE_REFLECTOR_MODEL", "test")
    reflector = resolve_model(role="reflector")
    assert isinstance(reflector, TestModel) and reflector.model_id == "test"
    assert isinstance(resolve_model("test/planner"), TestModel)
    remote = resolve_model("openai/gpt-4o-mini", temperature=0, api_key="sk-x")
    assert isinstance(remote, LiteLLMModel)
    assert remote.defaults.temperature == 0 and remote.extra == {"api_key": "sk-x"}
    given = ScriptedLLM(["hi"])
    assert resolve_model(given, role="planner") is given


def test_model_calls_time_out_after_the_configured_seconds(clean_env: pytest.MonkeyPatch) -> None:
    remote = resolve_model("openai/gpt-4o-mini")
    assert isinstance(remote, LiteLLMModel) and remote.defaults.timeout == 60.0
    clean_env.setenv("AGENTFORGE_MODEL_TIMEOUT", "900")
    slow = resolve_model("openai/gpt-4o-mini")
    assert isinstance(slow, LiteLLMModel) and slow.defaults.timeout == 900.0
    explicit = resolve_model("openai/gpt-4o-mini", timeout=5)
    assert isinstance(explicit, LiteLLMModel) and explicit.defaults.timeout == 5.0
    assert isinstance(resolve_model("test"), TestModel)  # answers at once; no timeout to set
    clean_env.setenv("AGENTFORGE_MODEL_TIMEOUT", "0")
    with pytest.raises(ValueError, match="greater than 0"):
        resolve_model("openai/gpt-4o-mini")


def test_default_local_model_needs_the_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install agentforge\[local\]") as info:
        resolve_model()
    assert "AGENTFORGE_MODEL" in str(info.value) and info.value.data["model"] == "local/default"


def test_local_model_is_not_faked_when_llama_cpp_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: object())
    with pytest.raises(ConfigError, match="model file not found"):
        resolve_model("local/models/qwen2.5-0.5b-instruct-q4_k_m.gguf")


def test_register_provider_routes_a_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_PROVIDERS", dict(registry._PROVIDERS))
    built: list[tuple[str, dict[str, Any]]] = []

    def factory(model_id: str, **options: Any) -> ScriptedLLM:
        built.append((model_id, options))
        return ScriptedLLM(["custom"], model_id=model_id)

    register_provider("acme", factory)
    assert create_model("acme/small", seed=1).model_id == "acme/small"
    assert built == [("acme/small", {"seed": 1})]
    assert isinstance(create_model("acme-not-a-prefix/x"), LiteLLMModel)
    with pytest.raises(ConfigError):
        register_provider("a/b", factory)
    with pytest.raises(ConfigError, match="empty model id"):
        create_model(" ")

"""The narrow LLM layer: one interface, AgentForge's own message types, one litellm adapter.

Importing this package never imports litellm; `LiteLLMModel` imports it on its first call.
"""

from agentforge.llm.base import LLM
from agentforge.llm.budget import Budget, BudgetMeter, BudgetSnapshot
from agentforge.llm.guard import allow_model_requests, model_requests_allowed
from agentforge.llm.litellm_client import LiteLLMModel
from agentforge.llm.registry import create_model, register_provider
from agentforge.llm.resolve import DEFAULT_MODEL, ROLES, resolve_model, resolve_model_id
from agentforge.llm.scripted import ScriptedCall, ScriptedLLM, TestModel
from agentforge.llm.types import (
    Message,
    ModelResponse,
    ModelSettings,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from agentforge.llm.wrappers import Budgeted, Fallback, Retrying, is_retryable

__all__ = [
    "DEFAULT_MODEL",
    "LLM",
    "ROLES",
    "Budget",
    "BudgetMeter",
    "BudgetSnapshot",
    "Budgeted",
    "Fallback",
    "LiteLLMModel",
    "Message",
    "ModelResponse",
    "ModelSettings",
    "Retrying",
    "ScriptedCall",
    "ScriptedLLM",
    "StreamEvent",
    "TestModel",
    "TextDelta",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "allow_model_requests",
    "create_model",
    "is_retryable",
    "model_requests_allowed",
    "register_provider",
    "resolve_model",
    "resolve_model_id",
]

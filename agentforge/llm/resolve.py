"""Which model a role uses: explicit id > per-role env > AGENTFORGE_MODEL > `local/default`.

- explicit: the `model_id` argument (e.g. from `--model`), or an `LLM` instance, used as is;
- per role: `AGENTFORGE_<ROLE>_MODEL`, e.g. `AGENTFORGE_PLANNER_MODEL`,
  `AGENTFORGE_EXECUTOR_MODEL`, `AGENTFORGE_REFLECTOR_MODEL`;
- `Settings.model` (env `AGENTFORGE_MODEL` or the config file);
- `DEFAULT_MODEL` = `local/default`: the GGUF model fetched by `agentforge models pull`, run
  in-process by llama.cpp. Without one, using it raises a ConfigError saying to pull one or which
  model to configure instead; nothing ever falls back to a paid API silently.
"""

from __future__ import annotations

import os
import re
from typing import Any

from agentforge.errors import ConfigError
from agentforge.llm.base import LLM
from agentforge.llm.registry import create_model
from agentforge.settings import Settings

DEFAULT_MODEL = "local/default"
ROLES = ("planner", "executor", "reflector")
_ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


def role_env_var(role: str) -> str:
    if not _ROLE.match(role):
        raise ConfigError(
            f"bad model role {role!r}: use a word such as {', '.join(ROLES)}", role=role
        )
    return f"AGENTFORGE_{role.upper()}_MODEL"


def resolve_model_id(
    model_id: str | None = None, *, role: str | None = None, settings: Settings | None = None
) -> str:
    """The model id by precedence (see the module docstring); blank values count as unset."""
    if model_id and model_id.strip():
        return model_id.strip()
    if role is not None:
        from_role = os.environ.get(role_env_var(role), "").strip()
        if from_role:
            return from_role
    configured = (settings or Settings()).model
    if configured and configured.strip():
        return configured.strip()
    return DEFAULT_MODEL


def resolve_model(
    model_id: str | LLM | None = None,
    *,
    role: str | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> LLM:
    """The `LLM` for `model_id` / `role`; options go to the provider (e.g. `temperature=0`).
    Calls time out after `Settings.model_timeout` seconds unless `timeout=` says otherwise."""
    if isinstance(model_id, LLM):
        return model_id
    settings = settings or Settings()
    options.setdefault("timeout", settings.model_timeout)
    return create_model(resolve_model_id(model_id, role=role, settings=settings), **options)

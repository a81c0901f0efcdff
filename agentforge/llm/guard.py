"""A global switch that makes any real (network) model call fail loudly, for test suites.

Real calls are blocked when `ALLOW_MODEL_REQUESTS` is False or the environment sets
`AGENTFORGE_BLOCK_MODEL_REQUESTS=1`. Fakes (`ScriptedLLM`, the `test` model) are never blocked.

    allow_model_requests(False)            # from now on
    with allow_model_requests(False): ...  # only inside the block
"""

from __future__ import annotations

import os
from types import TracebackType

from agentforge.errors import LLMError

ALLOW_MODEL_REQUESTS = True
BLOCK_ENV = "AGENTFORGE_BLOCK_MODEL_REQUESTS"
_TRUE = {"1", "true", "yes", "on"}


class allow_model_requests:  # lower case: used like a function too
    """Set the global switch now; used as a context manager, restore the old value on exit."""

    def __init__(self, allow: bool = True) -> None:
        global ALLOW_MODEL_REQUESTS
        self.previous = ALLOW_MODEL_REQUESTS
        ALLOW_MODEL_REQUESTS = bool(allow)

    def __enter__(self) -> allow_model_requests:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global ALLOW_MODEL_REQUESTS
        ALLOW_MODEL_REQUESTS = self.previous


def model_requests_allowed() -> bool:
    """True unless the switch is off or `AGENTFORGE_BLOCK_MODEL_REQUESTS` is set."""
    blocked_by_env = os.environ.get(BLOCK_ENV, "").strip().lower() in _TRUE
    return ALLOW_MODEL_REQUESTS and not blocked_by_env


def check_model_request(model_id: str) -> None:
    """Raise LLMError if real model requests are blocked; call before touching any provider."""
    if not model_requests_allowed():
        raise LLMError(
            f"real model requests are blocked in tests (model {model_id!r}); use the 'test' model "
            f"or ScriptedLLM, or allow_model_requests(True) / unset {BLOCK_ENV}",
            model=model_id,
            kind="blocked",
            retryable=False,
        )

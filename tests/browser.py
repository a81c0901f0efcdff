"""Shared by the tests that drive the real Chromium: skip them where it is not installed, and run
browser tests in their module's event loop (where the module-scoped browser fixtures live)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from agentforge.errors import ConfigError
from agentforge.tools.builtin.browser_session import find_chromium


def chromium_path() -> str | None:
    try:
        return find_chromium()
    except ConfigError:
        return None


needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="Chromium is not installed (apt-get install chromium)")


def in_browser(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """A test on the module's Chromium, in the module's event loop like its fixtures."""
    return needs_chromium(pytest.mark.asyncio(loop_scope="module")(test))

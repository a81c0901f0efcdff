"""Test-suite wide settings: no real model request may leave this process, and nothing reads or
writes the user's real AgentForge home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["AGENTFORGE_BLOCK_MODEL_REQUESTS"] = "1"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if "AGENTFORGE_HOME" not in os.environ:
        monkeypatch.setenv("AGENTFORGE_HOME", str(tmp_path_factory.mktemp("home")))
    yield


def pytest_report_header() -> list[str]:
    return [f"agentforge tests: model requests blocked; repo {Path(__file__).parents[1]}"]

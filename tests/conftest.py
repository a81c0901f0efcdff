"""Test-suite wide settings: no real model request may leave this process, nothing reads or
writes the user's real AgentForge home, and derived files (the quantized embedder) are built
once per test session into a temporary cache directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["AGENTFORGE_BLOCK_MODEL_REQUESTS"] = "1"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if "AGENTFORGE_CACHE_DIR" in os.environ:
        yield
        return
    os.environ["AGENTFORGE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield
    finally:
        os.environ.pop("AGENTFORGE_CACHE_DIR", None)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    if "AGENTFORGE_HOME" not in os.environ:
        monkeypatch.setenv("AGENTFORGE_HOME", str(tmp_path_factory.mktemp("home")))
    yield


def pytest_report_header() -> list[str]:
    return [f"agentforge tests: model requests blocked; repo {Path(__file__).parents[1]}"]

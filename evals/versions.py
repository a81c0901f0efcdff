"""What a run record says about the software that produced it: package versions, the browser, the
Python, and the repository's commit when there is one."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("agentforge", "langgraph", "litellm", "chromadb", "playwright", "miniwob",
            "llama-cpp-python", "onnxruntime")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version(),
                                    "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["chromium"] = _output(["chromium", "--version"])
    found["git_commit"] = _output(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"])
    return found


def _output(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None

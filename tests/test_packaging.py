"""The wheel must contain every package: pyproject lists them explicitly (cli/ and evals/ are
mapped into the agentforge namespace), so a new package that is not listed is a bug."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = {v: k for k, v in config["package-dir"].items()}  # folder -> package
    found = set()
    for top in ("agentforge", "cli", "evals"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).parts
            found.add(".".join([mapping[rel[0]], *rel[1:]]))
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def test_public_api_is_lazy_and_complete() -> None:
    import subprocess
    import sys

    code = (
        "import sys, agentforge; assert 'agentforge.sdk' not in sys.modules; "
        "missing = [n for n in agentforge.__all__ if getattr(agentforge, n, None) is None]; "
        "print(missing)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

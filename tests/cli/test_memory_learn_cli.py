"""`agentforge memory learn` and `export-skills` on real stores (hash embedder, `test` model)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentforge.cli.app import app
from tests.cli.test_memory_cli import env_for


def invoke(home: Path, *args: str) -> object:
    return CliRunner().invoke(app, list(args), env=env_for(home))


def test_learn_runs_the_steps_and_reports_them(tmp_path: Path) -> None:
    for text in ("Open the cart before checkout", "Tick the terms box to enable checkout",
                 "Checkout needs a shipping address first"):
        assert invoke(tmp_path, "memory", "retain", text).exit_code == 0
    result = invoke(tmp_path, "memory", "learn", "--model", "test", "--json")
    assert result.exit_code == 0, result.output
    steps = {r["step"]: r for r in json.loads(result.stdout)}
    assert set(steps) == {"conflicts", "insights", "retire", "consolidate", "skills", "weights"}
    assert "too few logged recalls" in steps["weights"]["notes"]["reason"]
    table = invoke(tmp_path, "memory", "learn", "--model", "test", "--steps", "skills")
    assert table.exit_code == 0 and "skills" in table.output


def test_learn_rejects_unknown_steps_and_export_says_when_there_is_nothing(tmp_path: Path
                                                                         ) -> None:
    bad = invoke(tmp_path, "memory", "learn", "--steps", "dreams", "--model", "test")
    assert bad.exit_code != 0 and "unknown learning step(s) dreams" in bad.output
    assert "Traceback" not in bad.output
    empty = invoke(tmp_path, "memory", "export-skills", str(tmp_path / "out"))
    assert empty.exit_code == 0 and "no skills in memory yet" in empty.output

"""`agentforge run` and `agentforge runs …` with the `test` model on the real stores."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentforge.cli.app import app
from tests.cli.test_memory_cli import env_for, run_process


def invoke(home: Path, *args: str):
    return CliRunner().invoke(app, list(args), env=env_for(home))


def test_run_with_the_test_model_then_list_and_show(tmp_path: Path) -> None:
    result = invoke(tmp_path, "run", "Say hello", "--model", "test", "--tools", "memory", "--json")
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["answer"] == "test model reply" and run["steps"][0]["type"] == "task"
    listed = json.loads(invoke(tmp_path, "runs", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [run["run_id"]]
    shown = invoke(tmp_path, "runs", "show", run["run_id"])
    assert shown.exit_code == 0 and "Say hello" in shown.stdout


def test_user_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    for args in (
        ["runs", "show", "nope"],
        ["runs", "resume", "nope", "--model", "test"],
        ["run", "   ", "--model", "test"],
        ["run", "x", "--model", "test", "--tools", "no-such-tool"],
        ["run", "x", "--model", "test", "--skills", str(tmp_path / "no-such-dir")],
    ):
        proc = run_process(tmp_path, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, proc.stderr)


def test_resuming_a_finished_run_is_a_clear_error(tmp_path: Path) -> None:
    run = json.loads(
        invoke(tmp_path, "run", "Say hi", "--model", "test", "--tools", "memory", "--json").stdout
    )
    proc = run_process(tmp_path, "runs", "resume", run["run_id"], "--model", "test")
    assert proc.returncode == 2 and "already finished" in proc.stderr


def test_a_model_that_fails_exits_1_and_teaches_memory_nothing(tmp_path: Path) -> None:
    """A mistyped model (litellm knows no such provider; no network is needed to say so): the
    run stops on the model's error, no judge runs, no episode is kept, and the exit is 1."""
    result = invoke(
        tmp_path, "run", "Say hello", "--model", "nosuchprovider/x", "--tools", "memory", "--json"
    )
    assert result.exit_code == 1, result.output
    run = json.loads(result.stdout)
    assert run["stop_reason"] == "error" and "the model failed" in run["answer"]
    assert run["outcome"] == "unknown" and run["steps"][-1]["judged_by"] == "runtime"
    stats = json.loads(invoke(tmp_path, "memory", "stats", "--json").stdout)
    assert "episode" not in stats["namespaces"].get("default", {}).get("levels", {})


def test_run_loads_skills_from_the_folders_it_is_given(tmp_path: Path) -> None:
    folder = tmp_path / "skills" / "greet"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        "---\ndescription: Greet the user by name.\n---\n1. Say hello to the user.\n"
    )
    args = ["run", "Say hello", "--model", "test", "--tools", "memory", "--json"]
    result = invoke(tmp_path, *args, "--skills", str(tmp_path / "skills"))
    assert result.exit_code == 0, result.output
    stats = json.loads(invoke(tmp_path, "memory", "stats", "--json").stdout)
    assert stats["namespaces"]["default"]["levels"].get("skill", 0) >= 1
    hits = json.loads(
        invoke(tmp_path, "memory", "recall", "greet the user", "--level", "skill", "--json").stdout
    )
    assert any("Greet the user by name" in h["content"] for h in hits["hits"])

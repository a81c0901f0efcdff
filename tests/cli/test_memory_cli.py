"""`agentforge memory …` end to end: CliRunner in process, and real subprocesses for the exit
codes and the stderr of user mistakes. The stores are real (SQLite + embedded chroma under a
temporary home); the embedder is the deterministic hash embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from agentforge.cli.app import app
from agentforge.cli.console import errors
from agentforge.cli.memory import LevelName
from agentforge.errors import InputError, MemoryStoreError, NotFoundError
from agentforge.types import Level

# (not pydantic: this typer release coerces parameters through pydantic itself)
HEAVY = ("chromadb", "litellm", "onnxruntime", "sqlmodel", "sqlalchemy", "numpy")


def env_for(home: Path) -> dict[str, str | None]:
    return {
        "AGENTFORGE_HOME": str(home),
        "AGENTFORGE_EMBEDDER": "hash",
        "AGENTFORGE_NAMESPACE": None,
        "AGENTFORGE_DATABASE_URL": None,
        "AGENTFORGE_CHROMA_HOST": None,
        "AGENTFORGE_DEBUG": None,
        "COLUMNS": "200",
    }


@pytest.fixture
def cli(tmp_path: Path):
    """Run `agentforge ARGS…` in process against a fresh home; fails on a non-zero exit unless
    `code=` says otherwise."""
    runner = CliRunner()

    def run(*args: str, code: int = 0, home: Path | None = None, stdin: str | None = None):
        result = runner.invoke(app, list(args), env=env_for(home or tmp_path / "home"), input=stdin)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        return result

    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def run_process(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFORGE_")}
    env.update({"AGENTFORGE_HOME": str(home), "AGENTFORGE_EMBEDDER": "hash"})
    return subprocess.run(
        [sys.executable, "-m", "agentforge.cli.app", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0]


# --- help and global options --------------------------------------------------------------------


def test_help_does_not_import_heavy_modules() -> None:
    script = f"""
import sys
from agentforge.cli.app import main
for argv in (["agentforge", "--help"], ["agentforge", "memory", "--help"],
             ["agentforge", "memory", "recall", "--help"]):
    sys.argv = argv
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
loaded = [m for m in {HEAVY!r} if m in sys.modules]
loaded += [k for k in sys.modules if k.startswith("agentforge.memory")]
print("HEAVY:" + ",".join(loaded))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("HEAVY:"), proc.stdout[-500:]
    assert "retain" in proc.stdout and "--token-budget" in proc.stdout


def test_version(cli) -> None:
    assert cli("--version").stdout.startswith("agentforge ")
    assert cli("version").stdout == cli("--version").stdout


def test_home_option_overrides_the_environment(cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    cli("--home", str(other), "memory", "retain", "Stored in the other home.")
    assert (other / "memory.db").exists()
    stats = as_json(cli("memory", "stats", "--json"))
    assert stats["namespaces"] == {}


def test_level_choices_mirror_the_engine_levels() -> None:
    assert [lv.value for lv in LevelName] == [lv.value for lv in Level]


# --- retain and recall --------------------------------------------------------------------------


def test_retain_then_recall_finds_it(cli) -> None:
    retained = as_json(
        cli(
            "memory",
            "retain",
            "The deploy key lives in vault under ops/deploy.",
            "-t",
            "ops",
            "--json",
        )
    )
    assert retained["created"] == 1 and len(retained["ids"]) == 1
    cli("memory", "retain", "Paris is the capital of France.")
    found = as_json(cli("memory", "recall", "where is the deploy key", "-k", "5", "--json"))
    top = found["hits"][0]
    assert top["id"] == retained["ids"][0]
    assert top["tags"] == ["ops"] and top["ranks"]["dense"] == 1
    only_ops = as_json(cli("memory", "recall", "capital", "--tag", "ops", "--json"))
    assert [h["id"] for h in only_ops["hits"]] == retained["ids"]
    table = cli("memory", "recall", "deploy key").stdout
    assert "deploy key lives in vault" in table and retained["ids"][0][:8] in table


def test_retain_is_idempotent_and_namespaced(cli) -> None:
    first = as_json(cli("memory", "retain", "Tea at five.", "-n", "acme/agent", "--json"))
    again = as_json(cli("memory", "retain", "tea at  FIVE.", "-n", "acme/agent", "--json"))
    assert again["ids"] == first["ids"] and again["created"] == 0
    assert as_json(cli("memory", "recall", "tea", "--json"))["hits"] == []
    assert as_json(cli("memory", "recall", "tea", "-n", "acme/agent", "--json"))["hits"]


def test_retain_from_stdin(cli) -> None:
    cli("memory", "retain", "--stdin", stdin="Piped: the staging cluster is in eu-west-1.\n")
    hits = as_json(cli("memory", "recall", "staging cluster region", "--json"))["hits"]
    assert hits[0]["content"] == "Piped: the staging cluster is in eu-west-1."


def test_retain_file_then_recall(cli, tmp_path: Path) -> None:
    doc = tmp_path / "runbook.md"
    doc.write_text("# Runbook\n\nRestart the ingest worker with `make restart-ingest`.\n")
    result = as_json(cli("memory", "retain", "--file", str(doc), "--json"))
    assert result["created"] == 1
    hit = as_json(cli("memory", "recall", "restart ingest worker", "--json"))["hits"][0]
    assert "make restart-ingest" in hit["content"]
    assert hit["doc_id"] == str(doc.resolve()) and hit["kind"] == "document"
    # the same file again is a no-op; changed content replaces the old chunk
    assert as_json(cli("memory", "retain", "-f", str(doc), "--json"))["created"] == 0
    doc.write_text("Restart the ingest worker with `systemctl restart ingest`.\n")
    cli("memory", "retain", "-f", str(doc))
    hits = as_json(cli("memory", "recall", "restart ingest worker", "--json"))["hits"]
    assert [h["content"] for h in hits] == [
        "Restart the ingest worker with `systemctl restart ingest`."
    ]


# --- user mistakes: one line on stderr, exit 2, no traceback (real processes) -------------------


def test_binary_and_undecodable_files_are_clear_errors(tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert_one_line_error(
        run_process(tmp_path / "home", "memory", "retain", "-f", str(binary)),
        2,
        "blob.bin",
        "binary",
    )
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café crème".encode("latin-1"))
    assert_one_line_error(
        run_process(tmp_path / "home", "memory", "retain", "-f", str(latin)), 2, "UTF-8"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["memory", "retain", ""], ["empty"]),
        (["memory", "retain", "   \n  "], ["empty"]),
        (["memory", "retain"], ["nothing to retain"]),
        (["memory", "retain", "x", "-n", "../x"], ["namespace"]),
        (["memory", "recall", "x", "--as-of", "yesterday"], ["--as-of"]),
        (["memory", "forget", "no-such-id"], ["no-such-id"]),
        (["memory", "undo", "no-such-op"], ["no-such-op"]),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    tmp_path: Path, args: list[str], words: list[str]
) -> None:
    assert_one_line_error(run_process(tmp_path / "home", *args), 2, *words)


def test_errors_maps_exceptions_to_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    cases: list[tuple[BaseException, int]] = [
        (InputError("bad input\nsecond line"), 2),
        (NotFoundError("missing"), 2),
        (MemoryStoreError("store broke"), 1),
        (KeyboardInterrupt(), 130),
        (RuntimeError("boom"), 1),
    ]
    for exc, code in cases:
        with pytest.raises(typer.Exit) as exit_info, errors():
            raise exc
        assert exit_info.value.exit_code == code
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


# --- forget, undo, history ----------------------------------------------------------------------


def test_forget_and_undo_round_trip_with_history(cli) -> None:
    record_id = as_json(cli("memory", "retain", "The build cache lives on /mnt/cache.", "--json"))[
        "ids"
    ][0]
    query = ("memory", "recall", "where is the build cache", "--json")
    assert [h["id"] for h in as_json(cli(*query))["hits"]] == [record_id]

    forgot = as_json(cli("memory", "forget", record_id, "--reason", "moved", "--json"))
    assert as_json(cli(*query))["hits"] == []
    undone = as_json(cli("memory", "undo", forgot["op_id"], "--json"))
    assert undone["kind"] == "undo" and undone["undoes"] == forgot["op_id"]
    assert [h["id"] for h in as_json(cli(*query))["hits"]] == [record_id]

    entries = as_json(cli("memory", "history", "--record", record_id, "--json"))
    assert [e["action"] for e in entries] == ["restore", "forget", "create"]
    assert entries[1]["reason"] == "moved"
    ops = as_json(cli("memory", "history", "--ops", "--json"))
    assert [o["kind"] for o in ops] == ["undo", "forget", "retain"]
    assert ops[1]["undone_by"] == ops[0]["id"]
    assert forgot["op_id"] in cli("memory", "history", "--ops").stdout
    cli("memory", "undo", forgot["op_id"], code=2)  # already undone


# --- export and import --------------------------------------------------------------------------


def test_export_then_import_into_a_fresh_home(cli, tmp_path: Path) -> None:
    cli("memory", "retain", "Alpha fact about rockets.")
    cli("memory", "retain", "Beta fact about boats.", "-n", "team/b")
    gone = as_json(cli("memory", "retain", "Gamma fact, later forgotten.", "--json"))["ids"]
    cli("memory", "forget", *gone)
    out = tmp_path / "export.jsonl"
    cli("memory", "export", str(out))
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "agentforge-memory/1" and len(lines) == 4
    assert cli("memory", "export", "-", "-n", "team/b").stdout.count("\n") == 2

    fresh = tmp_path / "fresh"
    imported = as_json(cli("memory", "import", str(out), "--json", home=fresh))
    assert imported == {"imported": 3, "records": 3, "skipped": 0}
    again = as_json(cli("memory", "import", str(out), "--json", home=fresh))
    assert again["imported"] == 0 and again["skipped"] == 3
    stats = as_json(cli("memory", "stats", "--json", home=fresh))["namespaces"]
    assert stats["default"]["status"] == {"active": 1, "forgotten": 1}
    assert stats["team/b"]["total"] == 1
    hits = as_json(cli("memory", "recall", "boats", "-n", "team/b", "--json", home=fresh))["hits"]
    assert hits[0]["content"] == "Beta fact about boats."
    assert as_json(cli("memory", "check", "--json", home=fresh))["ok"] is True


def test_import_into_another_namespace(cli, tmp_path: Path) -> None:
    cli("memory", "retain", "Moved fact.")
    out = tmp_path / "export.jsonl"
    cli("memory", "export", str(out))
    fresh = tmp_path / "fresh"
    cli("memory", "import", str(out), "-n", "moved/here", home=fresh)
    assert as_json(cli("memory", "recall", "moved", "-n", "moved/here", "--json", home=fresh))[
        "hits"
    ]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("just some notes\n", ["not an AgentForge memory export"]),
        ('{"format": "something-else"}\n', ["not an AgentForge memory export"]),
        ('{"format": "agentforge-memory/1"}\nnot json\n', [":2:", "not valid JSON"]),
        ('{"format": "agentforge-memory/1"}\n[1, 2]\n', [":2:", "not a memory record"]),
    ],
)
def test_import_of_a_malformed_file_exits_2(tmp_path: Path, content: str, words: list[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    assert_one_line_error(run_process(tmp_path / "home", "memory", "import", str(bad)), 2, *words)


def test_import_of_a_missing_file_exits_2(cli, tmp_path: Path) -> None:
    result = cli("memory", "import", str(tmp_path / "nope.jsonl"), code=2)
    assert result.stderr.startswith("error: no such file")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\xff\xfe binary \x00\x01\n", id="not-utf8-UnicodeDecodeError"),
        pytest.param(
            b'{"format": "agentforge-memory/1"}\n{"id": "x1", "content": "hi"}\n',
            id="missing-fields-IntegrityError",
        ),
        pytest.param(
            b'{"format": "agentforge-memory/1"}\n'
            b'{"id": "x1", "content": "hi", "created_at": "yesterday"}\n',
            id="bad-datetime-ValueError",
        ),
    ],
)
def test_import_of_a_corrupt_file_exits_2(cli, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "corrupt.jsonl"
    bad.write_bytes(content)
    cli("memory", "import", str(bad), code=2)


# --- reflect, stats, check ----------------------------------------------------------------------


def test_reflect_dry_run_json(cli) -> None:
    cli("memory", "retain", "Deploys happen on Tuesdays.")
    report = as_json(cli("memory", "reflect", "--dry-run", "--max-changes", "10", "--json"))
    assert report["dry_run"] is True and report["op_id"] is None
    assert report["namespace"] == "default"
    assert isinstance(report["changes"], list) and isinstance(report["counts"], dict)
    assert "nothing to consolidate" in cli("memory", "reflect").stdout


def test_stats_json(cli) -> None:
    cli("memory", "retain", "One.")
    cli("memory", "retain", "An insight.", "--level", "insight", "-n", "team/x")
    stats = as_json(cli("memory", "stats", "--json"))
    assert stats["embedder"] == "hash-256"
    assert stats["namespaces"]["default"]["levels"] == {"experience": 1}
    assert stats["namespaces"]["team/x"]["levels"] == {"insight": 1}
    assert stats["namespaces"]["team/x"]["vectors"] == 1
    only = as_json(cli("memory", "stats", "-n", "team/x", "--json"))
    assert list(only["namespaces"]) == ["team/x"]


def test_check_json_ok(cli) -> None:
    cli("memory", "retain", "Checked fact.")
    report = as_json(cli("memory", "check", "--json"))
    assert report["ok"] is True and report["namespaces"]["default"]["missing"] == 0
    repaired = as_json(cli("memory", "check", "--repair", "--json"))
    assert repaired["ok"] is True and repaired["fixed"] == 0
    assert "ok" in cli("memory", "check").stdout


def test_memory_commands_load_a_dense_mirror_snapshot_but_build_none(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One command lives too short to use a mirror it builds: it only loads a snapshot, unless
    AGENTFORGE_DENSE_MIRROR says otherwise."""
    from agentforge.memory.engine import Memory

    modes: list[str] = []
    real = Memory.from_settings.__func__  # type: ignore[attr-defined]

    def spy(cls, settings=None):
        modes.append(settings.dense_mirror)
        return real(cls, settings)

    monkeypatch.setattr(Memory, "from_settings", classmethod(spy))
    cli("memory", "retain", "the staging login is admin")
    cli("memory", "recall", "staging login")
    assert modes == ["snapshot", "snapshot"]
    runner = CliRunner()
    env = {**env_for(tmp_path / "home"), "AGENTFORGE_DENSE_MIRROR": "on"}
    assert runner.invoke(app, ["memory", "recall", "staging login"], env=env).exit_code == 0
    assert modes[-1] == "on"

"""The harness end to end on real Chromium and real MiniWoB++ pages with a scripted model: passes,
memory modes, traces, resume after a killed run, reports, and the CLI's errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentforge.cli.app import app
from agentforge.evals.harness import RunConfig, read_episodes, run_suite
from agentforge.evals.report import build_report, render_html, wilson
from agentforge.llm import Message, ScriptedLLM, ToolSpec
from agentforge.memory.engine import Memory
from agentforge.settings import Settings
from tests.browser import needs_chromium

LESSON = "Click the element the instruction quotes"


pytestmark = needs_chromium


def clicker(*, wrong: bool = False) -> ScriptedLLM:
    """Observes, clicks what the MiniWoB instruction quotes (or a wrong label), finishes."""

    def reply(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str | Message:
        head = messages[0].content or ""
        if "You are the planner" in head:
            return json.dumps({"subgoals": ["find the quoted element", "click it"]})
        if "You are the executor" in head:
            task = next(m.content or "" for m in messages if m.role == "user")
            done = [m for m in messages if m.role == "tool"]
            if not done:
                return ScriptedLLM.tool_call("browser_observe")
            if len(done) == 1:
                target = re.search(r'"([^"]+)"', task)
                label = "no such thing" if wrong or target is None else target.group(1)
                return ScriptedLLM.tool_call("browser_click", label=label)
            return ScriptedLLM.tool_call("finish", answer="clicked")
        return json.dumps({"items": [{
            "title": LESSON, "description": "MiniWoB instructions quote their target.",
            "content": "Observe, then click the element whose text the instruction quotes."}]})

    return ScriptedLLM(reply)


def write_suite(path: Path, envs: Sequence[tuple[str, str]]) -> Path:
    tasks = [{"task_id": f"miniwob.{env}", "env": env, "intent_template_id": env,
              "intent": "(set by the page)", "start_url": "", "split": split,
              "eval": {"eval_types": ["miniwob_reward"]}} for env, split in envs]
    path.write_text(json.dumps({"name": "mini", "environment": {"type": "miniwob"},
                                "tasks": tasks}))
    return path


async def test_evolving_run_writes_traces_learns_and_reports(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "mini.json", [("click-button", "train"),
                                                  ("click-link", "test")])
    out = tmp_path / "run"
    config = RunConfig(suite=str(suite), memory="evolving", passes=2, seed=7, max_steps=4)
    summary = await run_suite(config, out, llm=clicker())
    assert summary.done == 4 and summary.successes == 4
    records = read_episodes(out)
    assert {(r["pass"], r["task_id"]) for r in records} == {
        (p, t) for p in (1, 2) for t in ("miniwob.click-button", "miniwob.click-link")}
    first = records[0]
    assert first["eval"]["done"] and first["eval"]["raw_reward"] > 0
    assert [s["tool"] for s in first["steps"] if s["type"] == "action"] == [
        "browser_observe", "browser_click"]
    assert first["intent"].startswith("Click") and first["tokens"] > 0
    seeds = {(r["pass"], r["task_id"]): r["seed"] for r in records}
    assert seeds[(1, "miniwob.click-button")] != seeds[(2, "miniwob.click-button")]
    # pass 2 recalled what pass 1 learnt
    assert any(h["ids"] for r in records if r["pass"] == 2 for h in r["memory_hits"])
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["memory"] == "evolving" and run["versions"]["miniwob"]
    memory = Memory.from_settings(Settings(home=out / "home"))
    try:
        lessons = (await memory.arecall(LESSON, namespace="eval/mini", levels=["experience"],
                                        k=5, log=False)).hits
        assert lessons and lessons[0].title == LESSON and lessons[0].utility > 0.5
    finally:
        memory.close()

    report = build_report([out])
    passes = report["runs"][0]["passes"]
    assert [(p["pass"], p["episodes"], p["successes"]) for p in passes] == [(1, 2, 2), (2, 2, 2)]
    assert passes[0]["ci95"] == pytest.approx(list(wilson(2, 2)))
    assert passes[0]["tokens_per_success"] == passes[0]["tokens"] / 2
    page = render_html(report)
    assert "<svg" in page and "click-link" in page and "http" not in page.split("<body>")[0]


async def test_transfer_evaluates_test_frozen_and_off_uses_no_memory(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "mini.json", [("click-button", "train"),
                                                  ("click-link", "test")])
    out = tmp_path / "transfer"
    await run_suite(RunConfig(suite=str(suite), split="transfer", passes=1, max_steps=4), out,
                    llm=clicker())
    records = {r["phase"]: r for r in read_episodes(out)}
    assert records["train"]["learn"] is True and records["test"]["learn"] is False
    assert records["train"]["task_id"] == "miniwob.click-button"
    memory = Memory.from_settings(Settings(home=out / "home"))
    try:
        before = (await memory.astats("eval/mini"))["namespaces"]["eval/mini"]["total"]
    finally:
        memory.close()

    frozen = tmp_path / "frozen"
    await run_suite(RunConfig(suite=str(suite), memory="frozen", split="test",
                              memory_from=str(out), max_steps=4), frozen, llm=clicker())
    memory = Memory.from_settings(Settings(home=frozen / "home"))
    try:  # recalled from the copied memory, learnt nothing
        after = (await memory.astats("eval/mini"))["namespaces"]["eval/mini"]["total"]
        assert after == before > 0
    finally:
        memory.close()
    assert any(h["ids"] for h in read_episodes(frozen)[0]["memory_hits"])

    off = tmp_path / "off"
    await run_suite(RunConfig(suite=str(suite), memory="off", max_steps=4), off,
                    llm=clicker(wrong=True))
    records = read_episodes(off)
    assert len(records) == 2 and not any(r["success"] for r in records)
    assert all(r["memory_hits"] == [] for r in records)
    assert not (off / "home" / "memory.db").exists()


async def test_two_workers_each_with_a_browser_share_the_stream(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "mini.json", [("click-button", "train"),
                                                  ("click-link", "test")])
    out = tmp_path / "workers"
    summary = await run_suite(RunConfig(suite=str(suite), memory="evolving", passes=2,
                                        workers=2, max_steps=4), out, llm=clicker())
    records = read_episodes(out)
    assert summary.done == len(records) == 4 and summary.successes == 4
    assert {r["worker"] for r in records} == {0, 1}  # both browsers did work
    assert len({r["key"] for r in records}) == 4


RESUMABLE = """
import asyncio, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_harness import clicker
from agentforge.evals.harness import RunConfig, run_suite
asyncio.run(run_suite(RunConfig(suite={suite!r}, memory="off", passes=3, max_steps=4),
                      Path({out!r}), llm=clicker()))
"""


def test_resume_after_a_killed_run_reruns_only_unfinished_episodes(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    suite = write_suite(tmp_path / "mini.json", [("click-button", "train")])
    out = tmp_path / "killed"
    script = RESUMABLE.format(tests=str(Path(__file__).parent), suite=str(suite), out=str(out))
    # the killed browser cannot remove its profile: give it a TMPDIR that the test removes
    # (a short one: Chromium's socket paths must fit in 108 bytes)
    scratch = tempfile.mkdtemp(prefix="af-killed-")
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            env={**os.environ, "TMPDIR": scratch},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_episodes(out)) < 1:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {r["key"] for r in read_episodes(out)}
    assert 1 <= len(finished) < 3

    llm = clicker()
    summary = asyncio.run(run_suite(RunConfig(suite=str(suite), memory="off", passes=3,
                                              max_steps=4), out, llm=llm))
    records = read_episodes(out)
    assert summary.skipped == len(finished) and summary.done == 3 - len(finished)
    assert sorted(r["key"] for r in records) == [f"{p}:all:miniwob.click-button"
                                                 for p in (1, 2, 3)]
    with pytest.raises(Exception, match="other memory"):
        asyncio.run(run_suite(RunConfig(suite=str(suite), memory="evolving", passes=3), out,
                              llm=llm))


def test_cli_list_run_report_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["eval", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    suites = {s["name"]: s for s in json.loads(listed.stdout)}
    assert suites["miniwob"]["tasks"] >= 40 and suites["miniwob"]["train"] > 0

    out = tmp_path / "cli"
    ran = runner.invoke(app, ["eval", "run", "miniwob", "--model", "test", "--memory", "off",
                              "--task", "miniwob.click-button", "--max-steps", "2",
                              "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    assert "Per pass" in ran.stdout and (out / "report.html").is_file()
    assert len(read_episodes(out)) == 1

    reported = runner.invoke(app, ["eval", "report", str(out), "--json"])
    assert json.loads(reported.stdout)["runs"][0]["overall"]["episodes"] == 1

    missing = runner.invoke(app, ["eval", "run", "no-such-suite", "--out", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "unknown suite 'no-such-suite'" in missing.output
    assert "Traceback" not in missing.output

    monkeypatch.setenv("AGENTFORGE_CHROMIUM", str(tmp_path / "no-chromium"))
    no_browser = runner.invoke(app, ["eval", "run", "miniwob", "--model", "test", "--task",
                                     "miniwob.click-button", "--out", str(tmp_path / "y")])
    assert no_browser.exit_code != 0 and "Chromium not found" in no_browser.output


async def test_evolving_with_skills_induces_verifies_and_replays_a_skill(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "mini.json", [("click-button", "train")])
    out = tmp_path / "skills"
    llm = clicker()
    summary = await run_suite(RunConfig(suite=str(suite), memory="evolving", passes=4, seed=5,
                                        max_steps=4, learn=("experiences", "skills")), out,
                              llm=llm)
    records = sorted(read_episodes(out), key=lambda r: r["pass"])
    assert summary.done == 4 and all(r["success"] for r in records)
    # successes of the template: a skill is induced, replayed on a fresh instance, admitted
    assert any("skills: 1 created" in line for r in records for line in r["learning"])
    replays = [r for r in records if any(s.get("replayed_skill") for s in r["steps"])]
    assert replays, [r["intent"] for r in records]
    first = replays[0]
    step = next(s for s in first["steps"] if s.get("replayed_skill"))
    assert step["tool"] == "browser_click" and "{{" not in json.dumps(step["arguments"])
    # the replayed episode needed no executor call: its actions cost no tokens
    assert all(s.get("tokens", 0) == 0 for s in first["steps"] if s["type"] == "action")
    assert sum(s.get("tokens", 0) for s in records[0]["steps"] if s["type"] == "action") > 0
    flashbacks = [json.loads(line) for line in (out / "flashbacks.jsonl").read_text().splitlines()]
    assert flashbacks and flashbacks[0]["reran"] and not flashbacks[0]["regressed"]
    exported = await asyncio.to_thread(  # the CLI runs its own event loop
        CliRunner().invoke, app, ["--home", str(out / "home"), "memory", "export-skills",
                                  str(tmp_path / "skills-out"), "--namespace", "eval/mini"])
    assert exported.exit_code == 0, exported.output
    from agentforge.skills import discover_skills

    [skill] = discover_skills(tmp_path / "skills-out")
    assert skill.template == 'Click on the "{p1}" button.'

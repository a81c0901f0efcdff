"""The inline SQLite checkpointer: a run whose process is killed (SIGKILL, no cleanup) after its
first action resumes in another process from the last checkpoint without redoing the action."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentforge.memory.engine import Memory
from agentforge.runtime.checkpoint import InlineSqliteSaver
from agentforge.sdk import Forge
from agentforge.settings import Settings
from tests.runtime.test_graph import shop_agent

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from agentforge.llm import ScriptedLLM
    from agentforge.memory.engine import Memory
    from agentforge.sdk import Forge
    from agentforge.settings import Settings
    from agentforge.tools import tool

    home, ledger = Path(sys.argv[1]), Path(sys.argv[2])

    @tool
    def lookup_price(item: str) -> str:
        \"\"\"Look up the price of an item in the shop.

        Args:
            item: the item's name
        \"\"\"
        with ledger.open("a") as fh:
            fh.write(item + "\\n")
        return f"The price of {item} is 3 EUR."

    def reply(messages, tools):
        head = messages[0].content or ""
        if "You are the executor" in head:
            if any(m.role == "tool" for m in messages):
                os.kill(os.getpid(), 9)  # killed after the first action: no cleanup at all
            return ScriptedLLM.tool_call("lookup_price", item="apple")
        return json.dumps({"subgoals": ["look up the price"]})

    Forge(model=ScriptedLLM(reply), memory=Memory.in_memory(), tools=[lookup_price],
          settings=Settings(home=home)).run("What does an apple cost?", run_id="run-killed")
    """
)


def test_a_killed_process_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    ledger = tmp_path / "calls.txt"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AGENTFORGE_HOME": str(tmp_path)},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert ledger.read_text().split() == ["apple"]

    from agentforge.tools import tool

    @tool
    def lookup_price(item: str) -> str:
        """Look up the price of an item in the shop.

        Args:
            item: the item's name
        """
        with ledger.open("a") as fh:
            fh.write(item + "\n")
        return f"The price of {item} is 3 EUR."

    memory = Memory.in_memory()
    try:
        settings = Settings(home=tmp_path)
        agent = Forge(model=shop_agent(), memory=memory, tools=[lookup_price], settings=settings)
        resumed = agent.resume("run-killed")
    finally:
        memory.close()
    assert ledger.read_text().split() == ["apple"]  # the checkpointed action was not redone
    assert resumed.outcome == "success" and resumed.answer == "The price of apple is 3 EUR."
    assert [s["type"] for s in resumed.steps][:3] == ["task", "plan", "action"]


def test_the_saver_commits_in_wal_with_normal_sync(tmp_path: Path) -> None:
    with InlineSqliteSaver.open(tmp_path / "runs.db") as saver:
        mode = saver.conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = saver.conn.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 1)  # 1 = NORMAL: durable across a process crash
    with pytest.raises(sqlite3.ProgrammingError):  # closed on exit
        saver.conn.execute("SELECT 1")

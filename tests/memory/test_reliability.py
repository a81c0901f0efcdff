"""Reliability on the real embedded stores (SQLite file in WAL mode + chroma PersistentClient):
concurrent writer processes lose nothing, and a process killed mid-retain leaves a store that
opens, passes the consistency check and lost at most its unfinished batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentforge.memory.engine import Memory
from agentforge.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _writer(home: Path, tag: str, batches: int, size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.memory._writer", str(home), tag, str(batches), str(size)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _open(home: Path) -> Memory:
    memory = Memory.from_settings(Settings(home=home, embedder="hash"))
    memory.open()
    return memory


def test_four_processes_retaining_at_once_lose_nothing(tmp_path: Path) -> None:
    procs = [_writer(tmp_path, f"p{i}", 5, 40) for i in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert out.split()[-1] == "5"
    memory = _open(tmp_path)
    try:
        stats = memory.stats()["namespaces"]["default"]
        assert stats["levels"] == {"experience": 800} and stats["vectors"] == 800
        assert memory.check()["ok"]
        for i in range(4):
            hits = memory.recall(f"writer p{i} batch 4 item 39 remembers fact 199", k=1).hits
            assert hits[0].content == f"writer p{i} batch 4 item 39 remembers fact 199"
    finally:
        memory.close()


def test_killed_mid_retain_loses_at_most_the_unfinished_batch(tmp_path: Path) -> None:
    size = 50
    proc = _writer(tmp_path, "k", 1000, size)
    assert proc.stdout is not None
    done = 0
    deadline = time.monotonic() + 120
    while done < 4 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("done"):
            done = int(line.split()[1])
    time.sleep(0.05)  # land the kill somewhere inside the next batch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    rest = proc.stdout.read()
    done = max([done, *(int(x.split()[1]) for x in rest.splitlines() if x.startswith("done"))])
    assert done >= 4
    memory = _open(tmp_path)  # opening reconciles anything the kill interrupted
    try:
        report = memory.check()
        assert report["ok"], report
        stored = report["namespaces"]["default"]["records"]
        assert done * size <= stored <= (done + 1) * size
        assert stored % size == 0  # a batch is one transaction: all of it or none
        hits = memory.recall("writer k batch 0 item 0 remembers fact 0", k=1).hits
        assert hits and hits[0].content == "writer k batch 0 item 0 remembers fact 0"
    finally:
        memory.close()


def test_real_defaults_round_trip(tmp_path: Path) -> None:
    """Settings defaults: SQLite + chroma + the packaged ONNX embedder, nothing downloaded."""
    memory = Memory.from_settings(Settings(home=tmp_path))
    try:
        ids = memory.retain(
            [
                "The checkout button is disabled until the terms box is ticked.",
                "Our office cat is called Miso.",
                "Invoices are emailed on the first of each month.",
            ]
        ).ids
        hits = memory.recall("why can't I click checkout?", k=3).hits
        assert hits[0].id == ids[0] and hits[0].ranks.dense == 1
        op = memory.forget([ids[1]])
        assert ids[1] not in [h.id for h in memory.recall("what is the cat's name").hits]
        memory.undo(op)
        assert memory.recall("what is the cat's name", k=1).hits[0].id == ids[1]
        assert memory.check()["ok"]
    finally:
        memory.close()
    reopened = Memory.from_settings(Settings(home=tmp_path))
    try:
        assert reopened.recall("when are invoices sent", k=1).hits[0].id == ids[2]
    finally:
        reopened.close()

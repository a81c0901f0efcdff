"""The LoCoMo retrieval eval: loader, scoring math, runner and CLI on a hand-made conversation
(hash embedder, in-memory stores), plus the two engine mechanisms the eval relies on (the
neighbour channel and embedding context); and one integration run of the real ONNX embedder on
conversation 26."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentforge.errors import InputError
from agentforge.evals.locomo import (
    load_conversation,
    load_locomo,
    recall_at_k,
    run_locomo,
)
from agentforge.memory.embedders import HashEmbedder
from agentforge.memory.engine import Memory
from agentforge.memory.fusion import FusionWeights
from agentforge.memory.retain import EMBED_CONTEXT
from agentforge.types import MemoryInput, Provenance

LOCOMO_DATA = Path(os.environ.get("AGENTFORGE_LOCOMO_DATA", "/work/shared/data/locomo"))


def tiny_conversation() -> dict[str, Any]:
    return {
        "sample_id": "conv-t1",
        "speaker_a": "Alice",
        "speaker_b": "Bob",
        "session_1_date_time": "1:00 pm on 1 May, 2023",
        "session_1": [
            {"speaker": "Alice", "dia_id": "D1:1", "text": "I adopted a puppy named Biscuit."},
            {"speaker": "Bob", "dia_id": "D1:2", "text": "Lovely! I started learning the cello."},
        ],
        "session_2_date_time": "9:30 am on 20 June, 2023",
        "session_2": [
            {
                "speaker": "Alice",
                "dia_id": "D2:1",
                "text": "We flew to Reykjavik last week.",
                "blip_caption": "a photo of a harbour at dusk",
            },
            {"speaker": "Bob", "dia_id": "D2:2", "text": "I finished my marathon training."},
        ],
        "session_3_date_time": "10:00 am on 1 July, 2023",  # a date without turns is fine
        "qa": [
            {"question": "What is Alice's puppy Biscuit?", "evidence": ["D1:1"], "category": 4},
            {
                "question": "Did Alice go to Reykjavik and Bob learn the cello?",
                "evidence": ["D2:1; D1:2"],  # the data's typo, repaired by the loader
                "category": 1,
            },
            {"question": "What did Bob adopt?", "evidence": ["D1:1"], "category": 5},
            {"question": "Is Bob an ally?", "evidence": [], "category": 3},
        ],
    }


def write(directory: Path, name: str, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# --- scoring math -----------------------------------------------------------------------------


def test_recall_at_k_counts_the_share_of_evidence_in_the_top_k() -> None:
    ranked = ["D1:1", "D1:2", "D1:3", "D1:4"]
    assert recall_at_k(ranked, ["D1:2"], 1) == 0.0
    assert recall_at_k(ranked, ["D1:2"], 2) == 1.0
    assert recall_at_k(ranked, ["D1:1", "D9:9"], 10) == 0.5
    assert recall_at_k(ranked, ["D1:1", "D1:4", "D1:4"], 3) == 0.5  # evidence is a set
    with pytest.raises(ValueError):
        recall_at_k(ranked, [], 5)


# --- loader -----------------------------------------------------------------------------------


def test_loader_builds_turns_questions_and_repairs_evidence(tmp_path: Path) -> None:
    conv = load_conversation(write(tmp_path, "t1.json", tiny_conversation()))
    assert conv.sample_id == "t1"
    assert [t.dia_id for t in conv.turns] == ["D1:1", "D1:2", "D2:1", "D2:2"]
    first = "[1:00 pm on 1 May, 2023] Alice: I adopted a puppy named Biscuit."
    assert conv.turns[0].content() == first
    assert conv.turns[2].content().endswith("last week. [shares: a photo of a harbour at dusk]")
    assert conv.turns[2].occurred_at.isoformat() == "2023-06-20T09:30:00"
    # category 5 and evidence-less questions are left out; "D2:1; D1:2" is two ids
    assert [(q.category, q.evidence) for q in conv.questions] == [
        (4, ("D1:1",)),
        (1, ("D2:1", "D1:2")),
    ]


def test_loader_drops_unknown_evidence_ids_and_fixes_d_colon_typos(tmp_path: Path) -> None:
    data = tiny_conversation()
    data["qa"] = [
        {"question": "q1", "evidence": ["D:1:2", "D7:7", "D"], "category": 2},
        {"question": "q2", "evidence": ["D7:7"], "category": 2},  # nothing left: skipped
    ]
    conv = load_conversation(write(tmp_path, "t1.json", data))
    assert [q.evidence for q in conv.questions] == [("D1:2",)]


def _without(key: str) -> dict[str, Any]:
    data = tiny_conversation()
    del data[key]
    return data


def _bad_turn() -> dict[str, Any]:
    data = tiny_conversation()
    data["session_1"][0] = {"speaker": "Alice", "dia_id": "D1:1"}
    return data


def _bad_date() -> dict[str, Any]:
    data = tiny_conversation()
    data["session_2_date_time"] = "sometime in June"
    return data


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "cannot read JSON"),
        ([1, 2, 3], "top level is not an object"),
        (_without("qa"), "no 'qa' list"),
        ({"qa": []}, "no session_N lists of turns"),
        ({**tiny_conversation(), "session_1": "hello"}, "session_1 is not a list"),
        (_bad_turn(), "lacks speaker, dia_id or text"),
        (_bad_date(), "session_2_date_time is not a date"),
        (_without("session_1_date_time"), "session_1_date_time is not a date"),
    ],
)
def test_loader_rejects_malformed_files_saying_which_and_why(
    tmp_path: Path, content: object, reason: str
) -> None:
    write(tmp_path, "good.json", tiny_conversation())
    bad = write(tmp_path, "bad.json", content)
    with pytest.raises(InputError, match=reason) as info:
        load_locomo(tmp_path)
    assert str(bad) in str(info.value)


def test_loader_rejects_a_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_locomo(tmp_path / "nope")
    with pytest.raises(InputError, match=r"no LoCoMo conversation files"):
        load_locomo(tmp_path)
    write(tmp_path, "t1.json", tiny_conversation())
    with pytest.raises(InputError, match=r"no LoCoMo conversation files"):
        load_locomo(tmp_path, only=["26"])


# --- runner -----------------------------------------------------------------------------------


def test_run_scores_a_tiny_conversation_with_known_answers(tmp_path: Path) -> None:
    conversations = load_locomo(write(tmp_path, "t1.json", tiny_conversation()).parent)
    memory = Memory.in_memory(HashEmbedder())
    try:
        result = asyncio.run(run_locomo(memory, conversations))
    finally:
        memory.close()
    assert (result.conversations, result.memories, result.questions) == (1, 4, 2)
    assert [s.name for s in result.systems] == ["agentforge", "bm25", "dense"]
    bm25 = result.system("bm25")
    # q1: the only turn with "puppy"/"biscuit" comes first; q2: both evidence turns match two
    # rare words each, so they are the top two (R@1 = 1/2 whichever is first)
    by_question = {d.question: d.ranked["bm25"] for d in result.questions_detail}
    assert by_question["What is Alice's puppy Biscuit?"][0] == "D1:1"
    assert set(by_question["Did Alice go to Reykjavik and Bob learn the cello?"][:2]) == {
        "D1:2",
        "D2:1",
    }
    assert bm25.overall.n == 2
    assert bm25.overall.recall == {1: 0.75, 5: 1.0, 10: 1.0, 20: 1.0}
    assert {c: (s.n, s.recall[1]) for c, s in bm25.by_category.items()} == {
        1: (1, 0.5),
        4: (1, 1.0),
    }
    # four turns, k up to 20: every system finds everything by k=5
    assert all(s.overall.recall[5] == 1.0 for s in result.systems)
    assert result.retain_seconds >= 0 and result.recall_seconds >= 0
    assert json.dumps(result.as_dict())  # JSON-ready


def test_cli_prints_json_and_turns_bad_data_into_one_error_line(tmp_path: Path) -> None:
    from agentforge.cli.app import app

    data = tmp_path / "data"
    write(data, "t1.json", tiny_conversation())
    runner = CliRunner()
    args = ["eval", "locomo", "--data", str(data), "--embedder", "hash"]
    out = runner.invoke(app, [*args, "--home", str(tmp_path / "home"), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert [s["name"] for s in report["systems"]] == ["agentforge", "bm25", "dense"]
    assert report["questions"] == 2
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "agentforge" in table.stdout and "R@10" in table.stdout

    write(data, "t2.json", "{oops")
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2
    assert "malformed LoCoMo file" in bad.output and "Traceback" not in bad.output


# --- the engine mechanisms the eval relies on -------------------------------------------------


def test_neighbour_channel_brings_the_turn_after_a_hit() -> None:
    turns = [
        "Where did you spend the holidays this winter?",
        "With my grandparents near the lake.",
        "The train was late again this morning.",
        "My sister bought a new bicycle.",
    ]
    items = [
        MemoryInput(content=t, doc_id=f"t{i}", provenance=Provenance(source="chat-1", step=i))
        for i, t in enumerate(turns)
    ]
    items.append(  # a different conversation: not anyone's neighbour
        MemoryInput(content="Skiing.", doc_id="x1", provenance=Provenance(source="chat-2", step=1))
    )
    memory = Memory.in_memory(HashEmbedder())
    try:
        memory.retain(items)
        query = "where did you spend the holidays"
        with_nb = {h.content: h.score for h in memory.recall(query, k=5, log=False).hits}
        no_nb = memory.recall(query, k=5, log=False, weights=FusionWeights(neighbour=0)).hits
        without = {h.content: h.score for h in no_nb}
        # the answer shares no word with the query: it ranks 3rd alone, 2nd next to the hit
        assert list(without).index(turns[1]) == 2
        assert list(with_nb).index(turns[1]) == 1
        assert with_nb["Skiing."] == without["Skiing."]  # step 1 of another conversation
    finally:
        memory.close()


def test_embed_context_is_embedded_but_not_stored_as_content() -> None:
    memory = Memory.in_memory(HashEmbedder())
    try:
        memory.retain(
            [
                MemoryInput(
                    content="Yes, twice a week.", metadata={EMBED_CONTEXT: "Do you swim often?"}
                ),
                MemoryInput(content="No, never on Sundays."),
            ]
        )
        hits = memory.recall("swim often", k=1, log=False, weights=FusionWeights().only("dense"))
        assert hits.hits[0].content == "Yes, twice a week."
        assert hits.hits[0].metadata[EMBED_CONTEXT] == "Do you swim often?"
    finally:
        memory.close()


# --- integration ------------------------------------------------------------------------------


@pytest.mark.integration
def test_real_embedder_on_conversation_26_beats_bm25() -> None:
    if not (LOCOMO_DATA / "26.json").is_file():
        pytest.skip(f"LoCoMo data not found at {LOCOMO_DATA} (set AGENTFORGE_LOCOMO_DATA)")
    from agentforge.memory.embedders import OnnxEmbedder

    start = time.perf_counter()
    conversations = load_locomo(LOCOMO_DATA, only=["26"])
    memory = Memory.in_memory(OnnxEmbedder.from_package())
    try:
        result = asyncio.run(run_locomo(memory, conversations))
    finally:
        memory.close()
    fused = result.system("agentforge").overall.recall[10]
    bm25 = result.system("bm25").overall.recall[10]
    assert result.questions == 150
    assert fused > bm25 - 0.02, (fused, bm25)
    assert fused > 0.5, fused
    assert time.perf_counter() - start < 60


def test_neighbour_channel_links_the_chunks_of_a_document() -> None:
    first = " ".join(["The lighthouse keeper logged every passing ship in a leather book."] * 18)
    second = " ".join(["Storm damage closed the harbour road for a month."] * 18)
    memory = Memory.in_memory(HashEmbedder())
    try:
        result = memory.retain(MemoryInput(content=f"{first}\n\n{second}", doc_id="log"))
        assert result.chunks >= 2
        memory.retain("Unrelated: the bakery sells rye bread on Fridays.")
        query = "lighthouse keeper ship book"
        with_nb = memory.recall(query, k=3, log=False).hits
        no_nb = memory.recall(query, k=3, log=False, weights=FusionWeights(neighbour=0)).hits
        assert with_nb[0].content.startswith("The lighthouse keeper")
        later = [h for h in with_nb if h.doc_id == "log" and h.id != with_nb[0].id]
        assert later and later[0].score > next(h.score for h in no_nb if h.id == later[0].id)
    finally:
        memory.close()

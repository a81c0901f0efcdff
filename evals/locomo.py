"""LoCoMo retrieval eval: how well recall finds the turns that hold a question's answer.

Protocol (see the data directory's README): every turn of a conversation is retained as one
memory, "[date] speaker: text" (plus "[shares: caption]" for a shared image), dated by its
session, one namespace per conversation. Each question of categories 1–4 is recalled and scored
recall@k = |evidence ∩ top-k turns| / |evidence|, averaged over questions. No LLM is called.

Several systems run through the same engine and the same memories, differing only in their
fusion weights: "agentforge" (the defaults), "bm25" (keyword channel alone), "dense" (dense
channel alone).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentforge.errors import InputError

if TYPE_CHECKING:
    from agentforge.memory.engine import Memory
    from agentforge.memory.fusion import FusionWeights
    from agentforge.types import MemoryInput

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
KS = (1, 5, 10, 20)
NAMESPACE_ROOT = "locomo"

_SESSION = re.compile(r"^session_(\d+)$")
_DIA_ID = re.compile(r"^D:?(\d+):(\d+)$")
_DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y")


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    dia_id: str
    session: int
    position: int  # index of the turn within the whole conversation
    speaker: str
    text: str
    date: str  # the session's date as the data gives it
    occurred_at: datetime
    caption: str | None = None

    def content(self) -> str:
        shared = f" [shares: {self.caption}]" if self.caption else ""
        return f"[{self.date}] {self.speaker}: {self.text}{shared}"


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]

    @property
    def namespace(self) -> str:
        return f"{NAMESPACE_ROOT}/conv-{self.sample_id}"


def _fail(path: Path, why: str) -> InputError:
    return InputError(f"malformed LoCoMo file {path}: {why}", path=str(path))


def _parse_date(path: Path, key: str, value: object) -> datetime:
    if isinstance(value, str):
        for fmt in _DATE_FORMATS:
            try:
                return datetime.strptime(value.strip(), fmt)
            except ValueError:
                continue
    raise _fail(path, f"{key} is not a date like '1:56 pm on 8 May, 2023': {value!r}")


def _turns(path: Path, data: Mapping[str, Any]) -> list[Turn]:
    sessions = sorted(int(m.group(1)) for key in data if (m := _SESSION.match(key)))
    turns: list[Turn] = []
    for n in sessions:
        items = data[f"session_{n}"]
        if not isinstance(items, list):
            raise _fail(path, f"session_{n} is not a list of turns")
        date_key = f"session_{n}_date_time"
        date = data.get(date_key)
        occurred_at = _parse_date(path, date_key, date)
        for item in items:
            if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) and item.get(k) for k in ("speaker", "dia_id", "text")
            ):
                raise _fail(path, f"a turn of session_{n} lacks speaker, dia_id or text")
            caption = item.get("blip_caption")
            turns.append(
                Turn(
                    dia_id=item["dia_id"],
                    session=n,
                    position=len(turns),
                    speaker=item["speaker"],
                    text=item["text"],
                    date=str(date).strip(),
                    occurred_at=occurred_at,
                    caption=caption if isinstance(caption, str) and caption.strip() else None,
                )
            )
    if not turns:
        raise _fail(path, "no session_N lists of turns")
    return turns


def _evidence(raw: object, known: set[str]) -> tuple[str, ...]:
    """Evidence ids, repairing the data's few typos ("D8:6; D9:17", "D:11:26") and dropping ids
    of turns that do not exist."""
    if not isinstance(raw, list):
        return ()
    ids: dict[str, None] = {}
    for entry in raw:
        for part in re.split(r"[;,\s]+", str(entry)):
            m = _DIA_ID.match(part.strip())
            if m and (dia := f"D{m.group(1)}:{m.group(2)}") in known:
                ids.setdefault(dia, None)
    return tuple(ids)


def load_conversation(path: Path) -> Conversation:
    """One conversation file; raises InputError saying what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"cannot read JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _fail(path, "top level is not an object")
    if not isinstance(data.get("qa"), list):
        raise _fail(path, "no 'qa' list")
    turns = _turns(path, data)
    known = {t.dia_id for t in turns}
    questions = []
    for qa in data["qa"]:
        if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
            raise _fail(path, "a 'qa' entry has no question")
        category = qa.get("category")
        evidence = _evidence(qa.get("evidence"), known)
        if category in CATEGORIES and evidence:
            questions.append(Question(qa["question"], int(category), evidence))
    sample_id = str(data.get("sample_id") or path.stem).removeprefix("conv-")
    return Conversation(sample_id=sample_id, turns=tuple(turns), questions=tuple(questions))


def load_locomo(data_dir: Path, only: Sequence[str] | None = None) -> list[Conversation]:
    """Every `*.json` conversation of `data_dir` (or those whose file stem is in `only`)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"LoCoMo data directory not found: {data_dir}", path=str(data_dir))
    files = sorted(data_dir.glob("*.json"), key=lambda p: (len(p.stem), p.stem))
    if only is not None:
        files = [p for p in files if p.stem in set(only)]
    if not files:
        raise InputError(f"no LoCoMo conversation files (*.json) in {data_dir}", path=str(data_dir))
    return [load_conversation(p) for p in files]


# --- scoring ----------------------------------------------------------------------------------


def recall_at_k(ranked: Sequence[str], evidence: Sequence[str], k: int) -> float:
    """|evidence ∩ first k of ranked| / |evidence|."""
    if not evidence:
        raise ValueError("recall@k needs at least one evidence id")
    top = set(ranked[:k])
    return sum(1 for e in set(evidence) if e in top) / len(set(evidence))


@dataclass
class Scores:
    """Mean recall@k over `n` questions."""

    n: int
    recall: dict[int, float]


@dataclass
class QuestionResult:
    conversation: str
    question: str
    category: int
    evidence: tuple[str, ...]
    ranked: dict[str, list[str]]  # system -> dia_ids, best first


@dataclass
class SystemScores:
    name: str
    overall: Scores
    by_category: dict[int, Scores]


@dataclass
class LocomoResult:
    systems: list[SystemScores]
    conversations: int
    memories: int
    questions: int
    embedder: str
    retain_seconds: float
    recall_seconds: float
    questions_detail: list[QuestionResult] = field(default_factory=list, repr=False)

    @property
    def seconds(self) -> float:
        return self.retain_seconds + self.recall_seconds

    def system(self, name: str) -> SystemScores:
        return next(s for s in self.systems if s.name == name)

    def as_dict(self, *, details: bool = False) -> dict[str, Any]:
        out = asdict(self if details else replace(self, questions_detail=[]))
        out["seconds"] = self.seconds
        out["categories"] = dict(CATEGORIES)
        if not details:
            del out["questions_detail"]
        return out


def score(
    details: Sequence[QuestionResult], systems: Sequence[str], ks: Sequence[int] = KS
) -> list[SystemScores]:
    """Mean recall@k of each system, over all questions and per category."""

    def mean(rows: Sequence[QuestionResult], name: str) -> Scores:
        return Scores(
            n=len(rows),
            recall={
                k: sum(recall_at_k(r.ranked[name], r.evidence, k) for r in rows) / len(rows)
                if rows
                else 0.0
                for k in ks
            },
        )

    out = []
    for name in systems:
        cats = sorted({r.category for r in details})
        out.append(
            SystemScores(
                name=name,
                overall=mean(details, name),
                by_category={c: mean([r for r in details if r.category == c], name) for c in cats},
            )
        )
    return out


# --- running ----------------------------------------------------------------------------------


def default_systems() -> dict[str, FusionWeights]:
    """The compared systems: the engine's default fusion, and each retrieval channel alone."""
    from agentforge.memory.fusion import FusionWeights

    default = FusionWeights()
    return {
        "agentforge": default,
        "bm25": default.only("keyword"),
        "dense": default.only("dense"),
    }


def _memory_input(
    conv: Conversation, turn: Turn, previous: Turn | None, *, context: bool
) -> MemoryInput:
    """One turn as a memory: its own doc_id (so it is never merged with a look-alike turn), its
    place in the session as provenance (source, step: the neighbour channel of recall), and the
    turn it answers as embedding context."""
    from agentforge.memory.retain import EMBED_CONTEXT
    from agentforge.types import MemoryInput, Provenance

    session = f"{conv.namespace}/session-{turn.session}"
    metadata: dict[str, Any] = {"dia_id": turn.dia_id, "session": turn.session}
    if context and previous is not None and previous.session == turn.session:
        metadata[EMBED_CONTEXT] = previous.text
    return MemoryInput(
        content=turn.content(),
        kind="dialogue",
        doc_id=turn.dia_id,
        metadata=metadata,
        provenance=Provenance(source=session, step=turn.position),
        occurred_at=turn.occurred_at,
    )


async def retain_conversation(memory: Memory, conv: Conversation, *, context: bool = True) -> int:
    """Retain every turn as its own memory (with the previous turn of its session as embedding
    context unless `context` is false); returns the number of memories holding the turns
    (retaining again into the same store creates none: the doc_ids make it idempotent)."""
    turns = conv.turns
    items = [
        _memory_input(conv, t, turns[i - 1] if i else None, context=context)
        for i, t in enumerate(turns)
    ]
    result = await memory.aretain(items, namespace=conv.namespace)
    return len(set(result.ids))


async def _ranked(
    memory: Memory, conv: Conversation, q: Question, weights: FusionWeights, k: int
) -> list[str]:
    result = await memory.arecall(q.text, namespace=conv.namespace, k=k, weights=weights, log=False)
    ranked: dict[str, None] = {}
    for hit in result.hits:
        ranked.setdefault(str(hit.metadata.get("dia_id", hit.doc_id)), None)
    return list(ranked)


async def run_locomo(
    memory: Memory,
    conversations: Sequence[Conversation],
    *,
    systems: Mapping[str, FusionWeights] | None = None,
    ks: Sequence[int] = KS,
    context: bool = True,
) -> LocomoResult:
    """Retain the conversations into `memory`, recall every question with every system
    (all recalls concurrently, so the engine coalesces them into batches) and score them."""
    systems = dict(systems or default_systems())
    start = time.perf_counter()
    created = 0
    for conv in conversations:
        created += await retain_conversation(memory, conv, context=context)
    retained = time.perf_counter()
    jobs = [(conv, q) for conv in conversations for q in conv.questions]
    ranked = await asyncio.gather(
        *(
            _ranked(memory, conv, q, weights, max(ks))
            for conv, q in jobs
            for weights in systems.values()
        )
    )
    done = time.perf_counter()
    names = list(systems)
    details = [
        QuestionResult(
            conversation=conv.sample_id,
            question=q.text,
            category=q.category,
            evidence=q.evidence,
            ranked=dict(zip(names, ranked[i * len(names) : (i + 1) * len(names)], strict=True)),
        )
        for i, (conv, q) in enumerate(jobs)
    ]
    return LocomoResult(
        systems=score(details, names, ks),
        conversations=len(conversations),
        memories=created,
        questions=len(jobs),
        embedder=memory.c.embedder.model_id,
        retain_seconds=retained - start,
        recall_seconds=done - retained,
        questions_detail=details,
    )

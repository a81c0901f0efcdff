"""`run_suite`: a suite's tasks as a stream of episodes over several passes, under a memory mode.

Memory modes (ARCHITECTURE): `off` runs without memory; `frozen` recalls from a memory (a copy of
an earlier run's, `memory_from`) but learns nothing; `evolving` recalls and learns from every
episode. `split="transfer"` evolves on the train split and evaluates frozen on the test split after
each pass, so the test curve shows what transfers to unseen instances.

An output directory holds `run.json` (configuration, versions, seeds), `episodes.jsonl` (one
trace per finished episode, appended as it ends) and `home/` (the run's memory and checkpoints).
Running again into the same directory resumes: finished episodes are kept, the rest run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentforge.errors import AgentForgeError, ConfigError, InputError
from agentforge.evals.judge import llm_judge
from agentforge.evals.learning import Learner
from agentforge.evals.suite import Suite, Task, load_suite, make_environment
from agentforge.evals.versions import versions

if TYPE_CHECKING:
    from agentforge.evals.envs.base import EvalEnvironment, Evaluation
    from agentforge.llm import LLM
    from agentforge.sdk import Forge
    from agentforge.tools.builtin.browser_session import BrowserSession

MemoryMode = Literal["off", "frozen", "evolving"]
MODES: tuple[str, ...] = ("off", "frozen", "evolving")
SPLIT_CHOICES: tuple[str, ...] = ("all", "train", "test", "transfer")
EPISODES = "episodes.jsonl"
RUN_FILE = "run.json"
# what must match for a directory to be resumed (workers and limits may change)
_IDENTITY = ("suite", "model", "memory", "passes", "seed", "split", "only", "memory_from",
             "learn", "learn_every")


@dataclass(frozen=True)
class RunConfig:
    suite: str
    model: str | None = None
    memory: str = "evolving"
    passes: int = 1
    workers: int = 1
    seed: int = 0
    split: str = "all"
    only: tuple[str, ...] = ()  # task ids or template ids
    max_steps: int = 12
    task_timeout_s: float = 300.0
    memory_from: str | None = None  # an earlier run's directory whose memory to start from
    # what an evolving run learns beyond the runtime's experiences (the ablation's switches):
    # any of conflicts, insights, skills, weights; with the cadence and budget of learning
    learn: tuple[str, ...] = ("experiences",)
    learn_every: int = 1
    learn_tokens: int = 3000
    flashback: int = 2

    def check(self) -> None:
        if self.memory not in MODES:
            raise ConfigError(f"--memory must be one of {', '.join(MODES)}")
        if self.split not in SPLIT_CHOICES:
            raise ConfigError(f"--split must be one of {', '.join(SPLIT_CHOICES)}")
        if self.passes < 1 or self.workers < 1 or self.max_steps < 1:
            raise ConfigError("--passes, --workers and --max-steps must be at least 1")
        if self.memory_from and self.memory == "off":
            raise ConfigError("--memory-from needs --memory frozen or evolving")
        from agentforge.evolve.evolver import LearnPolicy

        LearnPolicy.parse(self.learn)  # unknown step names fail here, before anything runs


@dataclass(frozen=True)
class Phase:
    pass_no: int
    split: str  # the tasks' split ("all" when the run does not separate them)
    learn: bool

    @property
    def name(self) -> str:
        return f"pass {self.pass_no} {self.split}"


@dataclass(frozen=True)
class Episode:
    phase: Phase
    task: Task
    seed: int

    @property
    def key(self) -> str:
        return f"{self.phase.pass_no}:{self.phase.split}:{self.task.task_id}"


@dataclass
class RunSummary:
    out: Path
    done: int = 0
    skipped: int = 0  # finished in an earlier, interrupted run
    successes: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)


def phases(config: RunConfig) -> list[Phase]:
    evolving = config.memory == "evolving"
    out: list[Phase] = []
    for p in range(1, config.passes + 1):
        if config.split == "transfer":
            out += [Phase(p, "train", evolving), Phase(p, "test", False)]
        else:
            out.append(Phase(p, config.split, evolving))
    return out


def episode_seed(seed: int, pass_no: int, task_id: str) -> int:
    """The instance seed: the same for a task and pass across runs of one seed (paired runs),
    different across passes."""
    digest = hashlib.sha256(f"{seed}:{pass_no}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def plan_episodes(suite: Suite, config: RunConfig) -> list[Episode]:
    episodes: list[Episode] = []
    for phase in phases(config):
        tasks = suite.select(phase.split, list(config.only))
        # a stream: each pass visits the tasks in its own seeded order
        tasks.sort(key=lambda t, p=phase: episode_seed(config.seed, p.pass_no, "order" + t.task_id))
        episodes += [Episode(phase, t, episode_seed(config.seed, phase.pass_no, t.task_id))
                     for t in tasks]
    if not episodes:
        raise InputError(f"suite {suite.name}: no tasks match split {config.split!r}"
                         + (f" and {', '.join(config.only)}" if config.only else ""))
    return episodes


# --- the output directory ---------------------------------------------------------------------


def prepare_out(out: Path, config: RunConfig, suite: Suite, model_id: str) -> dict[str, str]:
    """Create or reopen `out`; returns the finished episodes' keys → outcome. Refuses a
    directory that holds a run of another configuration."""
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / RUN_FILE
    wanted = {k: _jsonable(v) for k, v in asdict(config).items()}
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))["config"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ConfigError(f"{run_file} is not a run record; use another --out") from exc
        changed = [k for k in _IDENTITY if previous.get(k) != wanted.get(k)]
        if changed:
            raise ConfigError(f"{out} holds a run with other {', '.join(changed)}; "
                              "use another --out (or the same options to resume it)")
    else:
        record = {"config": wanted, "suite": {"name": suite.name, "path": str(suite.path),
                                              **suite.counts()},
                  "model_id": model_id, "versions": versions(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
        os.replace(tmp, run_file)
    return {r["key"]: r["outcome"] for r in read_episodes(out)}


def read_episodes(out: Path) -> list[dict[str, Any]]:
    """The finished episodes' records (a line cut short by a crash is ignored)."""
    path = out / EPISODES
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _copy_memory(source: Path, home: Path) -> None:
    src = source / "home"
    if not (src / "memory.db").exists() and not any(src.glob("*.db")):
        raise ConfigError(f"--memory-from {source}: no run memory there (expected {src})")
    shutil.copytree(src, home, ignore=shutil.ignore_patterns("runs.db*", "workspace", "*.lock"))


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- running ----------------------------------------------------------------------------------


async def run_suite(config: RunConfig, out: Path, *, llm: LLM | None = None,
                    on_episode: Callable[[dict[str, Any]], None] | None = None,
                    on_start: Callable[[int, int], None] | None = None) -> RunSummary:
    """Run (or resume) `config` into `out`. `llm` overrides `config.model` (tests pass a scripted
    model); `on_start(total, already_done)` and `on_episode(record)` feed progress displays."""
    config.check()
    suite = load_suite(config.suite)
    episodes = plan_episodes(suite, config)
    if config.memory_from and not (out / RUN_FILE).exists() and not (out / "home").exists():
        _copy_memory(Path(config.memory_from), out / "home")  # before the memory opens
    forge = _forge(config, out, suite, llm)
    try:
        done = prepare_out(out, config, suite, forge.models["executor"].model_id)
        summary = RunSummary(out=out, skipped=sum(1 for e in episodes if e.key in done))
        if on_start:
            on_start(len(episodes), summary.skipped)
        writer = _Writer(out / EPISODES)
        # fuzzy_match tasks are judged by the reflector's model, as WebArena judges them
        judge = llm_judge(forge.models["reflector"])
        workers = [_Worker(make_environment(suite, judge), i) for i in range(config.workers)]
        learner = Learner.create(forge, suite, out, config)
        try:
            for w in workers:
                await w.start()
            for phase in phases(config):
                pending = [e for e in episodes if e.phase == phase and e.key not in done]
                await _run_phase(pending, workers, forge, config, suite, writer, summary,
                                 on_episode, learner)
        finally:
            for w in workers:
                await w.close()
        return summary
    finally:
        forge.close()


async def _run_phase(pending: Sequence[Episode], workers: list[_Worker], forge: Forge,
                     config: RunConfig, suite: Suite, writer: _Writer, summary: RunSummary,
                     on_episode: Callable[[dict[str, Any]], None] | None,
                     learner: Learner | None) -> None:
    queue: asyncio.Queue[Episode] = asyncio.Queue()
    for e in pending:
        queue.put_nowait(e)

    async def work(worker: _Worker) -> None:
        while not queue.empty():
            episode = queue.get_nowait()
            record = await worker.run(episode, forge, config, suite)
            if learner is not None and episode.phase.learn:
                record.update(await learner.after_episode(worker, episode, record))
            record["memory_items"] = await _memory_items(forge)
            writer.append(record)
            summary.done += 1
            summary.successes += int(record["success"])
            summary.records.append(record)
            if on_episode:
                on_episode(record)

    await asyncio.gather(*(work(w) for w in workers))


async def _memory_items(forge: Forge) -> int | None:
    """Active records in the run's namespace (how memory grows as episodes accumulate)."""
    if forge.memory is None:
        return None
    stats = await forge.memory.astats(forge.namespace)
    return int(stats["namespaces"].get(forge.namespace, {}).get("status", {}).get("active", 0))


class _Writer:
    """Appends one JSON line per episode and syncs it: a killed run keeps what finished."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


class _EnvJudge:
    """The runtime's `Environment`: the verify node asks it for the reward of the run."""

    def __init__(self, env: EvalEnvironment, task: Task, session: BrowserSession) -> None:
        self.env, self.task, self.session = env, task, session
        self.evaluation: Evaluation | None = None

    async def reward(self, state: dict[str, Any]) -> float | None:
        answer = str((state.get("final") or {}).get("answer", ""))
        url = self.session.page.url
        self.evaluation = await self.env.evaluate(self.task.raw, self.session, answer)
        if self.session.page.url != url:  # program_html navigated: give the page back
            await self.session.goto(url)
        return 1.0 if self.evaluation.success else 0.0

    async def done(self) -> bool:
        ended = getattr(self.env, "ended", None)
        return bool(await ended(self.session)) if ended is not None else False


class _Worker:
    """One environment and one browser, reused across episodes."""

    def __init__(self, env: EvalEnvironment, number: int) -> None:
        self.env, self.number = env, number
        self.session: BrowserSession | None = None

    async def start(self) -> None:
        from agentforge.tools.builtin.browser_session import BrowserSession

        await self.env.start()
        self.session = BrowserSession(timeout_s=5.0)  # local pages
        await self.session.start()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.env.close()

    async def run(self, episode: Episode, forge: Forge, config: RunConfig,
                  suite: Suite) -> dict[str, Any]:
        from agentforge.runtime.events import Event
        from agentforge.sdk import RunResult

        assert self.session is not None
        task, start = episode.task, time.monotonic()
        record: dict[str, Any] = {
            "key": episode.key, "suite": suite.name, "pass": episode.phase.pass_no,
            "phase": episode.phase.split, "split": task.split, "task_id": task.task_id,
            "template": task.template, "seed": episode.seed, "memory": config.memory,
            "learn": episode.phase.learn, "worker": self.number}
        judge = _EnvJudge(self.env, task, self.session)
        result: RunResult | None = None
        hits: list[dict[str, Any]] = []
        error: str | None = None
        try:
            intent = await self.env.reset(task.raw, self.session, episode.seed)
            record["intent"] = intent
            # the task is the intent alone (the executor starts from the open page's
            # observation): instances of a template then differ only in their values
            text = intent
            async with asyncio.timeout(config.task_timeout_s):
                async for item in forge.events(
                        text, template=f"{suite.name}:{task.template}", environment=judge,
                        max_steps=config.max_steps, learn=episode.phase.learn,
                        browser=self.session):
                    if isinstance(item, Event) and item.kind == "memory_recalled":
                        hits.append({"purpose": item.data.get("purpose"),
                                     "ms": item.data.get("latency_ms"),
                                     "ids": [h["id"] for h in item.data.get("hits", [])]})
                    elif isinstance(item, RunResult):
                        result = item
        except TimeoutError:
            error = f"timed out after {config.task_timeout_s:g} s"
        except AgentForgeError as exc:
            error = f"{type(exc).__name__}: {exc}"
        evaluation = judge.evaluation
        if evaluation is None:  # the run ended before verify: judge the page as it was left
            try:
                evaluation = await self.env.evaluate(
                    task.raw, self.session, result.answer if result else "")
            except AgentForgeError as exc:
                error = error or f"evaluation failed: {exc}"
        record.update(_result_fields(result, evaluation, hits, error))
        record["seconds"] = round(time.monotonic() - start, 3)
        return record


def _result_fields(result: Any, evaluation: Evaluation | None, hits: list[dict[str, Any]],
                   error: str | None) -> dict[str, Any]:
    success = bool(evaluation and evaluation.success)
    fields: dict[str, Any] = {
        "success": success, "outcome": "success" if success else "failure",
        "reward": evaluation.reward if evaluation else 0.0,
        "eval": evaluation.details if evaluation else {}, "error": error,
        "memory_hits": hits}
    if result is not None:
        fields.update(run_id=result.run_id, answer=result.answer, actions=result.actions,
                      tokens=result.tokens, cost=result.cost,
                      steps=[_trace_step(s) for s in result.steps])
    else:
        fields.update(run_id=None, answer="", actions=0, tokens=0, cost=0.0, steps=[])
    return fields


def _trace_step(step: dict[str, Any]) -> dict[str, Any]:
    """A step as the trace keeps it: actions with a digest of what they observed."""
    if step.get("type") != "action":
        return {k: v for k, v in step.items() if k not in ("recalled",)}
    observation = str(step.get("observation", ""))
    return {"type": "action", "index": step.get("index"), "tool": step.get("tool"),
            "arguments": step.get("arguments"), "ok": step.get("ok"),
            "error": step.get("error"), "tokens": step.get("tokens", 0),
            "replayed_skill": step.get("replayed_skill"),
            "observation_sha1": hashlib.sha1(observation.encode()).hexdigest()[:12],
            "observation_head": observation[:800]}


def _forge(config: RunConfig, out: Path, suite: Suite, llm: LLM | None) -> Forge:
    from agentforge.runtime.context import Limits
    from agentforge.sdk import Forge
    from agentforge.settings import Settings

    settings = Settings(home=out / "home")
    namespace = "eval/" + "".join(c if c.isalnum() or c in "_.-" else "-" for c in suite.name)
    # one attempt per episode, as WebArena: a replan after the environment's verdict would leak
    # the true reward into the episode
    return Forge(model=llm or config.model, tools=["browser"], settings=settings,
                 namespace=namespace, use_memory=config.memory != "off",
                 limits=Limits(max_steps=config.max_steps, max_replans=0))

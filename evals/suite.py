"""Suites are data: a JSON file `{"name", "description", "environment": {"type": …}, "tasks": […]}`
whose tasks are in the WebArena task format (`task_id`, `intent`, `start_url`, `eval`, and
`intent_template_id` grouping instances of one template) plus our `split` ("train" / "test").

The suites that ship live in `evals/suites/`; `load_suite` takes one of their names or the path
of a user's own file, and `make_environment` builds the environment a suite names.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentforge.errors import ConfigError, InputError, NotFoundError

if TYPE_CHECKING:
    from agentforge.evals.envs.base import EvalEnvironment
    from agentforge.evals.evaluators import Judge

SUITES_DIR = Path(__file__).parent / "suites"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Task:
    raw: dict[str, Any]  # the task as the suite file gives it; environments read this

    @property
    def task_id(self) -> str:
        return str(self.raw["task_id"])

    @property
    def template(self) -> str:
        """The intent template this task instantiates (tasks of one template share lessons)."""
        return str(self.raw.get("intent_template_id", self.raw["task_id"]))

    @property
    def split(self) -> str:
        return str(self.raw.get("split", "test"))


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    environment: dict[str, Any]
    tasks: tuple[Task, ...]
    path: Path

    def select(self, split: str = "all", only: list[str] | None = None) -> list[Task]:
        """Tasks of a split ("all", "train", "test"), optionally only the given ids or
        templates."""
        tasks = [t for t in self.tasks if split == "all" or t.split == split]
        if only:
            wanted = set(only)
            tasks = [t for t in tasks if t.task_id in wanted or t.template in wanted]
        return tasks

    def counts(self) -> dict[str, int]:
        by_split = Counter(t.split for t in self.tasks)
        return {"tasks": len(self.tasks), "templates": len({t.template for t in self.tasks}),
                **{s: by_split.get(s, 0) for s in SPLITS}}


def suite_path(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" or candidate.exists():
        if not candidate.is_file():
            raise NotFoundError(f"suite file not found: {candidate}")
        return candidate
    shipped = SUITES_DIR / f"{name_or_path}.json"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.json"))) or "(none)"
    raise NotFoundError(f"unknown suite {str(name_or_path)!r}: give a suite file (.json) or one "
                        f"of: {known}")


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name, or a suite file; malformed files raise InputError."""
    path = suite_path(name_or_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON suite file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise InputError(f"{path}: a suite is an object with a 'tasks' list")
    env = data.get("environment")
    if not isinstance(env, dict) or not isinstance(env.get("type"), str):
        raise InputError(f"{path}: the suite needs \"environment\": {{\"type\": ...}}")
    tasks = tuple(_task(path, i, raw) for i, raw in enumerate(data["tasks"]))
    if not tasks:
        raise InputError(f"{path}: the suite has no tasks")
    dupes = [k for k, n in Counter(t.task_id for t in tasks).items() if n > 1]
    if dupes:
        raise InputError(f"{path}: duplicate task_id {dupes[0]!r}")
    return Suite(name=str(data.get("name") or path.stem), description=str(
        data.get("description", "")), environment=env, tasks=tasks, path=path)


def _task(path: Path, index: int, raw: Any) -> Task:
    where = f"{path}: task {index}"
    if not isinstance(raw, dict):
        raise InputError(f"{where} is not an object")
    if "task_id" not in raw:
        raise InputError(f"{where} has no task_id")
    if raw.get("split", "test") not in SPLITS:
        raise InputError(f"{where} ({raw['task_id']}): split must be 'train' or 'test'")
    ev = raw.get("eval")
    if not isinstance(ev, dict) or not isinstance(ev.get("eval_types"), list):
        raise InputError(f"{where} ({raw['task_id']}): needs \"eval\": {{\"eval_types\": [...]}}")
    return Task(raw)


def list_suites() -> list[Suite]:
    return [load_suite(p) for p in sorted(SUITES_DIR.glob("*.json"))]


def make_environment(suite: Suite, judge: Judge | None = None) -> EvalEnvironment:
    """The environment the suite names: `miniwob`, `shop`, or `web` (a site the user runs
    themselves: `"placeholders": {"__SITE__": "http://…"}`; it cannot be reset). `judge` serves
    the tasks whose evaluation asks for an LLM judge (`fuzzy_match`)."""
    kind = suite.environment["type"]
    if kind == "miniwob":
        from agentforge.evals.envs.miniwob import MiniWoBEnvironment

        return MiniWoBEnvironment()
    if kind == "shop":
        from agentforge.evals.envs.shop import ShopEnvironment

        return ShopEnvironment(judge=judge)
    if kind == "web":
        from agentforge.evals.envs.web import WebEnvironment

        placeholders = suite.environment.get("placeholders") or {}
        if not isinstance(placeholders, dict):
            raise InputError(f"{suite.path}: environment.placeholders must be an object")
        return WebEnvironment({str(k): str(v) for k, v in placeholders.items()}, judge)
    raise ConfigError(f"{suite.path}: unknown environment type {kind!r} "
                      "(known: miniwob, shop, web)")

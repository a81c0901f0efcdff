"""Skill induction, Agent-Workflow-Memory style: a parameterised workflow from the aligned task
texts and action traces of one task template's successful episodes. No LLM, no I/O.

For each task template with enough successful episodes: align the successes' task texts to find
the spans that vary (parameters `p1`, `p2`, …; a quoted string is one token, so it varies as a
whole) and build a `{p1}` task template; take the action sequence most successes share and
generalise it (argument text taken from the task becomes `{{p1}}`, an element id becomes the
label of the element it pointed at). Then check it offline: the template must bind every
success's task text, and binding the actions with each success's values must give back exactly
what that success did. A template that fails a check is refused with a reason.

Storing, exporting and counting the replays of induced skills is `agentforge.evolve.skills`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentforge.errors import InputError
from agentforge.skills import Skill, SkillAction, bind

# Calls a replay leaves out: observing changes nothing (every browser action returns the new
# observation, and label-based actions find their element themselves), `finish` ends the run.
SKIPPED_TOOLS = frozenset({"browser_observe", "finish"})
MAX_TASK_TOKENS = 256  # longer task texts are not aligned (the alignment is quadratic)
_TOKEN = re.compile(r'"(?P<quoted>[^"]*)"|(?P<word>\w+)|(?P<mark>[^\w\s])')
_SLOT = re.compile(r"\{(\w+)\}")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeTrace:
    """One run as induction reads it: task text, template id, outcome ("success" / "failure"),
    and the actions as the runtime traced them: `{"tool", "args", "ok", "target"}` where
    `target` is `{"role", "name"}` of the element an `id` argument pointed at, or None."""

    task: str
    template_id: str
    outcome: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None


@dataclass
class SkillCandidate:
    """A skill induced for one task template, checked offline against its successes."""

    template_id: str
    template: str
    parameters: dict[str, str]
    actions: list[SkillAction]
    successes: int
    failures: int
    induced_from: list[str] = field(default_factory=list)  # run ids of the successes used

    @property
    def name(self) -> str:
        return skill_name(self.template_id)

    def to_skill(self) -> Skill:
        steps = [f"{i}. {_describe(a)}" for i, a in enumerate(self.actions, start=1)]
        return Skill(
            name=self.name,
            description=f"{self.template_id} tasks: {self.template}",
            parameters=dict(self.parameters),
            tools=list(dict.fromkeys(a.tool for a in self.actions)),
            template=self.template,
            body="\n".join(steps),
            actions=list(self.actions),
        )


@dataclass
class Induction:
    candidates: list[SkillCandidate] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why each refused template was refused


def skill_name(template_id: str) -> str:
    """A skill name (slug) for a template id: "miniwob:click-button" → "miniwob-click-button"."""
    return _NOT_NAME.sub("-", template_id.lower()).strip("-_")[:64]


# --- induction --------------------------------------------------------------------------------


def induce_skills(episodes: Sequence[EpisodeTrace], *, min_successes: int = 2
                  ) -> list[SkillCandidate]:
    """A checked skill for each template with at least `min_successes` successful episodes."""
    return induce(episodes, min_successes=min_successes).candidates


def induce(episodes: Sequence[EpisodeTrace], *, min_successes: int = 2) -> Induction:
    """`induce_skills` with the reason for every template that gave no skill."""
    by_template: dict[str, list[EpisodeTrace]] = {}
    for episode in episodes:
        if episode.template_id:
            by_template.setdefault(episode.template_id, []).append(episode)
    result = Induction()
    for template_id in sorted(by_template):
        found = induce_template(template_id, by_template[template_id], min_successes)
        if isinstance(found, SkillCandidate):
            result.candidates.append(found)
        else:
            result.rejected.append(f"{template_id}: {found}")
    return result


def induce_template(template_id: str, episodes: Sequence[EpisodeTrace], min_successes: int = 2
                    ) -> SkillCandidate | str:
    """The skill the successes of one template share, or why there is none."""
    wins = [e for e in episodes if e.outcome == "success"]
    failures = sum(e.outcome == "failure" for e in episodes)
    if not skill_name(template_id):
        return "the template id gives no usable skill name"
    if len(wins) < max(min_successes, 1):
        return f"{len(wins)} successful run(s), {max(min_successes, 1)} needed"
    runs = [replayable(e.actions) for e in wins]
    shapes = Counter(_shape(r) for r in runs).most_common()
    shape, count = shapes[0]
    if len(shapes) > 1 and shapes[1][1] == count:
        return f"the successes disagree on the action sequence ({len(shapes)} different ones)"
    if count < min_successes:
        return f"only {count} successful runs share an action sequence, {min_successes} needed"
    if not shape:
        return "the successes have no replayable actions"
    chosen = [(e, r) for e, r in zip(wins, runs, strict=True) if _shape(r) == shape]
    tasks = [e.task.strip() for e, _ in chosen]
    template = task_template(tasks)
    if template is None:
        return f"task texts longer than {MAX_TASK_TOKENS} tokens are not aligned"
    values: list[dict[str, str]] = []
    for task in tasks:
        bound = bind_task(template, task)
        if bound is None:
            return f"the template {template!r} does not bind the task {task!r}"
        values.append(bound)
    done = [r for _, r in chosen]
    candidate = SkillCandidate(
        template_id=template_id,
        template=template,
        parameters=_describe_parameters(values),
        actions=generalise(done, values),
        successes=len(wins),
        failures=failures,
        induced_from=[e.run_id for e, _ in chosen if e.run_id],
    )
    problem = replay_problem(candidate.to_skill(), done, values)
    return problem if problem else candidate


def replayable(actions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What a replay repeats of a trace: the calls that worked, less observing and `finish`,
    an element `id` turned into `label: <name>` when the trace names the element."""
    out: list[dict[str, Any]] = []
    for action in actions:
        tool = action.get("tool")
        if not isinstance(tool, str) or tool in SKIPPED_TOOLS or action.get("ok") is False:
            continue
        out.append({"tool": tool, "args": _labelled(action)})
    return out


def _labelled(action: Mapping[str, Any]) -> dict[str, Any]:
    args = dict(action.get("args") or {}) if isinstance(action.get("args"), Mapping) else {}
    target = action.get("target")
    name = target.get("name") if isinstance(target, Mapping) else None
    if "id" in args and isinstance(name, str) and name.strip():
        del args["id"]
        args["label"] = name
    return args


def _shape(run: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((a["tool"], tuple(sorted(a["args"]))) for a in run)


# --- task template ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[_Token]:
    """Words, punctuation marks, and the content of a "quoted string" as one token."""
    tokens: list[_Token] = []
    for m in _TOKEN.finditer(text):
        if m.group("quoted") is None:
            tokens.append(_Token(m.group(), m.start(), m.end()))
            continue
        tokens.append(_Token('"', m.start(), m.start() + 1))
        if m.group("quoted"):
            tokens.append(_Token(m.group("quoted"), m.start("quoted"), m.end("quoted")))
        tokens.append(_Token('"', m.end() - 1, m.end()))
    return tokens


def task_template(tasks: Sequence[str]) -> str | None:
    """A template with `{p1}`, `{p2}`, … where the task texts differ, written like the first
    text; None when a text is too long to align. The tokens every text shares (their longest
    common subsequence) are kept; each gap between them where some text has words is a slot."""
    tokens = [tokenize(t) for t in tasks]
    if any(len(t) > MAX_TASK_TOKENS for t in tokens):
        return None
    skeleton = [t.text for t in tokens[0]]
    for other in tokens[1:]:
        skeleton = [skeleton[i] for i, _ in _lcs(skeleton, [t.text for t in other])]
    aligned = [[toks[j] for _, j in _lcs(skeleton, [t.text for t in toks])] for toks in tokens]
    slots = [
        any(_gap(task, al, k).strip() for task, al in zip(tasks, aligned, strict=True))
        for k in range(len(skeleton) + 1)
    ]
    parts: list[str] = []
    text, first = tasks[0], aligned[0]
    for k, slot in enumerate(slots):
        gap = _gap(text, first, k)
        if slot:
            core = gap.strip()
            lead = gap[: len(gap) - len(gap.lstrip())] if core else ""
            trail = gap[len(gap.rstrip()) :] if core else gap
            parts.append(f"{lead}{{p{sum(slots[:k]) + 1}}}{trail}")
        else:
            parts.append(gap)
        if k < len(first):
            parts.append(first[k].text)
    return "".join(parts)


def _gap(text: str, aligned: Sequence[_Token], k: int) -> str:
    start = aligned[k - 1].end if k > 0 else 0
    end = aligned[k].start if k < len(aligned) else len(text)
    return text[start:end]


def _lcs(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of `a` and `b`."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = (table[i + 1][j + 1] + 1 if a[i] == b[j]
                           else max(table[i + 1][j], table[i][j + 1]))
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def bind_task(template: str, task: str) -> dict[str, str] | None:
    """The template's `{param}` values in a task text, or None; the same matching as the
    runtime's `bind_template` (agentforge/runtime/planning.py), which replays the skill."""
    parts = _SLOT.split(template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
    match = re.fullmatch(pattern, task.strip(), flags=re.IGNORECASE | re.DOTALL)
    return {k: v.strip() for k, v in match.groupdict().items()} if match else None


def _describe_parameters(values: Sequence[Mapping[str, str]]) -> dict[str, str]:
    names = list(values[0]) if values else []
    examples = {n: dict.fromkeys(json.dumps(v[n], ensure_ascii=False) for v in values[:3])
                for n in names}
    return {n: "from the task, e.g. " + ", ".join(examples[n]) for n in names}


# --- actions ----------------------------------------------------------------------------------


def generalise(runs: Sequence[Sequence[Mapping[str, Any]]], values: Sequence[Mapping[str, str]]
               ) -> list[SkillAction]:
    """One action list for runs of one shape: an argument that differs between runs becomes a
    `{{param}}` (whole or inside text) when that reproduces every run, else keeps the first
    run's value (and the replay check refuses the skill)."""
    actions = []
    for j, first in enumerate(runs[0]):
        args = {key: _general(key, [r[j]["args"][key] for r in runs], values)
                for key in first["args"]}
        actions.append(SkillAction(tool=first["tool"], args=args))
    return actions


def _general(key: str, seen: Sequence[Any], values: Sequence[Mapping[str, str]]) -> Any:
    # constant only when exactly equal: labels "Ok" and "ok" match the same elements, but taken
    # from the task they are a parameter (a constant "Ok" would also click a button "Okay")
    if all(v == seen[0] for v in seen) or not all(isinstance(v, str) for v in seen):
        return seen[0]
    for guess in _guesses(seen[0], values[0]):
        if all(_same(key, _fill(guess, vals), v) for v, vals in zip(seen, values, strict=True)):
            return guess
    return seen[0]


def _guesses(text: str, params: Mapping[str, str]) -> Iterator[str]:
    for name, value in params.items():
        if text.casefold() == value.casefold():
            yield "{{" + name + "}}"
    inside = sorted((kv for kv in params.items() if kv[1] and kv[1] in text),
                    key=lambda kv: -len(kv[1]))
    for name, value in inside:
        yield text.replace(value, "{{" + name + "}}")
    if len(inside) > 1:  # several values in one argument: each becomes its placeholder
        for name, value in inside:
            text = text.replace(value, "{{" + name + "}}")
        yield text


def _fill(text: str, params: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)), text)


def _same(key: str, a: Any, b: Any) -> bool:
    """Equal as replayed: labels match elements case-insensitively (see `match_label`)."""
    if key == "label" and isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    return bool(a == b)


def replay_problem(skill: Skill, runs: Sequence[Sequence[Mapping[str, Any]]],
                   values: Sequence[Mapping[str, str]]) -> str | None:
    """The offline replay check: bound with each run's values, the skill's actions must be that
    run's (label-normalised) actions. None when every run is reproduced."""
    for n, (run, params) in enumerate(zip(runs, values, strict=True), start=1):
        try:
            calls = bind(skill, params)
        except InputError as exc:
            return f"binding success {n} failed: {exc}"
        for call, done in zip(calls, run, strict=True):
            same_keys = set(call.arguments) == set(done["args"])
            if call.name != done["tool"] or not same_keys or not all(
                _same(k, call.arguments[k], v) for k, v in done["args"].items()
            ):
                return (f"replaying success {n} gives {call.name} {call.arguments} where the run "
                        f"did {done['tool']} {done['args']}")
    return None


def _describe(action: SkillAction) -> str:
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in action.args.items())
    return f"{action.tool}({args})"

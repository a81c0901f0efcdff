"""Skill induction from episodes (`agentforge.evolve.induction`) and skills in memory
(`agentforge.evolve.skills`): templates and generalised actions from hand-written traces, the
refusals, admit → recall → undo on memory (in-memory and the real
SQLite + chroma + ONNX defaults), merge-before-create, export → SKILL.md → import, replay outcome
counts, and a real MiniWoB click-button skill induced from two solved seeds and replayed on new
seeds in the system Chromium."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agentforge.errors import NotFoundError
from agentforge.evolve.induction import (
    EpisodeTrace,
    SkillCandidate,
    bind_task,
    induce,
    induce_skills,
)
from agentforge.evolve.skills import (
    admit_skill,
    export_skills,
    learn_skills,
    load_episode_traces,
    record_skill_outcome,
    skill_success_rate,
)
from agentforge.memory.engine import Memory
from agentforge.runtime.execution import bind_action
from agentforge.runtime.planning import bind_template
from agentforge.settings import Settings
from agentforge.skills import Skill, SkillAction, discover_skills, load_skill, retain_skills
from agentforge.types import Level, MemoryInput, Provenance, Status
from tests.browser import in_browser

CLICK = "miniwob:click-button"
ENTER = "miniwob:enter-text"


def act(tool: str, args: dict[str, Any] | None = None, name: str | None = None,
        role: str = "button", ok: bool = True) -> dict[str, Any]:
    """One traced action; `name` is the element its `id` pointed at."""
    target = None if name is None else {"role": role, "name": name}
    return {"tool": tool, "args": args or {}, "ok": ok, "target": target}


OBSERVE = act("browser_observe")


def click(label: str, element: int, run_id: str, outcome: str = "success") -> EpisodeTrace:
    return EpisodeTrace(
        task=f'Click on the "{label}" button.', template_id=CLICK, outcome=outcome,
        actions=[OBSERVE, act("browser_click", {"id": element}, label), OBSERVE], run_id=run_id)


def enter(text: str, run_id: str, extra: list[dict[str, Any]] | None = None) -> EpisodeTrace:
    actions = [OBSERVE, *(extra or []),
               act("browser_type", {"id": 3, "text": text}, "", role="textbox"),
               act("browser_click", {"id": 5}, "Submit"), act("finish", {"answer": "done"})]
    return EpisodeTrace(task=f'Enter "{text}" into the text field and press Submit.',
                        template_id=ENTER, outcome="success", actions=actions, run_id=run_id)


def only(candidates: list[SkillCandidate]) -> SkillCandidate:
    assert len(candidates) == 1, candidates
    return candidates[0]


# --- induction on hand-written traces ---------------------------------------------------------


def test_click_button_skill_clicks_the_quoted_label() -> None:
    failed = EpisodeTrace(task='Click on the "No" button.', template_id=CLICK, outcome="failure",
                          actions=[act("browser_scroll", {"direction": "down"})], run_id="r3")
    skill = only(induce_skills([click("Yes", 4, "r1"), click("Cancel", 2, "r2"), failed]))
    assert skill.name == "miniwob-click-button"
    assert skill.template == 'Click on the "{p1}" button.'
    assert list(skill.parameters) == ["p1"]
    assert skill.actions == [SkillAction(tool="browser_click", args={"label": "{{p1}}"})]
    assert (skill.successes, skill.failures, skill.induced_from) == (2, 1, ["r1", "r2"])
    # what the runtime does with it on a new task: bind the template, then each action
    params = bind_template(skill.template, 'Click on the "Submit" button.')
    assert params == {"p1": "Submit"}
    call = bind_action(skill.actions[0].model_dump(), params)
    assert (call.name, call.arguments) == ("browser_click", {"label": "Submit"})


def test_a_label_differing_only_in_case_is_still_a_parameter() -> None:
    """MiniWoB seeds 1 and 2 ask for "Ok" and "ok": a constant label "Ok" would pass the
    case-insensitive replay check and then click "Okay" on a page asking for "no"."""
    skill = only(induce_skills([click("Ok", 2, "r1"), click("ok", 4, "r2")]))
    assert skill.actions == [SkillAction(tool="browser_click", args={"label": "{{p1}}"})]


def test_enter_text_skill_types_the_task_value_and_drops_failed_calls() -> None:
    missed = act("browser_click", {"id": 9}, ok=False)  # an error the run recovered from
    skill = only(induce_skills([enter("hello", "a"), enter("bye now", "b", extra=[missed])]))
    assert skill.template == 'Enter "{p1}" into the text field and press Submit.'
    assert skill.actions == [
        SkillAction(tool="browser_type", args={"id": 3, "text": "{{p1}}"}),  # unnamed: id kept
        SkillAction(tool="browser_click", args={"label": "Submit"}),  # named: label, constant
    ]
    assert skill.to_skill().tools == ["browser_type", "browser_click"]


def test_values_inside_arguments_and_two_parameters() -> None:
    def run(page: str, site: str) -> EpisodeTrace:
        url = f"https://{site}.example.org/wiki/{page}"
        return EpisodeTrace(task=f'Open the "{page}" page of the "{site}" site.', template_id="w",
                            outcome="success", actions=[act("browser_goto", {"url": url})])

    skill = only(induce_skills([run("Cats", "en"), run("Hunde", "de"), run("Chats", "fr")]))
    assert skill.template == 'Open the "{p1}" page of the "{p2}" site.'
    assert skill.actions[0].args == {"url": "https://{{p2}}.example.org/wiki/{{p1}}"}


def test_the_most_common_sequence_wins_over_a_lone_outlier() -> None:
    odd = EpisodeTrace(task='Click on the "Maybe" button.', template_id=CLICK, outcome="success",
                       actions=[act("browser_press", {"key": "Tab"}),
                                act("browser_click", {"id": 7}, "Maybe")], run_id="odd")
    skill = only(induce_skills([click("Yes", 4, "r1"), odd, click("Cancel", 2, "r2")]))
    assert skill.induced_from == ["r1", "r2"] and skill.successes == 3


@pytest.mark.parametrize(
    ("episodes", "reason"),
    [
        ([click("Yes", 4, "r1"),
          EpisodeTrace(task='Click on the "No" button.', template_id=CLICK, outcome="success",
                       actions=[act("browser_press", {"key": "Enter"})])],
         "disagree on the action sequence"),
        ([click("Yes", 4, "r1", "failure"), click("No", 4, "r2", "failure")],
         "0 successful run(s), 2 needed"),
        ([click("Yes", 4, "r1")], "1 successful run(s), 2 needed"),
        # ids whose element is unknown differ between runs: no replay reproduces both
        ([EpisodeTrace(task=f'Click on the "{w}" button.', template_id=CLICK, outcome="success",
                       actions=[act("browser_click", {"id": i})]) for w, i in [("A", 4), ("B", 2)]],
         "replaying success 2 gives browser_click {'id': 4}"),
        # the element clicked is not named in the task: nothing to bind it to
        ([click("Yes", 4, "r1"),
          EpisodeTrace(task='Click on the "No" button.', template_id=CLICK, outcome="success",
                       actions=[act("browser_click", {"id": 4}, "Cancel")])],
         "replaying success 2"),
        # one task has nothing where the other has a word: the template cannot bind it
        ([EpisodeTrace(task=t, template_id="t", outcome="success",
                       actions=[act("browser_click", {"label": "Go"})])
          for t in ["Click the button.", "Click the red button."]],
         "does not bind the task 'Click the button.'"),
    ],
    ids=["disagree", "failures-only", "one-success", "bare-ids", "unbound-label", "unbindable"],
)
def test_refusals_give_no_skill_and_say_why(episodes: list[EpisodeTrace], reason: str) -> None:
    result = induce(episodes)
    assert result.candidates == []
    assert len(result.rejected) == 1 and reason in result.rejected[0], result.rejected


def test_binding_matches_the_runtime() -> None:
    cases = [('Click on the "{p1}" button.', 'click on the "Ok" button.'),
             ('Open the "{p1}" page of the "{p2}" site.', 'Open the "a" page of the "b c" site.'),
             ("Select {p1} from the list", "Select New York from the list"),
             ("Select {p1} from the list", "Select from the list")]
    for template, task in cases:
        assert bind_task(template, task) == bind_template(template, task)


# --- memory -----------------------------------------------------------------------------------


@pytest.fixture(params=["in-memory", pytest.param("real", marks=pytest.mark.integration)])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    """The fast test memory, and the real defaults (SQLite + chroma + the packaged ONNX model)."""
    if request.param == "in-memory":
        m = Memory.in_memory()
    else:
        m = Memory.from_settings(Settings(home=tmp_path / "home"))
    yield m
    m.close()


def episode(trace: EpisodeTrace) -> MemoryInput:
    """An episode record as the runtime's `retain` writes it."""
    meta = {"run_id": trace.run_id, "outcome": trace.outcome, "template": trace.template_id,
            "trace": trace.actions, "actions": len(trace.actions)}
    return MemoryInput(content=f"Task: {trace.task}\nOutcome: {trace.outcome} (judged)\n1. ...",
                       level=Level.EPISODE, kind="episode", title=trace.task[:120], metadata=meta,
                       tags=[trace.template_id], provenance=Provenance(source=trace.run_id))


async def skill_hits(memory: Memory, query: str) -> list[Any]:
    return (await memory.arecall(query, levels=[Level.SKILL], namespace="ns")).hits


async def test_learn_recall_undo(memory: Memory) -> None:
    traces = [click("Yes", 4, "r1"), click("Cancel", 2, "r2"), enter("hi", "e1")]
    await memory.aretain([episode(t) for t in traces], namespace="ns")
    loaded = await load_episode_traces(memory, "ns")
    assert [(t.task, t.run_id, t.actions) for t in loaded] == [
        (t.task, t.run_id, t.actions) for t in traces]

    report = await learn_skills(memory, "ns")
    assert report.op_id and len(report.created) == 1 and report.changed == []
    assert report.rejected == [f"{ENTER}: 1 successful run(s), 2 needed"]
    hits = await skill_hits(memory, 'Click on the "Maybe" button.')
    assert hits and hits[0].level == Level.SKILL and hits[0].id == report.created[0]
    meta = hits[0].metadata
    assert meta["template"] == 'Click on the "{p1}" button.'
    assert meta["actions"] == [{"tool": "browser_click", "args": {"label": "{{p1}}"}}]
    assert (meta["verified_by"], meta["successes"], meta["failures"]) == ("offline-replay", 2, 0)
    assert meta["induced_from"] == ["r1", "r2"]
    assert memory.operations(namespace="ns")[0].kind == "learn-skills"

    await memory.aundo(report.op_id)
    assert await skill_hits(memory, 'Click on the "Maybe" button.') == []


async def test_merge_before_create_and_supersede_with_history() -> None:
    memory = Memory.in_memory()
    first = only(induce_skills([click("Yes", 4, "r1"), click("Cancel", 2, "r2")]))
    created = await admit_skill(memory, "ns", first, verified_by="test")
    again = await admit_skill(memory, "ns", first, verified_by="test")
    assert again.op_id is None and again.notes["unchanged"] == ["miniwob-click-button"]

    changed = SkillCandidate(**{**vars(first), "actions": [
        SkillAction(tool="browser_click", args={"label": "{{p1}}|OK"})]})
    update = await admit_skill(memory, "ns", changed, verified_by="test")
    assert update.op_id and update.changed == created.created
    old = memory.c.store.get(created.created[0])
    assert old.status == Status.SUPERSEDED.value and old.valid_to is not None
    hits = await skill_hits(memory, 'Click on the "Maybe" button.')
    assert [h.id for h in hits] == update.created
    assert hits[0].metadata["actions"][0]["args"] == {"label": "{{p1}}|OK"}

    await memory.aundo(update.op_id)  # the previous version comes back
    hits = await skill_hits(memory, 'Click on the "Maybe" button.')
    assert [h.id for h in hits] == created.created
    memory.close()


async def test_a_hand_written_skill_is_not_replaced() -> None:
    memory = Memory.in_memory()
    mine = Skill(name="miniwob-click-button", description="mine", template="Click {x}",
                 parameters={"x": ""}, actions=[SkillAction(tool="browser_click",
                                                            args={"label": "{{x}}"})])
    await retain_skills(memory, [mine], namespace="ns")
    report = await admit_skill(memory, "ns", only(induce_skills(
        [click("Yes", 4, "r1"), click("No", 2, "r2")])), verified_by="test")
    assert report.op_id is None and "hand-written" in report.rejected[0]
    memory.close()


async def test_export_then_import_round_trip(tmp_path: Path) -> None:
    memory = Memory.in_memory()
    candidate = only(induce_skills([enter("hello", "a"), enter("bye now", "b")]))
    await admit_skill(memory, "ns", candidate, verified_by="test")
    paths = await export_skills(memory, "ns", tmp_path / "skills")
    assert paths == [tmp_path / "skills" / "miniwob-enter-text" / "SKILL.md"]
    loaded = load_skill(paths[0])
    assert loaded.actions == candidate.actions and loaded.template == candidate.template
    assert loaded.parameters == candidate.parameters and loaded.steps[0].startswith("browser_type")

    other = Memory.in_memory()
    await retain_skills(other, discover_skills(tmp_path / "skills"), namespace="ns")
    hits = await skill_hits(other, 'Enter "x" into the text field and press Submit.')
    assert hits and hits[0].metadata["actions"] == [a.model_dump() for a in candidate.actions]
    memory.close()
    other.close()


async def test_replay_outcomes_are_counted_with_history() -> None:
    memory = Memory.in_memory()
    await admit_skill(memory, "ns", only(induce_skills(
        [click("Yes", 4, "r1"), click("No", 2, "r2")])), verified_by="test")
    name = "miniwob-click-button"
    assert await skill_success_rate(memory, "ns", name) is None
    await record_skill_outcome(memory, "ns", name, True)
    await record_skill_outcome(memory, "ns", name, True)
    op_id = await record_skill_outcome(memory, "ns", name, False)
    assert await skill_success_rate(memory, "ns", name) == pytest.approx(2 / 3)
    entry = memory.history(op_id=op_id)[0]
    assert entry.before and entry.before["meta"]["replays"] == {"successes": 2, "failures": 0}
    await memory.aundo(op_id)
    assert await skill_success_rate(memory, "ns", name) == 1.0
    with pytest.raises(NotFoundError):
        await record_skill_outcome(memory, "ns", "no-such-skill", True)
    memory.close()


# --- a real MiniWoB task in Chromium ----------------------------------------------------------

needs_miniwob = pytest.mark.skipif(importlib.util.find_spec("miniwob") is None,
                                   reason="miniwob is not installed (uv sync --extra evals)")
TASK = {"task_id": "miniwob.click-button", "env": "click-button", "split": "train"}
_ITEM = re.compile(r'^\[(\d+)\] (\w+) "((?:[^"\\]|\\.)*)"')


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env() -> AsyncIterator[Any]:
    from agentforge.evals.envs.miniwob import MiniWoBEnvironment

    environment = MiniWoBEnvironment()
    await environment.start()
    yield environment
    await environment.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session() -> AsyncIterator[Any]:
    from agentforge.tools.builtin.browser_session import BrowserSession

    async with BrowserSession(timeout_s=10) as browser:
        yield browser


def elements(observation: str) -> dict[int, tuple[str, str]]:
    """id → (role, name) of the interactive elements of an observation."""
    found = (_ITEM.match(line.strip()) for line in observation.splitlines())
    return {int(m.group(1)): (m.group(2), m.group(3).replace('\\"', '"')) for m in found if m}


async def solve(env: Any, session: Any, seed: int) -> EpisodeTrace:
    """Play one click-button episode the way the agent does, and trace it like the runtime."""
    utterance = await env.reset(TASK, session, seed)
    wanted = re.search(r'"([^"]+)"', utterance)
    assert wanted, utterance
    observation = await session.observe()
    button = next(i for i, (role, name) in elements(observation).items()
                  if role == "button" and name == wanted.group(1))
    await session.click(button)
    result = await env.evaluate(TASK, session, "")
    actions = [act("browser_observe"), act("browser_click", {"id": button}, wanted.group(1))]
    return EpisodeTrace(task=utterance, template_id=CLICK, run_id=f"seed-{seed}",
                        outcome="success" if result.success else "failure", actions=actions)


@needs_miniwob
@pytest.mark.integration
@in_browser
async def test_induced_skill_replays_on_new_miniwob_seeds(env: Any, session: Any,
                                                          tmp_path: Path) -> None:
    from agentforge.tools.base import ToolContext
    from agentforge.tools.builtin.browser import BROWSER_TOOLS
    from agentforge.tools.invoke import invoke_tool
    from agentforge.tools.registry import ToolRegistry

    traces = [await solve(env, session, seed) for seed in (1, 2)]
    assert [t.outcome for t in traces] == ["success", "success"]
    memory = Memory.in_memory()
    await memory.aretain([episode(t) for t in traces], namespace="ns")
    report = await learn_skills(memory, "ns", verified_by="offline-replay")
    assert report.op_id and report.rejected == [], report.rejected

    registry = ToolRegistry(BROWSER_TOOLS)
    ctx = ToolContext(workspace=tmp_path, browser_session=session, learn=False)
    trained = {t.task.split('"')[1] for t in traces}
    labels = []
    for seed in (3, 4, 5):
        utterance = await env.reset(TASK, session, seed)
        hit = (await skill_hits(memory, utterance))[0]  # what the runtime's recall offers
        params = bind_template(hit.metadata["template"], utterance)
        assert params, (hit.metadata["template"], utterance)
        labels.append(params["p1"])
        for action in hit.metadata["actions"]:
            result = await invoke_tool(registry, ctx, bind_action(action, params))
            assert result.ok, result.error
        outcome = await env.evaluate(TASK, session, "")
        assert outcome.success, (utterance, outcome.details)
        await record_skill_outcome(memory, "ns", hit.metadata["name"], outcome.success)
    assert set(labels) - trained, "the new seeds should ask for buttons the runs never clicked"
    assert await skill_success_rate(memory, "ns", "miniwob-click-button") == 1.0
    memory.close()

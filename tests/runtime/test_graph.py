"""The run graph with the scripted LLM on fast in-memory components: plan → execute (tool loop) →
verify → reflect → retain, events, replan, budgets, checkpoints and resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from agentforge.errors import InputError, LLMError, NotFoundError
from agentforge.llm import Message, ScriptedLLM, ToolSpec
from agentforge.memory.engine import Memory
from agentforge.runtime.context import Limits
from agentforge.runtime.events import Event
from agentforge.sdk import Forge, RunResult
from agentforge.settings import Settings
from agentforge.tools import ToolContext, tool

PRICES = {"apple": "3 EUR", "pear": "4 EUR"}


@tool
def lookup_price(ctx: ToolContext, item: str) -> str:
    """Look up the price of an item in the shop.

    Args:
        item: the item's name, e.g. "apple"
    """
    if item not in PRICES:
        raise ValueError(f"no item named {item!r}")
    return f"The price of {item} is {PRICES[item]}."


def role(messages: Sequence[Message]) -> str:
    text = messages[0].content or ""
    for name in ("planner", "executor", "judge", "distil"):
        if f"You are the {name}" in text or f"You {name}" in text:
            return name
    raise AssertionError(f"unknown prompt: {text[:80]}")


def shop_reply(judge_success: bool = True, item: str = "apple"):
    def reply(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str | Message:
        r = role(messages)
        if r == "planner":
            return json.dumps({"subgoals": ["look up the price", "answer with it"]})
        if r == "executor":
            results = [m for m in messages if m.role == "tool"]
            if not results:
                return ScriptedLLM.tool_call("lookup_price", item=item)
            return ScriptedLLM.tool_call("finish", answer=results[-1].content or "")
        if r == "judge":
            return json.dumps({"success": judge_success, "reason": "checked"})
        return json.dumps(
            {
                "items": [
                    {
                        "title": "Look prices up with lookup_price",
                        "description": "Prices come from the shop tool, not from guessing.",
                        "content": "Call lookup_price with the item name, then answer.",
                    }
                ]
            }
        )

    return reply


def shop_agent(judge_success: bool = True, item: str = "apple") -> ScriptedLLM:
    return ScriptedLLM(shop_reply(judge_success, item))


@pytest.fixture
def memory() -> Memory:
    m = Memory.in_memory()
    yield m
    m.close()


def forge(tmp_path: Path, memory: Memory, llm: ScriptedLLM, **kwargs) -> Forge:
    return Forge(
        model=llm, memory=memory, tools=[lookup_price], settings=Settings(home=tmp_path), **kwargs
    )


def test_a_run_plans_acts_judges_and_retains(tmp_path: Path, memory: Memory) -> None:
    llm = shop_agent()
    result = forge(tmp_path, memory, llm).run("What does an apple cost?")
    assert result.answer == "The price of apple is 3 EUR."
    assert result.outcome == "success" and result.actions == 1 and result.tokens > 0
    kinds = [s["type"] for s in result.steps]
    assert kinds == ["task", "plan", "action", "final", "reflection"]
    stats = memory.stats()["namespaces"]["default"]["levels"]
    assert stats["episode"] == 1 and stats["experience"] == 1
    lesson = memory.recall("price lookup", levels=["experience"]).hits[0]
    assert lesson.kind == "lesson_success" and lesson.provenance.source == result.run_id


def test_second_run_sees_the_first_runs_lesson_and_credit_moves_utility(
    tmp_path: Path, memory: Memory
) -> None:
    llm = shop_agent()
    agent = forge(tmp_path, memory, llm)
    agent.run("What does an apple cost?")
    lesson = memory.recall("lookup_price", levels=["experience"]).hits[0]
    assert lesson.utility == 0.5
    second = agent.run("What does a pear cost?")
    planner_prompts = [c.messages[0].content for c in llm.calls if role(c.messages) == "planner"]
    assert "Look prices up with lookup_price" in planner_prompts[-1]
    assert "Look prices up with lookup_price" not in planner_prompts[0]
    credited = memory.c.store.get(lesson.id)
    assert second.outcome == "success" and credited.successes >= 1 and credited.utility > 0.5


def test_failure_replans_once_then_lessons_from_failure(tmp_path: Path, memory: Memory) -> None:
    llm = shop_agent(judge_success=False)
    result = forge(tmp_path, memory, llm).run("What does an apple cost?")
    assert result.outcome == "failure"
    kinds = [s["type"] for s in result.steps]
    assert kinds.count("plan") == 2 and kinds[-1] == "reflection"
    lesson = memory.recall("lookup_price", levels=["experience"]).hits[0]
    assert lesson.kind == "lesson_failure"


def test_tool_errors_reach_the_model_and_tool_memory(tmp_path: Path, memory: Memory) -> None:
    llm = shop_agent(item="banana")
    result = forge(tmp_path, memory, llm, limits=None).run("What does a banana cost?")
    action = next(s for s in result.steps if s["type"] == "action")
    assert not action["ok"] and "no item named 'banana'" in action["observation"]
    record = memory.c.store.tools("default")[0]
    assert record.name == "lookup_price" and record.failures == 1


def looping(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str | Message:
    """An executor that makes the same call forever; no valid verdict or lessons."""
    r = role(messages)
    if r == "executor":
        return ScriptedLLM.tool_call("lookup_price", item="apple")
    return json.dumps({"subgoals": ["x"]}) if r == "planner" else "not json"


def test_step_budget_is_enforced(tmp_path: Path, memory: Memory) -> None:
    llm = ScriptedLLM(looping)
    result = forge(tmp_path, memory, llm).run("Loop forever", max_steps=3)
    # the model was asked once more, forced to finish, and still gave no answer
    assert result.actions == 3 and result.steps[-2]["reason"] == "step budget"
    assert [t.name for t in llm.calls[-2].tools] == ["finish"]
    # unanswered: a failure without asking the judge (a weak judge passes runs that never ended)
    verdict = result.steps[-1]
    assert result.outcome == "failure" and verdict["judged_by"] == "runtime"
    assert all("You judge" not in (c.messages[0].content or "") for c in llm.calls)
    assert memory.stats()["namespaces"]["default"]["levels"] == {"episode": 1}


def test_the_step_budget_asks_for_an_answer(tmp_path: Path, memory: Memory) -> None:
    def answers_when_forced(
        messages: Sequence[Message], tools: Sequence[ToolSpec]
    ) -> str | Message:
        if role(messages) == "executor" and [t.name for t in tools] == ["finish"]:
            return ScriptedLLM.tool_call("finish", answer="an apple costs 3 EUR")
        if role(messages) == "judge":
            return json.dumps({"success": True, "reason": "the price was given"})
        return looping(messages, tools)

    result = forge(tmp_path, memory, ScriptedLLM(answers_when_forced)).run(
        "What does an apple cost?", max_steps=2
    )
    assert result.actions == 2 and result.answer == "an apple costs 3 EUR"
    assert result.steps[-2]["reason"] == "answered at the step budget"
    assert result.outcome == "success" and result.steps[-1]["judged_by"] == "judge"


def test_a_passed_answer_no_tool_result_states_is_not_learned_from(
    tmp_path: Path, memory: Memory
) -> None:
    """The judge passes "4 EUR" after the shop said 3: memory keeps the episode as `unknown`,
    credits nothing and asks for no lessons; the same run answering 3 EUR is a success."""

    def answers(price: str):
        def reply(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str | Message:
            if role(messages) == "executor" and any(m.role == "tool" for m in messages):
                return ScriptedLLM.tool_call("finish", answer=f"an apple costs {price}")
            return shop_reply()(messages, tools)

        return ScriptedLLM(reply)

    agent = forge(tmp_path, memory, answers("3 EUR"))
    assert agent.run("What does an apple cost?").outcome == "success"
    lesson = memory.recall("lookup_price", levels=["experience"]).hits[0]
    llm = answers("4 EUR")
    result = forge(tmp_path, memory, llm).run("What does a fruit cost?")
    verdict = result.steps[-1]
    assert result.answer == "an apple costs 4 EUR" and result.outcome == "unknown"
    assert verdict["judged_by"] == "runtime" and "states 4" in verdict["reason"]
    assert "judge: checked" in verdict["reason"] and verdict["experiences"] == []
    assert [role(c.messages) for c in llm.calls][-1] == "judge"  # no distil call
    episodes = memory.recall("What does a fruit cost?", levels=["episode"]).hits
    assert episodes[0].metadata["outcome"] == "unknown"
    assert memory.stats()["namespaces"]["default"]["levels"]["experience"] == 1
    planner = [c.messages[0].content for c in llm.calls if role(c.messages) == "planner"]
    assert "Look prices up with lookup_price" in planner[0]  # recalled, yet not credited:
    record = memory.c.store.get(lesson.id)
    assert (record.successes, record.failures, record.utility) == (0, 0, 0.5)


def test_a_model_error_ends_the_run_unjudged_and_keeps_only_a_trajectory(
    tmp_path: Path, memory: Memory
) -> None:
    """The provider fails after the run looked the price up: no judge runs, the outcome is
    `unknown` (nothing credited), and the episode is kept for the action it took; one that
    fails before any action leaves no episode."""

    def fails_after(actions: int):
        def reply(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str | Message:
            r = role(messages)
            if r == "executor" and sum(m.role == "tool" for m in messages) >= actions:
                raise LLMError("the provider is down")
            assert r in ("planner", "executor"), f"{r} asked after the model failed"
            return shop_reply()(messages, tools)

        return ScriptedLLM(reply)

    result = forge(tmp_path, memory, fails_after(1)).run("What does an apple cost?")
    assert result.stop_reason == "error" and "the provider is down" in result.answer
    assert result.outcome == "unknown" and result.steps[-1]["judged_by"] == "runtime"
    assert result.actions == 1
    assert memory.stats()["namespaces"]["default"]["levels"] == {"episode": 1}
    result = forge(tmp_path, memory, fails_after(0)).run("What does a pear cost?")
    assert result.stop_reason == "error" and result.actions == 0
    assert memory.stats()["namespaces"]["default"]["levels"] == {"episode": 1}


def test_an_identical_call_is_not_run_again(tmp_path: Path, memory: Memory) -> None:
    result = forge(tmp_path, memory, ScriptedLLM(looping)).run("Loop forever", max_steps=3)
    actions = [s for s in result.steps if s["type"] == "action"]
    assert actions[0]["ok"] and "3 EUR" in actions[0]["observation"]
    assert [a["ok"] for a in actions[1:]] == [False, False]  # told, not run again
    assert all("was the previous step" in a["observation"] for a in actions[1:])
    assert memory.c.store.tools("default")[0].successes == 1  # the tool ran once


def test_events_stream_and_runs_index(tmp_path: Path, memory: Memory) -> None:
    import asyncio

    agent = forge(tmp_path, memory, shop_agent())

    async def collect() -> list[Event | RunResult]:
        return [item async for item in agent.events("What does an apple cost?")]

    items = asyncio.run(collect())
    kinds = [i.kind for i in items if isinstance(i, Event)]
    for kind in (
        "memory_recalled",
        "plan",
        "step_started",
        "tool_called",
        "tokens",
        "final",
        "judged",
        "reflected",
        "retained",
    ):
        assert kind in kinds
    result = items[-1]
    assert isinstance(result, RunResult)
    info = agent.get_run(result.run_id)
    assert info.status == "finished" and info.outcome == "success"
    assert agent.list_runs()[0].id == result.run_id
    with pytest.raises(NotFoundError):
        agent.get_run("nope")


def test_crash_mid_run_resumes_from_the_last_checkpoint(tmp_path: Path, memory: Memory) -> None:
    calls = {"lookups": 0}

    @tool
    def counted_lookup(item: str) -> str:
        """Look up the price of an item.

        Args:
            item: the item
        """
        calls["lookups"] += 1
        return f"{item} costs 3 EUR"

    def crashing(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str | Message:
        r = role(messages)
        if r == "executor":
            if any(m.role == "tool" for m in messages):
                raise RuntimeError("power cut")  # the process dies after the first action
            return ScriptedLLM.tool_call("counted_lookup", item="apple")
        return json.dumps({"subgoals": ["look up"]})

    first = Forge(
        model=ScriptedLLM(crashing),
        memory=memory,
        tools=[counted_lookup],
        settings=Settings(home=tmp_path),
    )
    with pytest.raises(RuntimeError, match="power cut"):
        first.run("What does an apple cost?", run_id="run-crash")
    assert calls["lookups"] == 1
    resumed = Forge(
        model=shop_agent(), memory=memory, tools=[counted_lookup], settings=Settings(home=tmp_path)
    ).resume("run-crash")
    assert calls["lookups"] == 1  # the finished step was not redone
    assert resumed.answer == "apple costs 3 EUR" and resumed.outcome == "success"
    assert [s["type"] for s in resumed.steps] == ["task", "plan", "action", "final", "reflection"]
    with pytest.raises(NotFoundError):
        first.resume("no-such-run")


def test_step_recall_embeds_the_task_and_keyword_searches_the_page(
    tmp_path: Path, memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str | None]] = []
    original = memory.arecall

    async def arecall(query: str, **kwargs: object) -> object:
        seen.append((query, kwargs.get("keyword_query")))  # type: ignore[arg-type]
        return await original(query, **kwargs)

    monkeypatch.setattr(memory, "arecall", arecall)
    forge(tmp_path, memory, shop_agent()).run("What does an apple cost?")
    steps = [s for s in seen if s[1] is not None]
    assert steps and all(q == "What does an apple cost?" for q, _ in seen)
    assert "The price of apple is 3 EUR" in (steps[0][1] or "")


def test_each_model_step_gets_one_recall_started_as_the_last_action_ended(
    tmp_path: Path, memory: Memory
) -> None:
    llm = ScriptedLLM(looping)
    agent = forge(tmp_path, memory, llm)
    events = []

    async def run() -> None:
        async for item in agent.events("Loop forever", max_steps=3):
            events.append(item)

    asyncio.run(run())
    step_recalls = [e for e in events if isinstance(e, Event) and e.kind == "memory_recalled"
                    and e.data.get("purpose") == "step"]
    executor_calls = [c for c in llm.calls if role(c.messages) == "executor"
                      and [t.name for t in c.tools] != ["finish"]]
    assert len(step_recalls) == len(executor_calls) == 3
    # nothing recalled for a step that never came: the run's log holds exactly what was used
    run_id = events[-1].run_id
    logged = [r for r in memory.c.store.recall_log(limit=100) if r.run_id == run_id]
    plan_recalls = len(logged) - len(step_recalls)
    assert plan_recalls == 1  # the plan's (its skill lookup is not logged)


def test_limits_that_allow_no_run_are_an_input_error(tmp_path: Path, memory: Memory) -> None:
    """`max_steps=0` ran a run that could take no step and judged it a failure."""
    with pytest.raises(InputError, match="run limits must be positive: max_steps=0"):
        forge(tmp_path, memory, shop_agent()).run("What does an apple cost?", max_steps=0)
    with pytest.raises(InputError, match="max_replans=-1, tool_timeout_s=0"):
        Limits(max_replans=-1, tool_timeout_s=0)
    assert Limits(max_replans=0).max_replans == 0

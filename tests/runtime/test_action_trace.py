"""Episodes keep their actions with the element each id named, for skill induction."""

from __future__ import annotations

from agentforge.runtime.reflection import action_trace

PAGE = 'URL: http://x\nTitle: t\n[3] button "Yes"\n[4] button "No \\"really\\""\n[5] textbox ""'


def action(index: int, tool: str, ok: bool = True, observation: str = "ok",
           **arguments: object) -> dict[str, object]:
    return {"type": "action", "index": index, "tool": tool, "arguments": arguments, "ok": ok,
            "observation": observation}


def test_ids_are_resolved_against_the_observation_before_the_action() -> None:
    steps = [{"type": "task", "task": "t"}, {"type": "plan", "subgoals": ["a"]},
             action(1, "browser_observe", observation=PAGE),
             action(2, "browser_click", id=4, observation="clicked"),
             action(3, "browser_type", id=5, text="hi")]
    trace = action_trace(steps)
    assert [t["tool"] for t in trace] == ["browser_observe", "browser_click", "browser_type"]
    assert trace[1]["target"] == {"role": "button", "name": 'No "really"'}
    assert trace[1]["args"] == {"id": 4}
    assert trace[2]["target"] is None  # id 5 was not on the page the click returned


def test_a_failed_action_keeps_the_last_good_observation_and_a_replan_starts_over() -> None:
    steps = [{"type": "plan", "subgoals": ["a"]}, action(1, "browser_observe", observation=PAGE),
             action(2, "browser_click", ok=False, observation="error", id=9),
             action(3, "browser_click", id=3),
             {"type": "plan", "subgoals": ["b"], "replan": 1},
             action(4, "browser_click", id=3)]
    trace = action_trace(steps)
    assert len(trace) == 1 and trace[0]["target"] is None  # after the replan: nothing seen yet
    assert action_trace(steps[:4])[2]["target"] == {"role": "button", "name": "Yes"}


def test_distilled_items_that_copy_the_prompt_or_restate_the_task_are_not_lessons() -> None:
    from agentforge.runtime.reflection import is_lesson
    from agentforge.runtime.steps import Experience

    task = 'Enter "Enola" into the text field and press Submit.'
    copied = Experience(title=task, description="one-line summary",
                        content="the lesson in 1-3 sentences")
    restated = Experience(title="Enter text", description="Typing a name",
                          content='Enter "Enola" into the text field')
    real = Experience(title="Type before submitting", description="Fill the field first",
                      content="Type the quoted text into the textbox, then click Submit.")
    assert not is_lesson(copied, task) and not is_lesson(restated, task)
    assert is_lesson(real, task)

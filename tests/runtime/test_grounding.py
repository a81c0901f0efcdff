"""The check of a judge's verdict against the run's tool results: numbers an answer gives must
be stated by a tool result or the task, else a judge's `success` does not reach memory."""

from __future__ import annotations

from decimal import Decimal

from agentforge.runtime.grounding import numbers, observed, unsupported
from agentforge.runtime.steps import ActionStep, dump


def action(observation: str, *, ok: bool = True, index: int = 1) -> dict:
    return dump(
        ActionStep(
            index=index,
            tool="python_run",
            arguments={"code": "x"},
            ok=ok,
            observation=observation,
            error=None if ok else observation,
        )
    )


def test_numbers_are_compared_as_values_not_as_text() -> None:
    assert numbers("2,870 and 2870.0 and 2870") == {Decimal(2870)}
    assert numbers("a list 1, 2, 3 and 1,2,3") == {Decimal(1), Decimal(2), Decimal(3)}
    assert numbers("-3 degrees, 3.50 EUR, 0.0") == {Decimal(-3), Decimal("3.5"), Decimal(0)}
    assert numbers("on 2026-12-01 with v2 and x86_64") == {Decimal(2026), Decimal(12), Decimal(1)}
    assert numbers("no numbers here.") == set()


def test_only_tool_calls_that_ran_count_as_evidence() -> None:
    steps = [
        {"type": "task", "task": "t"},
        action("stdout: 2870"),
        action("Not run: 4000 was the previous step", ok=False, index=2),
    ]
    assert observed(steps) == ["stdout: 2870"]
    assert unsupported("4000", "sum the squares", steps) == ["4000"]


def test_an_answer_is_supported_by_a_tool_result_or_the_task() -> None:
    steps = [action("exit code: 0 stdout: 2870")]
    task = "Compute the sum of the squares of the integers from 1 to 20."
    assert unsupported("2870", task, steps) == []
    assert unsupported("The sum of squares from 1 to 20 is 2,870.", task, steps) == []
    assert unsupported("The sum from 1 to 20 is 4000, not 2870", task, steps) == ["4000"]
    assert unsupported("4000 or 4,000 or 3999", task, steps) == ["4000", "4,000", "3999"]
    assert unsupported("the answer is in the output", task, steps) == []


def test_a_run_without_tool_results_leaves_the_verdict_alone() -> None:
    failed = [action("ERROR: no such file", ok=False)]
    assert unsupported("4000", "How many?", []) == []
    assert unsupported("4000", "How many?", failed) == []


def test_memory_does_not_vouch_for_an_answer() -> None:
    recalled = dump(
        ActionStep(
            index=2,
            tool="memory_recall",
            arguments={"query": "sum"},
            ok=True,
            observation="- [episode/episode] ... finishing with 4000",
        )
    )
    assert unsupported("4000", "sum the squares", [action("stdout: 2870"), recalled]) == ["4000"]
    assert unsupported("4000", "sum the squares", [recalled]) == []  # nothing else to compare

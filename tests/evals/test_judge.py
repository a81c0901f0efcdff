"""The fuzzy_match judge asks its model WebArena's grading prompt and reads the verdict as
WebArena does; the model is scripted (no real model is called in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agentforge.evals.evaluators import string_match
from agentforge.evals.judge import llm_judge
from agentforge.llm import Message, ScriptedLLM, ToolSpec

TASK: dict[str, Any] = {
    "intent": "What colour is the Aurora desk lamp?",
    "eval": {"eval_types": ["string_match"],
             "reference_answers": {"fuzzy_match": ["warm white"]}},
}


def grader(verdict: str) -> ScriptedLLM:
    def reply(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str:
        return verdict
    return ScriptedLLM(reply)


@pytest.mark.parametrize(("verdict", "score"), [
    ("The answer is correct.", 1.0),
    ("incorrect", 0.0),
    ("partially correct", 0.0),
])
async def test_fuzzy_match_scores_the_judges_verdict(verdict: str, score: float) -> None:
    llm = grader(verdict)
    result, checks = await string_match(TASK, "It glows in a warm white", llm_judge(llm))
    assert result == score and checks[0]["approach"] == "fuzzy_match"
    prompt = llm.calls[0].messages[-1].content or ""
    assert "reference answer: warm white" in prompt
    assert "student answer: it glows in a warm white" in prompt  # cleaned, as WebArena
    assert TASK["intent"] in prompt


async def test_unachievable_reason_is_compared_by_the_judge() -> None:
    task = {"intent": "Cancel order #9", "eval": {
        "eval_types": ["string_match"], "reference_answers": {"fuzzy_match": "N/A"},
        "string_note": "order 9 does not exist"}}
    assert (await string_match(task, "There is no order 9", llm_judge(grader("same"))))[0] == 1.0
    assert (await string_match(task, "I lacked permission",
                               llm_judge(grader("different"))))[0] == 0.0

"""The LLM judge of WebArena's `fuzzy_match` (and of "N/A" answers, `ua_match`), with WebArena's
prompts: used only for the tasks whose `eval` asks for it, never in tests (which script it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentforge.evals.evaluators import Judge

if TYPE_CHECKING:
    from agentforge.llm import LLM

FUZZY = (
    "Help a teacher to grade the answer of a student given a question. Keep in mind that the "
    "student may use different phrasing or wording to answer the question. The goal is to "
    "evaluate whether the answer is semantically equivalent to the reference answer.\n"
    "question: {intent}\nreference answer: {reference}\n"
    "all the string 'N/A' that you see is a special sequence that means 'not achievable'\n"
    "student answer: {prediction}\n"
    "Conclude the judgement by correct/incorrect/partially correct.")
UNACHIEVABLE = (
    "task: {intent}\nactual unachievable reason: {reference}\n"
    "reported unachievable reason: {prediction}\n"
    "The task described above is inherently unachievable due to the reason specified under "
    "'actual unachievable reason'. An individual previously attempted this task and was unable "
    "to complete it. They provided a reason for their failure, which is listed under 'reported "
    "unachievable reason'. Your role is to review both the actual and reported reasons. "
    "Determine if the reported reason aligns with the actual reason, even if implicitly. If the "
    "stated reason is in line with the actual reason, respond with 'same'. Otherwise, respond "
    "with 'different'.")


def llm_judge(llm: LLM) -> Judge:
    """A `Judge` for `evaluate_task` asking `llm` as WebArena does (temperature 0)."""
    from agentforge.llm import Message, ModelSettings

    async def judge(kind: str, *, intent: str, reference: str, prediction: str) -> float:
        template = UNACHIEVABLE if kind == "ua_match" else FUZZY
        prompt = template.format(intent=intent, reference=reference, prediction=prediction)
        response = await llm.complete(
            [Message.system("You are a helpful assistant"), Message.user(prompt)],
            settings=ModelSettings(temperature=0.0, max_tokens=768))
        verdict = (response.text or "").lower()
        if kind == "ua_match":
            return 1.0 if "same" in verdict and "different" not in verdict else 0.0
        if "partially correct" in verdict or "incorrect" in verdict:
            return 0.0
        return 1.0 if "correct" in verdict else 0.0

    return judge

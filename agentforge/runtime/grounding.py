"""Is a judged answer grounded in what the run observed? A judge model that passes an answer
makes memory learn from the run (a `success` episode, credit for what was recalled, lessons), so
its verdict is checked against the steps: a number the answer gives must appear in a tool result
or in the task. A weak judge passed `4000` for a sum whose tool result said `2870`; the next
plan recalled that episode and copied it, and so did its answer: memory taught the wrong answer
it had been told was right. The memory tools' results do not count as evidence: that second run
also found `4000` with `memory_recall`, and memory would have vouched for itself.

Only numbers are checked: they are where a model's guess and a tool's result differ most plainly,
and they can be compared without another model. The check is one-sided: it can only withdraw a
judge's `success` (the outcome becomes `unknown`: nothing is credited, no lesson distilled), never
grant one. Its cost: a run that answers from memory alone, or does arithmetic on tool results
in its head, earns no credit."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from agentforge.runtime.steps import ActionStep, step_from_dict
from agentforge.tools.builtin.memory_tools import MEMORY_TOOLS

# a numeral: 2870, -3, 3.50, or with thousands separators 2,870 (a list "1, 2" is two numbers)
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|(?<!\w)-?\d+(?:\.\d+)?")


def _value(numeral: str) -> Decimal:
    value = Decimal(numeral.replace(",", ""))
    return value.normalize() if value else Decimal(0)  # 2870.0 is 2870, -0 is 0


def numbers(text: str) -> set[Decimal]:
    """The numbers a text states, normalised: `2,870`, `2870.0` and `2870` are one number."""
    return {_value(m.group()) for m in _NUMBER.finditer(text)}


# memory cannot vouch for an answer: what it returns may be an earlier run's wrong answer
NOT_EVIDENCE = frozenset(t.name for t in MEMORY_TOOLS)


def observed(steps: Iterable[dict[str, Any]]) -> list[str]:
    """The results of the run's tool calls that ran (not errors nor calls refused unrun), other
    than the memory tools'."""
    typed = (step_from_dict(s) for s in steps)
    return [
        s.observation
        for s in typed
        if isinstance(s, ActionStep) and s.ok and s.tool not in NOT_EVIDENCE
    ]


def unsupported(answer: str, task: str, steps: Iterable[dict[str, Any]]) -> list[str]:
    """The numbers in `answer` that neither the task nor any tool result of the run states,
    as the answer wrote them. Empty when the answer gives no number, or the run called no tool
    that ran (then there is nothing to compare with and the judge's verdict stands)."""
    results = observed(steps)
    if not results:
        return []
    known = numbers(task).union(*(numbers(r) for r in results))
    missing = [m.group() for m in _NUMBER.finditer(answer) if _value(m.group()) not in known]
    return list(dict.fromkeys(missing))

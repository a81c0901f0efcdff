"""A run is a list of typed steps. Steps render themselves to JSON (checkpoints, traces) and to
text for prompts; the reflector and `retain` read steps, not chat logs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


class TaskStep(BaseModel):
    type: Literal["task"] = "task"
    task: str

    def render(self) -> str:
        return f"TASK: {self.task}"


class PlanStep(BaseModel):
    type: Literal["plan"] = "plan"
    subgoals: list[str]
    recalled: list[str] = Field(default_factory=list)  # memory ids the planner saw
    replan: int = 0

    def render(self) -> str:
        lines = [f"PLAN{' (revised)' if self.replan else ''}:"]
        lines += [f"  {i}. {goal}" for i, goal in enumerate(self.subgoals, start=1)]
        return "\n".join(lines)


class ActionStep(BaseModel):
    type: Literal["action"] = "action"
    index: int
    tool: str
    arguments: dict[str, Any]
    ok: bool
    observation: str  # the tool's result (or error) as the model saw it
    error: str | None = None
    latency_ms: float = 0.0
    tokens: int = 0
    thought: str | None = None
    recalled: list[str] = Field(default_factory=list)
    replayed_skill: str | None = None

    def render(self, max_chars: int = 300) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        status = "ok" if self.ok else f"ERROR {self.error}"
        obs = self.observation.replace("\n", " ")[:max_chars]
        return f"STEP {self.index}: {self.tool}({args}) -> {status}: {obs}"


class FinalStep(BaseModel):
    type: Literal["final"] = "final"
    answer: str
    reason: str = "answered"  # answered | step budget | token budget | error

    def render(self) -> str:
        return f"FINAL ({self.reason}): {self.answer}"


class Experience(BaseModel):
    """One distilled lesson, ReasoningBank-style."""

    title: str = Field(min_length=3, max_length=120)
    description: str = Field(min_length=3, max_length=300)
    content: str = Field(min_length=3, max_length=1200)


class ReflectionStep(BaseModel):
    type: Literal["reflection"] = "reflection"
    outcome: Literal["success", "failure", "unknown"]
    reward: float | None = None
    judged_by: Literal["environment", "judge", "runtime", "none"] = "none"
    reason: str = ""
    experiences: list[Experience] = Field(default_factory=list)
    replan: bool = False

    def render(self) -> str:
        return f"REFLECTION: {self.outcome} ({self.judged_by}) {self.reason}"


Step = Annotated[TaskStep | PlanStep | ActionStep | FinalStep | ReflectionStep,
                 Field(discriminator="type")]
_STEP = TypeAdapter(Step)


def step_from_dict(data: dict[str, Any]) -> Step:
    return _STEP.validate_python(data)


def dump(step: BaseModel) -> dict[str, Any]:
    return step.model_dump(mode="json")


def render_steps(steps: list[dict[str, Any]], *, last: int | None = None) -> str:
    typed = [step_from_dict(s) for s in steps]
    if last is not None:
        typed = typed[-last:]
    return "\n".join(s.render() for s in typed)

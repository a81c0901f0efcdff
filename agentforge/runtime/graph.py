"""The run graph: recall context → plan → execute (loop, one step per node run) → verify →
reflect → (replan | retain → end). `build_graph()` returns the uncompiled builder; the SDK compiles
it with the SQLite checkpointer, tests with an in-memory one."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from agentforge.runtime.context import RunContext
from agentforge.runtime.execution import after_execute, execute
from agentforge.runtime.planning import plan, recall_context
from agentforge.runtime.reflection import after_reflect, reflect, retain, verify
from agentforge.runtime.state import RunState


def build_graph() -> StateGraph[RunState, RunContext]:
    graph: StateGraph[RunState, RunContext] = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("recall_context", recall_context)
    graph.add_node("plan", plan)
    graph.add_node("execute", execute)
    graph.add_node("verify", verify)
    graph.add_node("reflect", reflect)
    graph.add_node("retain", retain)
    graph.add_edge(START, "recall_context")
    graph.add_edge("recall_context", "plan")
    graph.add_edge("plan", "execute")
    graph.add_conditional_edges("execute", after_execute, ["execute", "verify"])
    graph.add_edge("verify", "reflect")
    graph.add_conditional_edges("reflect", after_reflect, ["plan", "retain"])
    graph.add_edge("retain", END)
    return graph

"""The benchmark harness (installed as `agentforge.evals`)."""

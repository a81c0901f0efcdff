"""Eval environments: the real systems a suite's tasks run against (MiniWoB++ pages, local sites)."""

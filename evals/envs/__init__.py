"""Eval environments: the real systems a suite's tasks run against (MiniWoB++, local sites)."""

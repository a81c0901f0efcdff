"""A separate process that retains batches into a home directory (used by reliability tests).

Usage: python -m tests.memory._writer HOME TAG BATCHES BATCH_SIZE
Prints "done N" after each committed batch.
"""

from __future__ import annotations

import sys

from agentforge.memory.engine import Memory
from agentforge.settings import Settings


def main() -> None:
    home, tag, batches, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    memory = Memory.from_settings(Settings(home=home, embedder="hash"))
    for b in range(batches):
        memory.retain(
            [f"writer {tag} batch {b} item {i} remembers fact {b * size + i}" for i in range(size)]
        )
        print(f"done {b + 1}", flush=True)
    memory.close()


if __name__ == "__main__":
    main()

"""Learning memory: the reflect steps that make memory learn from episodes — insights (L2) from
experiences, skills (L3) induced from repeated successes, conflicts resolved by superseding, and
recall weights tuned from logged outcomes. Each step is budgeted, validates any LLM output before
it changes anything, and files its changes under one undoable operation in history."""

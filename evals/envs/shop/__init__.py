"""A local WebArena-style web shop ("One Stop Market") served on loopback: seeded catalogue,
cart, checkout and a customer account, reset to the seed between tasks. The suite that runs on it
is evals/suites/shop.json (written by `make_tasks.py`)."""

from agentforge.evals.envs.shop.env import ShopEnvironment

__all__ = ["ShopEnvironment"]

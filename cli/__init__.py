"""The `agentforge` command line (installed as `agentforge.cli`)."""

"""The Chat Orchestrator's benchmark harness: `python -m bench.run [--quick]` (`make bench`)."""

"""`python -m app.cli`: the chat-orchestrator command."""

from app.cli.main import main

main()

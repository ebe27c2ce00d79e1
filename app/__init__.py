"""Chat Orchestrator, droplet 12 of the mesh."""

from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    # pyproject.toml is the one place the version is written; the installed package's metadata
    # carries it (`pip install .` in the image, `pip install -e .` in `make install`).
    try:
        return version("chat-orchestrator")
    except PackageNotFoundError:
        # Run from a source tree that was never installed: say so rather than guess a number.
        return "0.0.0+unknown"


__version__ = _version()

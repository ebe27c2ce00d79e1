"""What the deployment guide relies on in the packaging (no Docker engine runs here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

import app
from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_matches_the_deployment_guide() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["chat-orchestrator"]
    assert service["build"] == "."
    assert service["container_name"] == "chat-orchestrator-12"
    assert "8012:8012" in service["ports"]
    assert service["env_file"] == ".env"
    assert "./keys:/app/keys:ro" in service["volumes"]
    assert "./data:/app/data" in service["volumes"]
    assert "droplet-mesh" in service["networks"]
    assert compose["networks"]["droplet-mesh"]["external"] is True


def test_dockerfile_essentials() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    for label in (
        "droplet.id",
        "droplet.name",
        "droplet.version",
        "droplet.udc_compliant",
        "droplet.capabilities",
    ):
        assert label in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "HEALTHCHECK" in text and "/health" in text
    assert "EXPOSE 8012" in text
    assert "--workers" not in text
    env_lines = " ".join(re.findall(r"^ENV .*(?:\n\s+.*\\?)*", text, re.M))
    for secret in ("DROPLET_SECRET", "GEMINI_API_KEY", "TOKEN", "PRIVATE"):
        assert secret not in env_lines
    for path in ("alembic", "alembic.ini", "app"):
        assert re.search(rf"^COPY .*\b{re.escape(path)}\b", text, re.M), path
    # The source the service runs from is compiled in the image (it cannot write bytecode).
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert "python -m compileall -q app alembic" in text


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined and comments dropped."""
    logical = re.sub(r"\\\n", " ", dockerfile)
    pairs = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest))
    return pairs


def test_the_production_image_holds_no_sandbox() -> None:
    instructions = _instructions((ROOT / "Dockerfile").read_text())
    copied = [args for word, args in instructions if word in ("COPY", "ADD")]
    assert copied, "the Dockerfile copies nothing?"
    for args in copied:
        assert "sandbox" not in args, args
        assert not re.search(r"(^|\s)\.(\s|$)", args.split()[0] if args else ""), (
            f"COPY of the whole context would bring the sandbox in: {args}"
        )
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert "tests" in dockerignore


def test_the_version_is_written_once_in_pyproject() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert app.__version__ == version
    literal = re.compile(rf"(?<![\d.]){re.escape(version)}(?![\d.])")
    shipped = [
        ROOT / "Dockerfile",
        *ROOT.glob("docker-compose*.yml"),
        *(ROOT / "app").rglob("*.py"),
    ]
    assert [str(p.relative_to(ROOT)) for p in shipped if literal.search(p.read_text())] == []
    instructions = _instructions((ROOT / "Dockerfile").read_text())
    assert ("ARG", "VERSION=unknown") in instructions
    label = next(args for word, args in instructions if word == "LABEL")
    assert 'droplet.version="${VERSION}"' in label


# Imports every module of app/ with `sandbox` made unimportable, as in the production image.
_WITHOUT_SANDBOX = """
import importlib, pkgutil, sys
class NoSandbox:
    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoSandbox())
import app
for module in pkgutil.walk_packages(app.__path__, "app."):
    if not module.name.endswith(".__main__"):  # runs a command when imported
        importlib.import_module(module.name)
assert not [m for m in sys.modules if m == "sandbox" or m.startswith("sandbox.")]
from typer.testing import CliRunner
from app.cli.main import build_cli
result = CliRunner().invoke(build_cli(), ["sandbox"])
assert result.exit_code == 2, result.output
print(result.output.strip())
"""


def test_the_app_never_imports_the_sandbox(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTINGS}
    env.update({"PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SANDBOX],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "the sandbox is not part of this installation" in result.stdout


_SETTINGS = {name.upper() for name in Settings.model_fields}


def test_ignored_files_keep_secrets_out() -> None:
    gitignore = (ROOT / ".gitignore").read_text().split()
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", "keys/", "data/"):
        assert entry in gitignore
    for entry in (".env", "keys", "data"):
        assert entry in dockerignore


def test_env_example_documents_every_setting() -> None:
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - documented == set()


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n")[:8]
    assert any(line.startswith("make run") for line in head)
    assert any(line.startswith("make test") for line in head)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


class _TaggedLoader(yaml.SafeLoader):
    """Reads compose's `!reset` tags as plain values."""


_TaggedLoader.add_constructor("!reset", lambda loader, node: None)


def test_scale_profile_shares_postgres_and_redis_behind_a_websocket_proxy() -> None:
    scale = yaml.load((ROOT / "docker-compose.scale.yml").read_text(), Loader=_TaggedLoader)
    services = scale["services"]
    env = services["chat-orchestrator"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["EVENT_BUS_URL"].startswith("redis://")
    assert services["chat-orchestrator"]["container_name"] is None  # replicas need no fixed name
    assert "8012:8012" in services["proxy"]["ports"]
    assert {"postgres", "redis", "proxy"} <= services.keys()
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade" in nginx
    assert "location /ws" in nginx

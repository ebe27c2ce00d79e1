from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.config import ConfigError, Environment, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_deployment_guide_values() -> None:
    settings = Settings(_env_file=None)
    assert settings.droplet_id == 12
    assert settings.port == 8012
    assert settings.steward == "Zainab"
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.registry_public_key_file == Path("keys/registry_public_key.pem")
    assert settings.data_dir == Path("data")


def test_every_deployment_guide_variable_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "GEMINI_API_KEY": "real-key-123",
        "DROPLET_SECRET": "s3cret-value-from-the-steward",
        "ORCHESTRATOR_URL": "http://orchestrator:8010/",
        "REGISTRY_URL": "http://registry:8010",
        "ENVIRONMENT": "production",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PORT": "9012",
        "DROPLET_URL": "http://chat:8012",
        "CORS_ORIGINS": "https://a.example.org, https://b.example.org",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.gemini_api_key is not None
    assert settings.gemini_api_key.get_secret_value() == "real-key-123"
    assert settings.orchestrator_url == "http://orchestrator:8010"
    assert settings.registry_url == "http://registry:8010"
    assert settings.is_production
    assert settings.log_level == "WARNING"
    assert settings.port == 9012
    assert settings.cors_origins == ["https://a.example.org", "https://b.example.org"]
    settings.check_runnable()


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("STEWARD=Someone\nPORT=8099\n")
    settings = Settings(_env_file=env_file)
    assert settings.steward == "Someone"
    assert settings.port == 8099


@pytest.mark.parametrize("secret", [None, "", "secret-from-registry-steward", "changeme"])
def test_production_refuses_missing_or_placeholder_secret(secret: str | None) -> None:
    settings = Settings(_env_file=None, environment="production", droplet_secret=secret)
    with pytest.raises(ConfigError) as caught:
        settings.check_runnable()
    assert caught.value.variable == "DROPLET_SECRET"


def test_production_refuses_placeholder_gemini_key() -> None:
    settings = Settings(
        _env_file=None,
        environment="production",
        droplet_secret="a-real-secret-0123456789",
        gemini_api_key="your-actual-gemini-api-key",
    )
    with pytest.raises(ConfigError) as caught:
        settings.check_runnable()
    assert caught.value.variable == "GEMINI_API_KEY"


def test_development_starts_without_secrets_and_says_what_is_off() -> None:
    settings = Settings(_env_file=None)
    settings.check_runnable()
    off = " ".join(settings.disabled_features())
    assert "GEMINI_API_KEY" in off and "LLM_BASE_URL" in off
    assert "DROPLET_SECRET" in off


STRONG = "k7Qp2vX9mL4tR8wZ"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"droplet_secret": "a"}, "DROPLET_SECRET"),
        ({"droplet_secret": "abababababababababab"}, "DROPLET_SECRET"),
        ({"droplet_secret": "short-Secret1"}, "DROPLET_SECRET"),
        ({"llm_api_key": "your-llm-api-key"}, "LLM_API_KEY"),
        ({"registry_api_key": "changeme"}, "REGISTRY_API_KEY"),
        ({"orchestrator_token": "<paste the token here>"}, "ORCHESTRATOR_TOKEN"),
        ({"chat_auth": "none"}, "CHAT_AUTH"),
        ({"cors_origins": "null"}, "CORS_ORIGINS"),
        ({"cors_origins": "https://ok.example.org,*"}, "CORS_ORIGINS"),
    ],
)
def test_production_refuses_weak_settings(overrides: dict[str, str], variable: str) -> None:
    values: dict[str, Any] = {"environment": "production", "droplet_secret": STRONG, **overrides}
    settings = Settings(_env_file=None, **values)
    with pytest.raises(ConfigError) as caught:
        settings.check_runnable()
    assert caught.value.variable == variable


def test_production_accepts_strong_settings() -> None:
    Settings(
        _env_file=None,
        environment="production",
        droplet_secret=STRONG,
        cors_origins="https://ops.example.org",
    ).check_runnable()


def _start(env_overrides: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {f.upper() for f in Settings.model_fields}
    }
    env.update(env_overrides)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "app.main"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_start_without_secret_exits_with_one_clear_line(tmp_path: Path) -> None:
    result = _start({"ENVIRONMENT": "production"}, tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "configuration error: DROPLET_SECRET missing or a placeholder; "
        "set the secret from the Registry steward"
    ]
    assert "Traceback" not in result.stderr


def test_invalid_value_exits_with_one_line_naming_the_variable(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    result = _start({"PORT": "not-a-port"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("configuration error: PORT")
    assert "Traceback" not in result.stderr

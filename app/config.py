"""One Settings class for the whole service (environment variables and `.env`)."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_MARKERS = (
    "your-",
    "your_",
    "secret-from",
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "example",
    "replace",
    "dummy",
    "todo",
    "xxxx",
    "<",
    "fixme",
    "insert",
)
MIN_SECRET_CHARS = 16
MIN_SECRET_DISTINCT = 8


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class ConfigError(Exception):
    """The configuration cannot run: `variable` names what to fix."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


def _is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return not lowered or any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def _weak_secret(value: str) -> str | None:
    """Why `value` is too weak to be a production secret, or None."""
    if _is_placeholder(value):
        return "missing or a placeholder"
    if len(value) < MIN_SECRET_CHARS:
        return f"shorter than {MIN_SECRET_CHARS} characters"
    if len(set(value)) < MIN_SECRET_DISTINCT:
        return f"low entropy (fewer than {MIN_SECRET_DISTINCT} distinct characters)"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Identity
    droplet_id: int = 12
    droplet_name: str = "Chat Orchestrator"
    steward: str = "Zainab"
    droplet_url: str = "http://localhost:8012"
    environment: Environment = Environment.DEVELOPMENT
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # A container must listen on all interfaces; the port mapping decides exposure.
    host: str = "0.0.0.0"
    port: int = Field(default=8012, ge=1, le=65535)
    build: str = "local"

    # Mesh peers
    registry_url: str = "http://localhost:8001"
    orchestrator_url: str = "http://localhost:8010"
    droplet_secret: SecretStr | None = None
    registry_api_key: SecretStr | None = None
    orchestrator_token: SecretStr | None = None
    orchestrator_private_key_file: Path | None = None
    mesh_enabled: bool = True
    peer_timeout_s: float = Field(default=5.0, gt=0)
    peer_breaker_reset_s: float = Field(default=10.0, gt=0)
    registration_backoff_max_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=60.0, gt=0)
    task_poll_interval_s: float = Field(default=10.0, gt=0)
    directory_ttl_s: float = Field(default=5.0, gt=0)
    """How long the merged droplet listing (both peers) answers turns before it is fetched again."""

    # Inbound auth
    registry_public_key_file: Path = Path("keys/registry_public_key.pem")
    registry_public_key_url: str | None = None
    registry_public_key_refresh_s: float = Field(default=300.0, gt=0)
    """How often the key from REGISTRY_PUBLIC_KEY_URL is fetched again (a file is never)."""
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_max_lifetime_s: float = Field(default=25 * 3600, gt=0)
    """Tokens living longer than this (exp - iat) are refused; the Registry's last ~24 h."""
    inbound_message_auth: Literal["jwt", "jwt_or_allowlist"] = "jwt_or_allowlist"
    inbound_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
        ]
    )

    # Storage
    data_dir: Path = Path("data")
    database_url: str | None = None

    history_window: int = Field(default=20, ge=0, le=500)
    session_idle_expiry_s: float = Field(default=7 * 86400, gt=0)
    event_bus_url: str | None = None

    # Chat access
    chat_auth: Literal["none", "jwt"] | None = None
    """None: `jwt` in production, `none` otherwise."""
    route_back_delivery: Literal["reply", "orchestrator"] = "reply"

    # Watches ("tell me when droplet 16 is back")
    watch_ttl_s: float = Field(default=24 * 3600, gt=0)
    """A watch that has not fired by then is dropped."""
    max_watches_per_identity: int = Field(default=20, ge=1)
    watch_check_interval_s: float = Field(default=5.0, gt=0)
    """How often the leader checks the watched tasks and droplets (the Orchestrator pushes
    droplet health, but not a task's completion, so tasks are polled)."""

    # Planning
    planner: Literal["rules", "gemini", "openai", "hybrid"] | None = None
    """None: `rules` without an LLM configured, `hybrid` with one."""
    planner_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Hybrid: below this confidence of the offline planner, the model is asked. Unset: the
    threshold fitted by `make calibrate` (app/conversation/understanding/calibration.json)."""
    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    gemini_api_version: str | None = None
    llm_base_url: str | None = None
    llm_model: str = "qwen2.5"
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(default=10.0, gt=0)
    llm_summarize: bool = False
    """Stream a model's phrasing of each answer to WebSocket clients (the facts stay as sent)."""

    # HTTP
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8012", "http://127.0.0.1:8012"]
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    """Request line plus headers; a larger request is refused with 431 before it is read."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection that has not sent a whole request head within this time is closed."""
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"]
    )
    """Proxies whose X-Forwarded-For/-Proto are believed (addresses or networks, or "*")."""
    api_docs: Literal["public", "admin", "off"] | None = None
    """/docs, /redoc, /openapi.json. None: public in development, off in production."""
    operator_endpoints: Literal["public", "admin"] | None = None
    """/metrics and /ws/connections. None: public in development, admin in production."""
    max_ws_per_identity: int = Field(default=20, ge=1)
    mesh_rate_limit_per_minute: int = Field(default=120, ge=0)
    """/send, /heartbeat and inbound events per identity (or source address) per minute."""
    chat_rate_limit_per_minute: int = Field(default=120, ge=0)
    """Chat turns per identity (or client address) per minute, all channels; 0 turns it off."""
    max_sessions_per_identity: int = Field(default=1000, ge=1)

    @field_validator("cors_origins", "inbound_allowlist", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("registry_url", "orchestrator_url", "droplet_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def effective_chat_auth(self) -> Literal["none", "jwt"]:
        if self.chat_auth is not None:
            return self.chat_auth
        return "jwt" if self.is_production else "none"

    @property
    def effective_api_docs(self) -> Literal["public", "admin", "off"]:
        if self.api_docs is not None:
            return self.api_docs
        return "off" if self.is_production else "public"

    @property
    def effective_operator_endpoints(self) -> Literal["public", "admin"]:
        if self.operator_endpoints is not None:
            return self.operator_endpoints
        return "admin" if self.is_production else "public"

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chat.db').as_posix()}"

    def registry_key(self) -> str | None:
        """The key sent as X-Registry-Key: REGISTRY_API_KEY, else DROPLET_SECRET."""
        for secret in (self.registry_api_key, self.droplet_secret):
            if secret is not None and secret.get_secret_value():
                return secret.get_secret_value()
        return None

    def check_runnable(self) -> None:
        """Refuse to run production with weak settings.

        Raises ConfigError naming the first variable to fix, so the start-up fails with one line.
        """
        if not self.is_production:
            return
        secret = self.droplet_secret.get_secret_value() if self.droplet_secret else ""
        weakness = _weak_secret(secret)
        if weakness is not None:
            raise ConfigError(
                "DROPLET_SECRET", f"{weakness}; set the secret from the Registry steward"
            )
        optional = {
            "REGISTRY_API_KEY": self.registry_api_key,
            "ORCHESTRATOR_TOKEN": self.orchestrator_token,
            "GEMINI_API_KEY": self.gemini_api_key,
            "LLM_API_KEY": self.llm_api_key,
        }
        for variable, value in optional.items():
            if value is not None and _is_placeholder(value.get_secret_value()):
                raise ConfigError(
                    variable, "is a placeholder; set the real value or remove the variable"
                )
        if self.effective_chat_auth == "none":
            raise ConfigError("CHAT_AUTH", "must be jwt in production (none lets anyone in)")
        for origin in self.cors_origins:
            if origin.strip().lower() in ("*", "null"):
                raise ConfigError(
                    "CORS_ORIGINS", f"may not contain {origin!r} in production; list real origins"
                )
        if self.debug:
            raise ConfigError("DEBUG", "must be false in production")

    def disabled_features(self) -> list[str]:
        """Features that are off with this configuration, said once at start-up."""
        off = []
        if self.gemini_api_key is None and not self.llm_base_url:
            off.append("LLM planner (no GEMINI_API_KEY or LLM_BASE_URL; offline rules planner)")
        if self.registry_key() is None:
            off.append("registry registration (no DROPLET_SECRET)")
        if not self.registry_public_key_file.exists() and not self.registry_public_key_url:
            off.append(
                f"JWT-protected endpoints (no key at {self.registry_public_key_file};"
                " they answer 401)"
            )
        return off

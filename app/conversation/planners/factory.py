"""PLANNER=rules|gemini|openai|hybrid: one planner for the app, built from settings.

Unset (or "auto"): "hybrid" when a Gemini key or an OpenAI-compatible base URL is configured,
else "rules". When both are configured, hybrid uses Gemini (the deployment guide's default).
"""

from __future__ import annotations

from pydantic import SecretStr

from app.config import ConfigError
from app.conversation.planners.hybrid import FallbackPlanner, HybridPlanner
from app.conversation.understanding.confidence import hybrid_threshold
from app.domain.plan import Planner
from app.tools.registry import ToolRegistry

# A planner module is imported only when its model is configured (the rules need neither).
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash"

PLANNER_MODES = ("rules", "gemini", "openai", "hybrid")


def _secret(value: str | SecretStr | None) -> str | None:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return raw.strip() if raw and raw.strip() else None


def resolve_mode(*, mode: str | None, has_gemini: bool, has_openai: bool) -> str:
    chosen = (mode or "auto").strip().lower()
    if chosen == "auto":
        return "hybrid" if has_gemini or has_openai else "rules"
    if chosen not in PLANNER_MODES:
        raise ConfigError("PLANNER", f"must be one of auto, {', '.join(PLANNER_MODES)}")
    return chosen


def build_planner(
    *,
    mode: str | None,
    rules: Planner,
    gemini_api_key: str | SecretStr | None,
    gemini_model: str = DEFAULT_GEMINI_MODEL,
    gemini_base_url: str | None = None,
    llm_base_url: str | None = None,
    llm_model: str | None = None,
    llm_api_key: str | SecretStr | None = None,
    timeout_s: float = 10.0,
    threshold: float | None = None,
    gemini_api_version: str | None = None,
    tools: ToolRegistry | None = None,
) -> Planner:
    """The planner for `mode`; ConfigError when the mode's model is not configured."""
    gemini_key = _secret(gemini_api_key)
    openai_url = (llm_base_url or "").strip() or None
    resolved = resolve_mode(
        mode=mode, has_gemini=gemini_key is not None, has_openai=openai_url is not None
    )
    if resolved == "rules":
        return rules

    def gemini() -> Planner:
        from app.conversation.planners.gemini import GeminiPlanner

        if gemini_key is None:
            raise ConfigError("GEMINI_API_KEY", f"required by PLANNER={resolved}")
        return GeminiPlanner(
            api_key=gemini_key,
            model=gemini_model or DEFAULT_GEMINI_MODEL,
            base_url=(gemini_base_url or "").strip() or None,
            timeout_s=timeout_s,
            api_version=gemini_api_version,
            tools=tools,
        )

    def openai_compat() -> Planner:
        from app.conversation.planners.openai_compat import OpenAICompatPlanner

        if openai_url is None:
            raise ConfigError("LLM_BASE_URL", f"required by PLANNER={resolved}")
        if not llm_model:
            raise ConfigError("LLM_MODEL", f"required by PLANNER={resolved}")
        return OpenAICompatPlanner(
            base_url=openai_url,
            model=llm_model,
            api_key=_secret(llm_api_key),
            timeout_s=timeout_s,
            tools=tools,
        )

    if resolved == "gemini":
        return FallbackPlanner(llm=gemini(), rules=rules)
    if resolved == "openai":
        return FallbackPlanner(llm=openai_compat(), rules=rules)
    if gemini_key is None and openai_url is None:
        raise ConfigError("PLANNER", "hybrid needs GEMINI_API_KEY or LLM_BASE_URL")
    llm = gemini() if gemini_key is not None else openai_compat()
    chosen = hybrid_threshold() if threshold is None else threshold
    return HybridPlanner(rules=rules, llm=llm, threshold=chosen)

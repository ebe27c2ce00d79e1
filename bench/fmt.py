"""Number formatting shared by the tables (bench.report, bench.report_issue17)."""

from __future__ import annotations

from typing import Any


def num(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return f"{value}{suffix}"


def pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"

"""The registry of tools: the one list of everything the service can do.

It replaces a catalogue dict, a dispatch chain, a render chain and verb tables: each of those
questions is answered by asking the tool itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from app.domain.plan import ToolCall
from app.tools.base import ArgsInvalid, HelpEntry, Tool, ToolArgs
from app.tools.cancel_task import CancelTask
from app.tools.cancel_tasks import CancelTasks
from app.tools.create_task import CreateTask
from app.tools.droplet_capabilities import DropletCapabilities
from app.tools.droplet_status import DropletStatus
from app.tools.explain_last import ExplainLast
from app.tools.help import Help
from app.tools.list_droplets import ListDroplets
from app.tools.list_tasks import ListTasks
from app.tools.list_watches import ListWatches
from app.tools.retry_tasks import RetryTasks
from app.tools.send_message import SendMessage
from app.tools.system_alerts import SystemAlerts
from app.tools.system_status import SystemStatus
from app.tools.task_status import TaskStatus
from app.tools.undo import Undo
from app.tools.unwatch import Unwatch
from app.tools.watch import WatchTool

AnyTool = Tool[Any]


class UnknownTool(ArgsInvalid):
    def __init__(self, name: str) -> None:
        super().__init__([f"unknown tool {name!r}"])
        self.name = name


class ToolRegistry:
    def __init__(self, tools: Sequence[AnyTool]) -> None:
        self._tools: dict[str, AnyTool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools named {tool.name!r}")
            self._tools[tool.name] = tool

    def __iter__(self) -> Iterator[AnyTool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> AnyTool | None:
        return self._tools.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def writes(self, name: str) -> bool:
        tool = self._tools.get(name)
        return tool is not None and tool.writes

    def parse(self, call: ToolCall) -> tuple[AnyTool, ToolArgs]:
        """The tool and its typed arguments, validated once; ArgsInvalid otherwise."""
        tool = self._tools.get(call.tool)
        if tool is None:
            raise UnknownTool(call.tool)
        return tool, tool.parse(call.args)

    def problems(self, call: ToolCall, *, partial: bool = False) -> list[str]:
        """Why a call is unacceptable ([] when fine); `partial` allows missing required
        arguments (the operator will be asked for them)."""
        tool = self._tools.get(call.tool)
        if tool is None:
            return [f"unknown tool {call.tool!r}"]
        try:
            tool.parse(call.args)
        except ArgsInvalid as exc:
            missing = set(tool.missing(call.args)) if partial else set()
            rest = [p for p in exc.problems if not _about(p, missing)]
            return rest
        return []

    def declarations(self) -> list[Mapping[str, Any]]:
        """name, description and JSON Schema of every tool, for the model planners."""
        return [
            {"name": t.name, "description": t.description, "parameters": t.schema()} for t in self
        ]


def _about(problem: str, missing: set[str]) -> bool:
    """A "required" problem about a missing argument, or about the object holding one."""
    where = problem.split(":", 1)[0]
    holds = any(m == where or m.startswith(f"{where}.") for m in missing)
    return holds and problem.endswith("Field required")


def default_tools() -> ToolRegistry:
    """Every tool the service offers, in the order help lists them."""
    tools: list[AnyTool] = [
        ListDroplets(),
        DropletStatus(),
        DropletCapabilities(),
        ListTasks(),
        TaskStatus(),
        SystemStatus(),
        SystemAlerts(),
        CreateTask(),
        CancelTask(),
        CancelTasks(),
        RetryTasks(),
        SendMessage(),
        Undo(),
        WatchTool(),
        ListWatches(),
        Unwatch(),
        ExplainLast(),
    ]
    entries: list[HelpEntry] = [t.help for t in tools if t.help is not None]
    return ToolRegistry([*tools, Help(entries)])

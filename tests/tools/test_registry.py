"""The registry of tools: unique names, declarations for the models, validation of calls."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.plan import ToolCall
from app.tools.base import ArgsInvalid
from app.tools.cancel_task import CancelTask
from app.tools.list_droplets import ListDropletsArgs
from app.tools.registry import ToolRegistry, UnknownTool, default_tools
from tests.tools.support import TOOLS, plain_schema_problems

BRIEFED = (
    "list_droplets",
    "droplet_status",
    "droplet_capabilities",
    "list_tasks",
    "task_status",
    "system_status",
    "system_alerts",
    "create_task",
    "cancel_task",
    "send_message",
    "help",
)
WRITES = {"create_task", "cancel_task", "cancel_tasks", "retry_tasks", "send_message", "undo"}


def test_names_are_unique_and_cover_every_tool() -> None:
    names = TOOLS.names()
    assert len(names) == len(set(names)) == len(TOOLS)
    assert set(BRIEFED) <= set(names)
    assert names[-1] == "help"
    for name in names:
        assert name in TOOLS
        found = TOOLS.get(name)
        assert found is not None and found.name == name
    assert "nope" not in TOOLS
    assert TOOLS.get("nope") is None


def test_a_second_tool_with_the_same_name_is_refused() -> None:
    with pytest.raises(ValueError, match="two tools named 'cancel_task'"):
        ToolRegistry([CancelTask(), CancelTask()])


def test_each_call_of_default_tools_is_a_fresh_registry() -> None:
    assert default_tools() is not TOOLS
    assert default_tools().names() == TOOLS.names()


def test_writes() -> None:
    assert {name for name in TOOLS.names() if TOOLS.writes(name)} == WRITES
    assert not TOOLS.writes("nope")
    for t in TOOLS:
        if t.writes:
            assert t.permission == "write", t.name
        else:
            assert t.permission in ("read", None), t.name


# ---- declarations --------------------------------------------------------------------------------


def test_one_declaration_per_tool() -> None:
    declarations = TOOLS.declarations()
    assert [d["name"] for d in declarations] == list(TOOLS.names())
    for declaration in declarations:
        assert set(declaration) == {"name", "description", "parameters"}
        assert isinstance(declaration["description"], str) and declaration["description"]
        parameters = declaration["parameters"]
        assert parameters["type"] == "object"
        assert "properties" in parameters


@pytest.mark.parametrize("name", TOOLS.names())
def test_declared_schemas_are_plain(name: str) -> None:
    (declaration,) = [d for d in TOOLS.declarations() if d["name"] == name]
    assert plain_schema_problems(declaration["parameters"]) == []
    assert "$ref" not in repr(declaration["parameters"])


@pytest.mark.parametrize("name", TOOLS.names())
def test_declared_required_arguments_match_the_model(name: str) -> None:
    found = TOOLS.get(name)
    assert found is not None
    schema = found.schema()
    model_required = [n for n, f in found.Args.model_fields.items() if f.is_required()]
    assert schema.get("required", []) == model_required


# ---- parsing and problems ------------------------------------------------------------------------


def test_parse_gives_the_tool_and_typed_arguments() -> None:
    found, args = TOOLS.parse(ToolCall(tool="list_droplets", args={"status": "down"}))
    assert found.name == "list_droplets"
    assert isinstance(args, ListDropletsArgs)
    assert args.status == "down"


def test_parse_refuses_unknown_tools_and_bad_arguments() -> None:
    with pytest.raises(UnknownTool) as unknown:
        TOOLS.parse(ToolCall(tool="format_disk"))
    assert unknown.value.name == "format_disk"
    assert unknown.value.problems == ["unknown tool 'format_disk'"]
    with pytest.raises(ArgsInvalid):
        TOOLS.parse(ToolCall(tool="task_status", args={"task_id": "seven"}))


CREATE_PARTIAL: dict[str, Any] = {"task_type": "build", "priority": 5}


def test_a_complete_check_reports_missing_required_arguments() -> None:
    assert TOOLS.problems(ToolCall(tool="create_task", args=CREATE_PARTIAL)) == [
        "payload: Field required"
    ]
    assert TOOLS.problems(ToolCall(tool="task_status")) == ["task_id: Field required"]


def test_a_partial_check_allows_what_will_be_asked() -> None:
    assert TOOLS.problems(ToolCall(tool="create_task", args=CREATE_PARTIAL), partial=True) == []
    assert TOOLS.problems(ToolCall(tool="create_task", args={}), partial=True) == []
    nested = {"task_type": "build", "payload": {}}
    assert TOOLS.problems(ToolCall(tool="create_task", args=nested), partial=True) == []
    assert TOOLS.problems(ToolCall(tool="send_message"), partial=True) == []


def test_a_partial_check_still_reports_wrong_values() -> None:
    wrong = {"task_type": "build", "priority": 12}
    assert TOOLS.problems(ToolCall(tool="create_task", args=wrong), partial=True) == [
        "priority: Input should be less than or equal to 10"
    ]
    extra = {"task_type": "build", "color": "red"}
    assert TOOLS.problems(ToolCall(tool="create_task", args=extra), partial=True) == [
        "color: is not an argument of this tool"
    ]
    bad_target = {"task_type": "build", "payload": {"target_droplet_id": -3}}
    assert TOOLS.problems(ToolCall(tool="create_task", args=bad_target), partial=True) == [
        "payload.target_droplet_id: Input should be greater than or equal to 1"
    ]


def test_unknown_tools_are_a_problem_either_way() -> None:
    for partial in (False, True):
        assert TOOLS.problems(ToolCall(tool="nope"), partial=partial) == ["unknown tool 'nope'"]


def test_a_valid_call_has_no_problems() -> None:
    call = ToolCall(
        tool="create_task",
        args={"task_type": "verify", "payload": {"target_droplet_id": 14, "branch": "main"}},
    )
    assert TOOLS.problems(call) == []
    assert TOOLS.problems(call, partial=True) == []

"""components.errors: how a component's input problems become one pulumi.InputPropertiesError, in the
shape the pinned SDK defines (pulumi/errors.py) and its provider server hands to the engine."""

from __future__ import annotations

import pulumi
import pytest

from components.errors import InputProblems, property_path


def test_a_path_joins_field_names_with_dots_and_indexes_list_items():
    assert property_path("node_pools", 1, "instance_types") == "node_pools[1].instance_types"
    assert property_path("settings", "gguf_file") == "settings.gguf_file"
    assert property_path("objects", 2) == "objects[2]"


@pytest.mark.parametrize("parts", [(), (0, "name"), ("nodePools",), ("node pools",)],
                         ids=["empty", "index first", "camelCase", "space"])
def test_a_path_names_args_fields_only(parts):
    with pytest.raises(ValueError):
        property_path(*parts)


def test_no_problem_raises_nothing():
    problems = InputProblems()
    assert not problems
    problems.raise_any()


def test_every_problem_is_raised_at_once_with_its_path():
    problems = InputProblems()
    problems.add("allowed_cidrs", "ModelGatewayArgs.allowed_cidrs is required when public is true")
    problems.add(("node_pools", 0, "instance_types"), "node pool 'system' needs instance_types")
    assert problems
    with pytest.raises(pulumi.InputPropertiesError) as caught:
        problems.raise_any()
    error = caught.value
    # The message reads as the ValueError it replaces did; the SDK's provider server sends `message` and
    # each error's `property_path` and `reason` (pulumi/provider/server.py, create_grpc_invalid_properties_status).
    assert str(error) == error.message == ("ModelGatewayArgs.allowed_cidrs is required when public is true; "
                                           "node pool 'system' needs instance_types")
    assert error.errors == [
        {"property_path": "allowed_cidrs", "reason": "ModelGatewayArgs.allowed_cidrs is required when public is true"},
        {"property_path": "node_pools[0].instance_types", "reason": "node pool 'system' needs instance_types"},
    ]
    assert not isinstance(error, (ValueError, pulumi.RunError))


def test_an_input_error_during_an_offline_plan_is_one_clear_line(monkeypatch):
    """A component's refusal reaches `neurodock plan` as its message, without a traceback."""
    from components.gateway import gateway
    from tests.conftest import run_cli

    def refuse(args: gateway.ModelGatewayArgs) -> None:
        problems = InputProblems()
        problems.add("allowed_cidrs", "ModelGatewayArgs.allowed_cidrs is required when public is true")
        problems.raise_any()

    monkeypatch.setattr(gateway, "_validate", refuse)
    monkeypatch.delenv("NEURODOCK_DEBUG", raising=False)
    result = run_cli("plan", "dev")
    assert result.returncode == 1
    assert "ModelGatewayArgs.allowed_cidrs is required when public is true" in result.stderr
    assert "Traceback" not in result.stderr

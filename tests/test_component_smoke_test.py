"""SmokeTest built alone: its script and Job from minimal Args, and the InputPropertiesError of a test
with no model to ask."""

from __future__ import annotations

from dataclasses import replace

from components.gateway.smoke_test import SmokeTest, SmokeTestArgs
from tests.test_component_harness import build, input_errors

ARGS = SmokeTestArgs(gateway_url="http://neurodock-gateway.neurodock-gateway.svc.cluster.local:80/v1",
                     served_names=("org/m",), revision="0123abcd", node_selector={"neurodock.io/pool": "system"})


def test_minimal_args_build_the_script_and_its_job():
    built = build(lambda: SmokeTest("smoke-test", ARGS))
    assert built.resources[0].type == "neurodock:gateway:SmokeTest"
    assert built.types == {"kubernetes:core/v1:ConfigMap", "kubernetes:batch/v1:Job"}


def test_a_smoke_test_with_no_model_is_refused():
    assert input_errors(lambda: SmokeTest("smoke-test", replace(ARGS, served_names=()))) == [
        ("served_names", "SmokeTestArgs.served_names must not be empty")]

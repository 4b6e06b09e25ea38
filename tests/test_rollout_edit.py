"""``neurodock rollout step|promote|rollback`` edit copies of the shipped stacks: the diff is the intended change
only (comments and layout kept), the result validates and plans, and ``canary.steps`` is validated with errors
naming the key."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from neurodock_policies import POLICIES

from infra.check import policy_resources, run_on
from infra.config import ConfigError
from infra.plan.engine import run_plan, validate
from infra.plan.stackfile import REPO_ROOT, load_stack_file
from tests.conftest import model_servers, run_cli, stack_document

MODEL = "llama-3-1-8b"


def _copy(tmp_path: Path, stack: str, steps: str | None = "[10, 25, 50]") -> Path:
    """The shipped stack file, byte for byte, with ``steps`` added under the canary's weight."""
    path = tmp_path / f"Pulumi.{stack}.yaml"
    shutil.copy(REPO_ROOT / "stacks" / f"Pulumi.{stack}.yaml", path)
    if steps is not None:
        text = path.read_text()
        assert text.count("        weight: 10\n") == 1
        path.write_text(text.replace("        weight: 10\n", f"        weight: 10\n        steps: {steps}\n"))
    return path


def _diff(before: str, after: str) -> tuple[list[str], list[str]]:
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    removed = [line[1:] for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in lines if line.startswith("+") and not line.startswith("+++")]
    return removed, added


def _rollout(action: str, stack: str, path: Path):
    return run_cli("rollout", action, stack, "--stack-file", str(path))


@pytest.mark.parametrize("stack", ["prod", "prod-dr"])
def test_step_moves_the_weight_to_the_next_step_and_changes_nothing_else(tmp_path, stack):
    path = _copy(tmp_path, stack)
    before = path.read_text()
    result = _rollout("step", stack, path)
    assert result.returncode == 0, result.stderr
    assert "weight 10 -> 25" in result.stdout
    assert _diff(before, path.read_text()) == (["        weight: 10"], ["        weight: 25"])
    assert _rollout("step", stack, path).returncode == 0
    assert _diff(before, path.read_text()) == (["        weight: 10"], ["        weight: 50"])
    last = path.read_text()
    result = _rollout("step", stack, path)
    assert result.returncode == 2 and "last step" in result.stderr and "promote" in result.stderr
    assert path.read_text() == last
    [model] = [m for m in validate(load_stack_file(stack, path)).models if m.canary]
    assert model.canary.weight == 50


def test_rollback_sets_the_weight_to_zero_once(tmp_path):
    path = _copy(tmp_path, "prod")
    before = path.read_text()
    assert _rollout("rollback", "prod", path).returncode == 0
    assert _diff(before, path.read_text()) == (["        weight: 10"], ["        weight: 0"])
    again = _rollout("rollback", "prod", path)
    assert again.returncode == 2 and "already 0" in again.stderr
    # From 0 the next step is the first one.
    assert _rollout("step", "prod", path).returncode == 0
    assert _diff(before, path.read_text()) == ([], [])


def test_step_without_steps_is_a_usage_error_naming_the_key(tmp_path):
    path = _copy(tmp_path, "prod", steps=None)
    before = path.read_bytes()
    result = _rollout("step", "prod", path)
    assert result.returncode == 2 and "canary.steps is not set" in result.stderr
    assert path.read_bytes() == before


def test_a_stack_without_a_canary_has_nothing_to_step():
    result = run_cli("rollout", "step", "dev", "--stack-file", str(REPO_ROOT / "stacks" / "Pulumi.dev.yaml"))
    assert result.returncode == 2 and "canary" in result.stderr


def test_promote_moves_the_canarys_flags_to_the_model_removes_it_and_the_stack_plans(tmp_path):
    path = _copy(tmp_path, "prod")
    before = path.read_text()
    result = _rollout("promote", "prod", path)
    assert result.returncode == 0, result.stderr
    # The canary's block and the comment describing it go; the flags arrive on the model, where it stood.
    block = ("      # A canary of a larger prefill batch takes 10% of this model's requests; set weight to 0 to\n"
             "      # roll back, or move its settings to the model and remove it to promote.\n"
             "      canary:\n        weight: 10\n        steps: [10, 25, 50]\n"
             '        extraArgs: ["--max-num-batched-tokens", "16384"]\n')
    assert before.count(block) == 1
    promoted = '      engineArgs:\n        extraArgs: ["--max-num-batched-tokens", "16384"]\n'
    assert path.read_text() == before.replace(block, promoted)
    # The shadow and every comment outside the canary's block are untouched.
    assert "      # A shadow gets a copy of 5% of the requests; its answers are dropped." in path.read_text()
    plan = run_plan(load_stack_file("prod", path))
    assert model_servers(plan, "canary") == []
    [stable] = [d for d in model_servers(plan)
                if d.manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == MODEL]
    args = stable.manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--max-num-batched-tokens" in args and args[args.index("--max-num-batched-tokens") + 1] == "16384"
    # And it checks clean: no mandatory violation of the policy pack (what `neurodock check` gates on).
    mandatory = [v for v in run_on(policy_resources(plan), POLICIES) if v.enforcement == "mandatory"]
    assert mandatory == []


def test_promote_refuses_a_canary_image_and_leaves_the_file(tmp_path):
    path = _copy(tmp_path, "prod")
    path.write_text(path.read_text().replace("        weight: 10\n",
                                             "        weight: 10\n        image: vllm/vllm-openai:v0.11.0\n"))
    before = path.read_bytes()
    result = _rollout("promote", "prod", path)
    assert result.returncode == 2 and "canary.image" in result.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize(("steps", "weight", "key", "words"), [
    ([10, 5], 10, "canary.steps[1]", "above the step before"),
    ([10, 100], 10, "canary.steps[1]", "1-99"),
    ([], 10, "canary.steps", "at least one"),
    ([5, 25], 10, "canary.weight", "not one of canary.steps"),
])
def test_bad_steps_are_refused_naming_the_key(write_stack, steps, weight, key, words):
    document = stack_document("prod")
    [model] = [m for m in document["config"]["neurodock:models"] if m["name"] == MODEL]
    model["canary"] |= {"steps": steps, "weight": weight}
    index = document["config"]["neurodock:models"].index(model)
    with pytest.raises(ConfigError) as error:
        validate(load_stack_file("test", write_stack(document)))
    messages = [str(p) for p in error.value.problems]
    assert any(m.startswith(f"neurodock:models[{index}].{key}:") and words in m for m in messages), messages


def test_steps_that_rise_from_a_weight_of_zero_are_valid(write_stack):
    document = stack_document("prod")
    [model] = [m for m in document["config"]["neurodock:models"] if m["name"] == MODEL]
    model["canary"] |= {"steps": [5, 25, 50], "weight": 0}
    config = validate(load_stack_file("test", write_stack(document)))
    assert next(m for m in config.models if m.name == MODEL).canary.steps == [5, 25, 50]

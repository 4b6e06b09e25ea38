"""Reading stack files the way the Pulumi CLI does."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER

from infra.plan.stackfile import REPO_ROOT, StackFileError, load_stack_file, stack_names
from tests.conftest import stack_document


def test_project_file_runs_infra_with_stack_files_in_stacks():
    import yaml

    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "neurodock"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"]
    assert project["main"].rstrip("/") == "infra"
    assert project["stackConfigDir"] == "stacks"
    assert (REPO_ROOT / project["main"] / "__main__.py").is_file()


def test_project_level_config_is_inherited_by_every_stack():
    loaded = load_stack_file("dev")
    assert json.loads(loaded.config["pulumi:disable-default-providers"]) == ["*"]


def test_stack_names_lists_the_stack_files():
    assert {"dev", "staging", "prod"} <= set(stack_names())


def test_secure_values_become_unknown_secrets(write_stack):
    document = stack_document("dev")
    document["config"]["neurodock:hfToken"] = {"secure": "v1:AAAABBBBCCCC"}
    loaded = load_stack_file("test", write_stack(document))
    assert loaded.config["neurodock:hfToken"] == UNKNOWN_MARKER
    assert loaded.secret_keys == {"neurodock:hfToken"}


def test_nested_secure_values_mark_their_key_secret(write_stack):
    document = stack_document("dev")
    document["config"]["neurodock:tags"] = {"owner": {"secure": "v1:AAAA"}}
    loaded = load_stack_file("test", write_stack(document))
    assert json.loads(loaded.config["neurodock:tags"]) == {"owner": UNKNOWN_MARKER}
    assert "neurodock:tags" in loaded.secret_keys


def test_scalars_are_passed_as_text_and_objects_as_json(write_stack):
    document = {"config": {"neurodock:flag": True, "neurodock:count": 3, "neurodock:obj": {"a": [1, False]}}}
    loaded = load_stack_file("test", write_stack(document))
    assert loaded.config["neurodock:flag"] == "true"
    assert loaded.config["neurodock:count"] == "3"
    assert json.loads(loaded.config["neurodock:obj"]) == {"a": [1, False]}


def test_a_missing_stack_names_the_known_stacks():
    with pytest.raises(StackFileError, match=r"no stack file .*Pulumi\.nope\.yaml; stacks here: .*dev"):
        load_stack_file("nope")


def test_invalid_yaml_is_a_stack_file_error(tmp_path):
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config:\n  neurodock:environment: [unclosed\n")
    with pytest.raises(StackFileError, match="not valid YAML"):
        load_stack_file("bad", path)


def test_config_that_is_not_a_mapping_is_rejected(tmp_path):
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config: [1, 2]\n")
    with pytest.raises(StackFileError, match="'config' must be a mapping"):
        load_stack_file("bad", path)


def test_a_stack_initialised_with_a_kms_secrets_provider_still_loads(write_stack):
    # `pulumi stack init prod --secrets-provider gcpkms://...` writes these keys next to `config`.
    document = stack_document("prod")
    document["secretsprovider"] = "gcpkms://projects/p/locations/europe/keyRings/neurodock-state/cryptoKeys/pulumi-state"
    document["encryptedkey"] = "CiQAbc123=="
    stack = load_stack_file("prod", write_stack(document, name="prod"))
    assert stack.config["neurodock:environment"] == "prod"
    assert not any(key.startswith(("secretsprovider", "encryptedkey")) for key in stack.config)


def test_the_bootstrap_project_reads_its_own_stacks():
    import yaml

    from infra.plan.engine import BOOTSTRAP_DIR

    project = yaml.safe_load((BOOTSTRAP_DIR / "Pulumi.yaml").read_text())
    assert project["name"] == "neurodock-bootstrap" and project["config"]["pulumi:disable-default-providers"]
    assert stack_names(BOOTSTRAP_DIR) == ["aws", "gcp"]
    assert load_stack_file("aws", root=BOOTSTRAP_DIR).config["neurodock-bootstrap:location"] == "us-west-2"

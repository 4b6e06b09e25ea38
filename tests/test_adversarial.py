"""Inputs a new user gets wrong, beyond the issue's examples (issue 17's own adversarial pass): each is
refused by `neurodock plan` with exit 2, no traceback, and a message that starts with the key (or names
the file) and says what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli import main
from tests.conftest import stack_document
from tests.test_config import _delete, _multi, _set

# (case, stack, mutation of its config, the problem line as printed)
CONFIGS = [
    # Wrong types, and values YAML turned into something else.
    ("a mapping where a list goes", "staging", _set(["neurodock:nodePools"], {"name": "system"}),
     "neurodock:nodePools: must be a list"),
    ("a key left empty", "staging", _set(["neurodock:models"], None),
     "neurodock:models: is empty; give it a value, or remove the key for its default"),
    ("a fraction where a count goes", "staging", _set(["neurodock:nodePools", 0, "maxNodes"], 2.5),
     "neurodock:nodePools[0].maxNodes: must be a whole number (got 2.5)"),
    ("a cloud given as a word", "staging", _set(["neurodock:cloud"], "eks"),
     "neurodock:cloud: must be a mapping of keys (got 'eks')"),
    ("tags as a list", "staging", _set(["neurodock:tags"], ["team=ml"]),
     "neurodock:tags: must be a mapping of keys to values"),
    ("an unquoted number as a tag value", "staging", _set(["neurodock:tags"], {"cost-center": 42}),
     "neurodock:tags.cost-center: must be text, but YAML read the unquoted 42 as a number; put the value in "
     "quotes, e.g. \"42\""),
    ("an unquoted boolean as a label value", "staging", _set(["neurodock:nodePools", 0, "labels"], {"spot": True}),
     "neurodock:nodePools[0].labels.spot: must be text, but YAML read the unquoted true as a boolean; put the "
     "value in quotes, e.g. \"true\""),
    ("an unsupported Kubernetes version", "staging", _set(["neurodock:cloud", "kubernetesVersion"], "1.27"),
     "neurodock:cloud.kubernetesVersion: must be a Kubernetes minor version from 1.28, in quotes, e.g. '1.33' "
     "(got '1.27')"),
    # Names and formats.
    ("an empty environment", "staging", _set(["neurodock:environment"], ""),
     "neurodock:environment: must be a name of at most 24 lowercase letters"),
    ("a non-ASCII environment", "staging", _set(["neurodock:environment"], "prød"),
     "neurodock:environment: must be a name of at most 24 lowercase letters"),
    ("a misspelt namespace", "staging", lambda c: c.__setitem__("neurodok:gateway", {"public": True}),
     "neurodok:gateway: is in no namespace NeuroDock reads; did you mean neurodock:gateway?"),
    ("a weights source without a model", "staging", _set(["neurodock:models", 0, "source"], "hf://meta-llama"),
     "neurodock:models[0].source: must be hf://ORG/MODEL (a Hugging Face repository)"),
    ("a weights source with a path", "staging",
     _set(["neurodock:models", 0, "source"], "hf://meta-llama/Llama-3.1-8B-Instruct/original"),
     "neurodock:models[0].source: must be hf://ORG/MODEL"),
    ("a bucket name S3 refuses", "staging", _set(["neurodock:models", 0, "source"], "s3://My_Bucket/llama"),
     "neurodock:models[0].source: must be hf://ORG/MODEL (a Hugging Face repository), or s3://BUCKET/PREFIX"),
    ("a served name with a space", "staging", _set(["neurodock:models", 0, "servedName"], "llama 8b"),
     "neurodock:models[0].servedName: must be a model name of at most 128 letters, digits and -_./:"),
    ("an empty tag key", "staging", _set(["neurodock:tags"], {"": "x"}),
     "neurodock:tags: has a tag with an empty key (''); give the tag a name"),
    ("a Slack channel with a space", "prod", _set(["neurodock:monitoring", "alerting", "receivers", 1, "channel"],
                                                   "#ml alerts"),
     "neurodock:monitoring.alerting.receivers[1].channel: must be a Slack channel or user without spaces"),
    ("a retention in words", "staging", _set(["neurodock:monitoring", "retention"], "15 days"),
     "neurodock:monitoring.retention: must be a whole number of hours (h), days (d), weeks (w) or years (y), "
     "e.g. '15d' (got '15 days')"),
    ("a zero repeat interval", "prod", _set(["neurodock:monitoring", "alerting", "repeatInterval"], "0h"),
     "neurodock:monitoring.alerting.repeatInterval: must be a whole number of minutes (m), hours (h), days (d) "
     "or weeks (w)"),
    # Network ranges.
    ("a /33 range", "staging", _set(["neurodock:cloud", "vpcCidr"], "10.0.0.0/33"),
     "neurodock:cloud.vpcCidr: '10.0.0.0/33' is not a valid IPv4 range"),
    ("an IPv6 range", "staging", _set(["neurodock:cloud", "vpcCidr"], "fd00::/8"),
     "neurodock:cloud.vpcCidr: must be an IPv4 range in CIDR notation, e.g. '10.0.0.0/16' (got 'fd00::/8')"),
    ("an allow-list entry with host bits", "staging",
     _set(["neurodock:cloud", "endpoint", "allowedCidrs"], ["203.0.113.7/24"]),
     "neurodock:cloud.endpoint.allowedCidrs[0]: '203.0.113.7/24' has bits set after its /24: the range that holds "
     "it is 203.0.113.0/24"),
    ("a subnet too small for the nodes", "prod", _set(["neurodock:cloud", "subnetCidr"], "10.10.0.0/28"),
     "neurodock:cloud.subnetCidr: 10.10.0.0/28 has 12 usable addresses (Google Cloud reserves 4), fewer than the "
     "19 nodes"),
    ("a control plane in public address space", "prod", _set(["neurodock:cloud", "masterCidr"], "8.8.8.0/28"),
     "neurodock:cloud.masterCidr: 8.8.8.0/28 must be a private (RFC 1918) /28"),
    ("a zone ID instead of a zone name", "staging", _set(["neurodock:cloud", "zones", 0], "usw2-az1"),
     "neurodock:cloud.zones[0]: 'usw2-az1' is a zone ID; give the zone's name, the region and a letter, e.g. "
     "'us-east-1a'"),
    ("a zone listed twice", "staging", _set(["neurodock:cloud", "zones"], ["us-east-1a", "us-east-1a", "us-east-1b"]),
     "neurodock:cloud.zones: lists a zone twice"),
    # Pools and machines.
    ("a GPU count the machine does not have", "staging", _set(["neurodock:nodePools", 1, "gpu", "count"], 2),
     "neurodock:nodePools[1].instanceTypes[0]: g6.2xlarge has 1 x nvidia-l4 but gpu says 2 x nvidia-l4"),
    ("MIG partitions on EKS", "staging",
     _set(["neurodock:nodePools", 1, "gpu", "sharing"], {"strategy": "mig", "partitionSize": "1g.10gb"}),
     "neurodock:nodePools[1].gpu.sharing.strategy: mig partitions are supported on gke only"),
    ("a CPU pool with a GPU machine", "prod", _set(["neurodock:nodePools", 0, "instanceTypes"], ["g2-standard-8"]),
     "neurodock:nodePools[0].instanceTypes[0]: g2-standard-8 has GPUs; put it in a pool with role 'gpu'"),
    ("a name two pools share", "staging", _set(["neurodock:nodePools", 1, "name"], "system"),
     "neurodock:nodePools[1].name: pool name 'system' is already used by nodePools[0]"),
    # Models.
    ("llama.cpp given a GPU", "dev", _multi(_set(["neurodock:models", 0, "pool"], "gpu-l4"),
                                            _set(["neurodock:models", 0, "gpusPerReplica"], 1)),
     "neurodock:models[0].gpusPerReplica: engine 'llamacpp' runs on CPU; set it to 0"),
    ("a managed flag in its short form", "staging", _set(["neurodock:models", 0, "engineArgs"],
                                                          {"extraArgs": ["-tp", "2"]}),
     "neurodock:models[0].engineArgs.extraArgs[0]: -tp is set by NeuroDock from config"),
    ("a flag and its value in one item", "staging", _set(["neurodock:models", 0, "engineArgs"],
                                                          {"extraArgs": ["--lora-modules a=b"]}),
     "neurodock:models[0].engineArgs.extraArgs[0]: must be one flag or one value, without spaces"),
    ("a branch where a commit is needed", "staging", _set(["neurodock:models", 0, "revision"], "main"),
     "neurodock:models[0].revision: Hugging Face weights are mirrored once into the stack's bucket"),
    ("a token in a webhook's URL", "staging", _set(["neurodock:monitoring", "alerting", "receivers", 0], {
        "name": "hook", "type": "webhook", "url": "https://example.com/hook?token=ghp_" + "a1B2" * 9}),
     "neurodock:monitoring.alerting.receivers[0].url: holds a GitHub token in plain text"),
    ("a password in a webhook's URL", "staging", _set(["neurodock:monitoring", "alerting", "receivers", 0], {
        "name": "hook", "type": "webhook", "url": "https://alerts:hunter2@example.com/hook"}),
     "neurodock:monitoring.alerting.receivers[0].url: holds a password in a URL in plain text"),
    ("receiver credentials in plain text, said once", "prod",
     lambda c: c.__setitem__("neurodock:alertReceiverSecrets", {"oncall": "x"}),
     "neurodock:alertReceiverSecrets: holds a secret but is stored in plaintext"),
    ("a receiver with no recipients", "prod", _set(["neurodock:monitoring", "alerting", "receivers", 0], {
        "name": "mail", "type": "email", "to": [], "from": "a@b.co", "smarthost": "smtp.b.co:587"}),
     "neurodock:monitoring.alerting.receivers[0].to: must have at least 1 (got none)"),
    ("a maintenance window that ends before it starts", "prod", _set(["neurodock:cloud", "maintenanceWindow"], {
        "startTime": "2026-01-03T09:00:00Z", "endTime": "2026-01-03T01:00:00Z"}),
     "neurodock:cloud.maintenanceWindow.endTime: must be at least 4 hours after startTime (got -8 h)"),
    ("a runner list left empty", "staging", _set(["neurodock:deploy"], {"runsOn": []}),
     "neurodock:deploy.runsOn: must have at least 1 (got none)"),
    ("a receiver without its type", "staging", _delete(["neurodock:monitoring", "alerting", "receivers", 0, "type"]),
     "neurodock:monitoring.alerting.receivers[0].type: is required: one of 'slack', 'pagerduty', 'webhook', "
     "'email'"),
]


@pytest.mark.parametrize(("stack", "mutate", "expected"), [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_adversarial_config_exits_2_naming_the_key(write_stack, capsys, stack, mutate, expected):
    document = stack_document(stack)
    mutate(document["config"])
    assert main(["plan", "test", "--stack-file", str(write_stack(document))]) == 2
    err = capsys.readouterr().err
    assert f"\n  {expected}" in err, err
    assert "Traceback" not in err


def test_the_receiver_credentials_in_plain_text_are_not_also_checked_entry_by_entry(write_stack, capsys):
    document = stack_document("prod")
    document["config"]["neurodock:alertReceiverSecrets"] = {"oncall": "x"}
    assert main(["plan", "test", "--stack-file", str(write_stack(document))]) == 2
    assert "has no entry for receiver" not in capsys.readouterr().err


# (case, the stack file's text, what the message says)
FILES = [
    ("a misspelt config key", "confg:\n  neurodock:environment: dev\n",
     "top-level key 'confg' is not one Pulumi reads; did you mean 'config'?"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_adversarial_stack_file_exits_2_naming_the_file(tmp_path, capsys, text, expected):
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(text)
    assert main(["plan", "test", "--stack-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neurodock: {path}: {expected}"), err


def test_a_directory_given_as_the_stack_file_is_named(tmp_path, capsys):
    assert main(["plan", "test", "--stack-file", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"neurodock: --stack-file {tmp_path}: is a directory; pass a stack file")


@pytest.mark.parametrize("stack", ["dev/../prod", "../stacks/Pulumi.dev", "prod prod"])
def test_a_stack_name_that_is_a_path_is_refused(capsys, stack):
    assert main(["plan", stack]) == 2
    assert f"stack name {stack!r}: a stack name holds only letters, digits" in capsys.readouterr().err
    assert not Path(stack).exists()


def test_a_fully_qualified_stack_name_reads_its_stack_file(capsys):
    assert main(["plan", "acme/neurodock/dev", "--json"]) == 0
    assert '"stack": "acme/neurodock/dev"' in capsys.readouterr().out


# Stack files as Pulumi reads them (go-yaml v3): what YAML 1.1 would have turned into booleans, dates or errors.
def _staging_with(old: str, new: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "stacks" / "Pulumi.staging.yaml").read_text()
    assert old in text
    return text.replace(old, new)


def test_a_tag_written_no_is_text_and_planned_as_written(tmp_path, capsys):
    # Before: `country: NO` was read as false and refused with "put the value in quotes, e.g. \"false\"".
    path = tmp_path / "Pulumi.test.yaml"
    tags = "    team: ml-platform\n    country: NO\n    on-call: y\n"
    path.write_text(_staging_with("    team: ml-platform\n", tags))
    assert main(["plan", "test", "--stack-file", str(path), "--json"]) == 0
    assert '"country": "NO"' in capsys.readouterr().out


def test_a_label_written_true_is_still_a_boolean_and_says_how_to_quote_it(tmp_path, capsys):
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(_staging_with("      capacity: spot\n", "      capacity: spot\n      labels: {spot: TRUE}\n"))
    assert main(["plan", "test", "--stack-file", str(path)]) == 2
    assert ("\n  neurodock:nodePools[1].labels.spot: must be text, but YAML read the unquoted true as a boolean; put "
            "the value in quotes, e.g. \"true\" (with `pulumi config set --path`, add --type string)") in \
        capsys.readouterr().err


def test_an_unquoted_maintenance_time_is_named_with_what_pulumi_passes(tmp_path, capsys):
    # Before: exit 1, "Object of type datetime is not JSON serializable".
    text = (Path(__file__).resolve().parents[1] / "stacks" / "Pulumi.prod.yaml").read_text().replace(
        "    releaseChannel: STABLE\n", "    releaseChannel: STABLE\n    maintenanceWindow:\n"
        "      startTime: 2026-01-03T01:00:00Z\n      endTime: \"2026-01-03T09:00:00Z\"\n")
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(text)
    assert main(["plan", "test", "--stack-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert ("\n  neurodock:cloud.maintenanceWindow.startTime: must be an RFC 3339 time in UTC, e.g. "
            "'2026-01-03T01:00:00Z', but YAML read an unquoted date or time as a timestamp, which Pulumi passes on as "
            "'2026-01-03 01:00:00 +0000 UTC'; put the value in quotes") in err
    assert err.count("\n  neurodock:") == 1 and "Traceback" not in err


@pytest.mark.parametrize("value", ["2026-01-03", "!!binary aGVsbG8=", "=", "1:30"])
def test_values_pyyaml_could_not_serialise_no_longer_crash(tmp_path, capsys, value):
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(_staging_with("    team: ml-platform\n", f"    team: ml-platform\n    since: {value}\n"))
    assert main(["plan", "test", "--stack-file", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("mirror", ["not-a-url", "ftp://charts.example.com", "https://", "charts.example.com/mirror"])
def test_a_chart_mirror_that_is_not_an_http_url_is_a_usage_error(capsys, mirror):
    # Before: exit 1 after trying to fetch from it.
    with pytest.raises(SystemExit) as exited:
        main(["charts", "pull", "--mirror", mirror])
    assert exited.value.code == 2
    assert ("neurodock charts pull: error: argument --mirror: must be the http:// or https:// URL of a chart "
            f"repository, e.g. https://charts.example.com/mirror (got {mirror!r})") in capsys.readouterr().err


def test_a_chart_mirror_url_is_taken_as_given():
    from infra.cli import _mirror_url

    assert _mirror_url("https://charts.example.com/mirror") == "https://charts.example.com/mirror"
    assert _mirror_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"

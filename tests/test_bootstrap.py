"""The bootstrap project (infra/bootstrap): the state backend per cloud, planned offline under
mocks. Buckets are versioned, KMS-encrypted and closed to the public; everything holding data or
keys is protected and retained; bad config names the key and creates nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from infra.config import ConfigError
from infra.plan.engine import BOOTSTRAP_DIR, run_plan
from infra.plan.mocks import AWS_ACCOUNT_ID
from infra.plan.stackfile import load_stack_file, stack_names
from tests.conftest import of_type, one


@pytest.fixture(scope="module")
def plans():
    return {name: run_plan(load_stack_file(name, root=BOOTSTRAP_DIR)) for name in stack_names(BOOTSTRAP_DIR)}


def test_a_bootstrap_stack_ships_per_cloud(plans):
    assert set(plans) == {"aws", "gcp"}


def kept(r) -> bool:
    return bool(r.options.get("protect")) and bool(r.options.get("retainOnDelete"))


def test_aws_buckets_are_versioned_encrypted_private_tls_only_and_replicated(plans):
    plan = plans["aws"]
    buckets = of_type(plan, "aws:s3/bucket:Bucket")
    assert sorted(b.name for b in buckets) == ["neurodock-state", "neurodock-state-replica", "neurodock-weights",
                                               "neurodock-weights-replica"]
    by_name = {b.name: b for b in buckets}
    keys = {k.name: k for k in of_type(plan, "aws:kms/key:Key") + of_type(plan, "aws:kms/replicaKey:ReplicaKey")}
    assert {k.name: k.inputs["region"] for k in keys.values()} == {"neurodock-key": "us-west-2",
                                                                    "neurodock-replica-key": "us-east-2"}
    # One multi-Region key: the replica region can decrypt stack secrets when the primary is down.
    assert keys["neurodock-key"].inputs["multiRegion"] is True
    assert keys["neurodock-replica-key"].id == keys["neurodock-key"].id and keys["neurodock-key"].id.startswith("mrk-")
    for b in buckets:
        assert kept(b) and b.inputs["forceDestroy"] is False
        replica = b.name.endswith("-replica")
        assert b.inputs["region"] == ("us-east-2" if replica else "us-west-2")
    for name in by_name:
        [versioning] = [r for r in of_type(plan, "aws:s3/bucketVersioning:BucketVersioning") if r.name == name]
        assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled" and kept(versioning)
        [block] = [r for r in of_type(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
                   if r.name == name]
        assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                     "restrictPublicBuckets"))
        [sse] = [r for r in of_type(plan, "aws:s3/bucketServerSideEncryptionConfiguration:"
                                          "BucketServerSideEncryptionConfiguration") if r.name == name]
        default = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        key = keys["neurodock-replica-key" if name.endswith("-replica") else "neurodock-key"]
        assert default == {"sseAlgorithm": "aws:kms",
                           "kmsMasterKeyId": f"arn:aws:kms:{key.inputs['region']}:{AWS_ACCOUNT_ID}:key/{key.id}"}
        [policy] = [r for r in of_type(plan, "aws:s3/bucketPolicy:BucketPolicy") if r.name == name]
        [deny] = json.loads(policy.inputs["policy"])["Statement"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    for key in keys.values():
        assert kept(key) and key.inputs["deletionWindowInDays"] == 30
    assert keys["neurodock-key"].inputs["enableKeyRotation"] is True
    [alias] = of_type(plan, "aws:kms/alias:Alias")
    assert alias.inputs["targetKeyId"] == keys["neurodock-key"].id and alias.inputs["name"].startswith("alias/")
    # Replication may read the sources and write only the replicas, with each side's key.
    [policy] = of_type(plan, "aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    writes = next(st for st in statements if "s3:ReplicateObject" in st["Action"])
    assert writes["Resource"] == [f"arn:aws:s3:::{by_name[n].id}/*" for n in ("neurodock-state-replica",
                                                                              "neurodock-weights-replica")]
    # The replicas' key: encrypting, and decrypting too, which S3 Bucket Keys need to replicate at all.
    [replica_key] = [st for st in statements if st["Resource"] == keys["neurodock-replica-key"].state["arn"]]
    assert sorted(replica_key["Action"]) == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    replications = of_type(plan, "aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    assert sorted(r.inputs["rules"][0]["destination"]["bucket"] for r in replications) == sorted(
        f"arn:aws:s3:::{by_name[n].id}" for n in ("neurodock-state-replica", "neurodock-weights-replica"))


def test_gcp_buckets_are_multi_region_versioned_cmek_encrypted_and_private(plans):
    plan = plans["gcp"]
    [key] = of_type(plan, "gcp:kms/cryptoKey:CryptoKey")
    [ring] = of_type(plan, "gcp:kms/keyRing:KeyRing")
    assert ring.inputs["location"] == "europe" and kept(ring) and kept(key)
    buckets = of_type(plan, "gcp:storage/bucket:Bucket")
    assert len(buckets) == 2
    for b in buckets:
        assert kept(b) and b.inputs["location"] == "EU" and b.inputs["forceDestroy"] is False
        assert b.inputs["publicAccessPrevention"] == "enforced" and b.inputs["uniformBucketLevelAccess"] is True
        assert b.inputs["versioning"] == {"enabled": True}
        assert b.inputs["encryption"] == {"defaultKmsKeyName": key.id}
    [grant] = of_type(plan, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert grant.inputs["member"].endswith("@gs-project-accounts.iam.gserviceaccount.com")


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_outputs_are_what_pulumi_login_and_stack_init_take(plans, cloud):
    outputs = plans[cloud].outputs
    scheme = {"aws": ("s3://", "awskms://"), "gcp": ("gs://", "gcpkms://projects/neurodock-state-4821/")}[cloud]
    assert outputs["backendUrl"].startswith(scheme[0]) and outputs["weightsUrl"].startswith(scheme[0])
    assert outputs["secretsProvider"].startswith(scheme[1])


@pytest.mark.parametrize(("change", "message"), [
    ({"neurodock-bootstrap:project": None}, "neurodock-bootstrap:project: is required with cloud gcp"),
    ({"neurodock-bootstrap:replicaRegion": "us-east-1"}, "neurodock-bootstrap:replicaRegion: is for aws only"),
    ({"neurodock-bootstrap:locaton": "EU"}, "neurodock-bootstrap:locaton: unknown key; did you mean 'location'?"),
    ({"neurodock-bootstrap:noncurrentVersionDays": 0}, "neurodock-bootstrap:noncurrentVersionDays: must be "
                                                        "greater than or equal to 1"),
])
def test_bad_bootstrap_config_names_the_key_and_creates_nothing(tmp_path, change, message):
    document = yaml.safe_load((BOOTSTRAP_DIR / "stacks" / "Pulumi.gcp.yaml").read_text())
    for key, value in change.items():
        if value is None:
            document["config"].pop(key)
        else:
            document["config"][key] = value
    path = tmp_path / "Pulumi.gcp.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as caught:
        run_plan(load_stack_file("gcp", path, root=BOOTSTRAP_DIR))
    assert any(str(p).startswith(message) for p in caught.value.problems), caught.value.problems
    result = subprocess.run([sys.executable, "-m", "infra.cli", "plan", "--bootstrap", "gcp", "--stack-file",
                             str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr
    assert result.stdout == ""


def test_a_replica_in_the_same_region_is_refused(tmp_path):
    document = yaml.safe_load((BOOTSTRAP_DIR / "stacks" / "Pulumi.aws.yaml").read_text())
    document["config"]["neurodock-bootstrap:replicaRegion"] = "us-west-2"
    path = tmp_path / "Pulumi.aws.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="replicaRegion: must differ from location"):
        run_plan(load_stack_file("aws", path, root=BOOTSTRAP_DIR))


def test_a_gcp_bootstrap_created_again_adopts_the_key_ring_and_key_cloud_kms_kept(plans, monkeypatch):
    """Cloud KMS never deletes a key ring or key: a bootstrap whose state was lost (or destroyed) would fail on their
    fixed names with 409, so it imports them."""
    for kind in ("gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey"):
        assert one(plans["gcp"], kind).options["import"] is None  # the control: a first up creates them
    from infra.plan import mocks

    project = one(plans["gcp"], "gcp:kms/keyRing:KeyRing").inputs["project"]
    ring = f"projects/{project}/locations/europe/keyRings/neurodock-state"
    monkeypatch.setitem(mocks.LIVE, "gcpKeyRings", {f"projects/{project}/locations/europe": [ring]})
    monkeypatch.setitem(mocks.LIVE, "gcpCryptoKeys", {ring: [f"{ring}/cryptoKeys/pulumi-state"]})
    plan = run_plan(load_stack_file("gcp", root=BOOTSTRAP_DIR))
    assert one(plan, "gcp:kms/keyRing:KeyRing").options["import"] == ring
    assert one(plan, "gcp:kms/cryptoKey:CryptoKey").options["import"] == f"{ring}/cryptoKeys/pulumi-state"

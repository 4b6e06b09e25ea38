"""StateBackend built alone: the buckets and secrets key on AWS and on GCP from minimal Args, and one
InputPropertiesError per rule its Args break."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.state.backend import Cloud, StateBackend, StateBackendArgs
from tests.test_component_harness import build, input_errors, load

AWS = StateBackendArgs(cloud=Cloud.AWS, location="us-west-2")
GCP = StateBackendArgs(cloud=Cloud.GCP, location="EU", project="neurodock-test")


@pytest.fixture(scope="module")
def _provider_modules() -> None:
    load("pulumi_aws.kms", "pulumi_aws.s3", "pulumi_gcp.kms", "pulumi_gcp.storage")


@pytest.mark.usefixtures("_provider_modules")
def test_minimal_aws_args_build_the_buckets_and_the_key():
    built = build(lambda: StateBackend("backend", AWS))
    assert built.resources[0].type == "neurodock:state:StateBackend"
    assert {"aws:kms/key:Key", "aws:s3/bucket:Bucket"} <= built.types
    assert len(built.of_type("aws:s3/bucket:Bucket")) == 2  # state and weights


@pytest.mark.usefixtures("_provider_modules")
def test_minimal_gcp_args_build_the_buckets_and_the_key():
    built = build(lambda: StateBackend("backend", GCP))
    assert {"gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey", "gcp:storage/bucket:Bucket"} <= built.types
    assert len(built.of_type("gcp:storage/bucket:Bucket")) == 2


@pytest.mark.parametrize(("args", "expected"), [
    (replace(GCP, project=None), [("project", "StateBackendArgs.project: a GCP backend needs the project id")]),
    (replace(GCP, replica_region="europe-west1"),
     [("replica_region", "StateBackendArgs.replica_region: AWS only; on GCP choose a multi- or dual-region "
                         "location instead")]),
    (replace(AWS, replica_region="us-west-2"),
     [("replica_region", "StateBackendArgs.replica_region: must differ from location")]),
    (replace(AWS, noncurrent_version_days=0),
     [("noncurrent_version_days", "StateBackendArgs.noncurrent_version_days: must be at least 1")]),
], ids=["a GCP backend without a project is refused", "a replica region on GCP is refused",
        "a replica in the backend's own region is refused", "versions kept for no day are refused"])
def test_a_broken_backend_is_refused(args, expected):
    assert input_errors(lambda: StateBackend("backend", args)) == expected


def test_every_problem_is_reported_at_once():
    args = replace(GCP, project=None, noncurrent_version_days=0)
    assert [path for path, _ in input_errors(lambda: StateBackend("backend", args))] == [
        "project", "noncurrent_version_days"]

"""Deploys that work on EKS, round two (issue 28): a destroyed stack is created again over the control-plane log
group EKS leaves behind, the managed add-ons move with the Kubernetes version, weights readers decrypt SSE-KMS
objects through S3 only, a preview identity reads the cluster without changing it, and a teardown's orphan check
finds the volumes the EBS CSI driver made. Each test has a control: the same check where the behaviour must not
happen, or on the stack built the way that fails."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from components.cluster.base import PoolRole
from components.cluster.eks import (
    ADMIN_ACCESS_POLICY,
    MANAGED_ADDONS,
    VIEW_ACCESS_POLICY,
    EksCluster,
    EksClusterArgs,
)
from components.cluster.eks_addons import CLUSTER_TAG
from components.serving.weights_access import S3WeightsReader, S3WeightsReaderArgs
from components.versions import KUBE_PROMETHEUS_STACK
from infra.config import ConfigError, parse_config
from infra.diff import diff_plans
from infra.plan import mocks
from infra.plan.engine import BOOTSTRAP_DIR, ProgramError, run_plan
from infra.plan.stackfile import REPO_ROOT, load_stack_file
from tests.conftest import of_type, one, release_of, stack_document
from tests.live import running_eks
from tests.pools import pool_args
from tests.test_component_harness import build, input_errors, load

LOG_GROUP = "/aws/eks/neurodock-staging/cluster"
ADMIN = "arn:aws:iam::123456789012:role/platform-admins"
PREVIEW = "arn:aws:iam::123456789012:role/neurodock-preview"


def plan_of(write_stack, document):
    return run_plan(load_stack_file("test", write_stack(document)))


def addons(plan) -> dict:
    return {a.inputs["addonName"]: a for a in of_type(plan, "aws:eks/addon:Addon")}


def _actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def policy(plan, name: str) -> dict:
    [p] = [r for r in of_type(plan, "aws:iam/rolePolicy:RolePolicy") if r.name == name]
    return json.loads(p.inputs["policy"])


# -- 1. The control-plane log group survives a destroy and is adopted on re-create ------------------------------


def test_the_log_group_is_retained_created_first_and_created_when_absent(shipped_plans):
    plan = shipped_plans["staging"]
    logs = one(plan, "aws:cloudwatch/logGroup:LogGroup")
    cluster = one(plan, "aws:eks/cluster:Cluster")
    assert logs.inputs["name"] == LOG_GROUP and logs.inputs["retentionInDays"] == 90
    assert logs.options["retainOnDelete"] is True
    # The cluster still waits for it: EKS would otherwise create the group itself, keeping events forever.
    assert logs.urn in cluster.options["dependsOn"]
    # Control: nothing there (a first `pulumi up`), nothing imported.
    assert logs.options["import"] is None


def test_a_recreated_stack_adopts_the_group_it_left_with_identical_inputs(write_stack, monkeypatch, shipped_plans):
    left = one(shipped_plans["staging"], "aws:cloudwatch/logGroup:LogGroup").inputs
    # What the destroyed stack left: the group as it created it (its tags, which the provider's default tags repeat).
    monkeypatch.setitem(mocks.LIVE, "awsLogGroups", {LOG_GROUP: {"retentionInDays": left["retentionInDays"],
                                                                 "tags": left["tags"]}})
    plan = plan_of(write_stack, stack_document("staging"))
    logs = one(plan, "aws:cloudwatch/logGroup:LogGroup")
    assert logs.options["import"] == LOG_GROUP
    assert logs.inputs == left  # the import's inputs equal the group's: Pulumi refuses an import that differs
    assert logs.options["retainOnDelete"] is True
    assert not [w for w in plan.warnings if LOG_GROUP in w]
    # Control: another cluster's group is not this stack's business.
    monkeypatch.setitem(mocks.LIVE, "awsLogGroups", {"/aws/eks/other/cluster": {"retentionInDays": 90, "tags": {}}})
    assert one(plan_of(write_stack, stack_document("staging")), "aws:cloudwatch/logGroup:LogGroup").options[
        "import"] is None


def test_a_group_eks_recreated_after_an_older_destroy_is_named_with_its_fix(write_stack, monkeypatch):
    # EKS's own group: no retention, none of the stack's tags. Importing it fails on both; the warning says how.
    monkeypatch.setitem(mocks.LIVE, "awsLogGroups", {LOG_GROUP: {"retentionInDays": 0, "tags": {}}})
    plan = plan_of(write_stack, stack_document("staging"))
    [warning] = [w for w in plan.warnings if LOG_GROUP in w]
    assert f"aws logs delete-log-group --region us-east-1 --log-group-name {LOG_GROUP}" in warning
    assert f"{CLUSTER_TAG}=neurodock-staging" in warning and "never expire" in warning
    assert one(plan, "aws:cloudwatch/logGroup:LogGroup").options["import"] == LOG_GROUP


# -- 2. Managed add-ons: EKS's default for the minor, moved in place after the control plane and the nodes --------


def test_every_managed_addon_is_at_eks_default_for_the_clusters_minor(shipped_plans):
    plan = shipped_plans["staging"]
    found = addons(plan)
    assert set(found) == set(MANAGED_ADDONS)
    for name, addon in found.items():
        assert addon.inputs["addonVersion"] == mocks.EKS_ADDON_DEFAULTS[(name, "1.35")]
        assert addon.inputs["resolveConflictsOnUpdate"] == "OVERWRITE"
        assert addon.inputs["resolveConflictsOnCreate"] == "OVERWRITE"
    # The EBS CSI driver keeps its logical name and its IRSA role.
    assert found["aws-ebs-csi-driver"].name == "cluster-ebs-csi"
    assert found["aws-ebs-csi-driver"].inputs["serviceAccountRoleArn"].startswith("arn:aws:iam::")
    assert all(found[a].inputs["preserve"] is True for a in ("vpc-cni", "kube-proxy", "coredns"))
    # The stack's NetworkPolicies are enforced: the VPC CNI ignores them unless told (EKS User Guide).
    assert json.loads(found["vpc-cni"].inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert of_type(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy")  # what it enforces


def test_addon_versions_come_from_the_lookup_not_from_the_program(write_stack, monkeypatch):
    monkeypatch.setitem(mocks.LIVE, "eksAddonVersions", {("coredns", "1.35"): "v1.13.9-eksbuild.1"})
    assert addons(plan_of(write_stack, stack_document("staging")))["coredns"].inputs["addonVersion"] == \
        "v1.13.9-eksbuild.1"


def test_addons_update_after_the_control_plane_and_every_node_group(shipped_plans):
    plan = shipped_plans["staging"]
    cluster = one(plan, "aws:eks/cluster:Cluster")
    groups = {g.urn for g in of_type(plan, "aws:eks/nodeGroup:NodeGroup")}
    assert len(groups) == 2
    for addon in addons(plan).values():
        assert groups <= set(addon.options["dependsOn"]), addon.name
        assert addon.property_dependencies["clusterName"] == [cluster.urn]
    # Control: the node groups wait for the control plane (their version is the cluster's), never for an add-on.
    addon_urns = {a.urn for a in addons(plan).values()}
    for group in of_type(plan, "aws:eks/nodeGroup:NodeGroup"):
        assert cluster.urn in group.options["dependsOn"] and not addon_urns & set(group.options["dependsOn"])


def test_a_version_bump_moves_every_addon_in_place_in_the_same_up(write_stack, monkeypatch):
    def at(version: str):
        document = stack_document("staging")
        document["config"]["neurodock:environment"] = "test"
        document["config"]["neurodock:cloud"].update(kubernetesVersion=version, supportType="EXTENDED")
        return plan_of(write_stack, document)

    before = at("1.34")
    document = stack_document("staging")
    document["config"]["neurodock:environment"] = "test"
    running_eks(monkeypatch, document, "1.34")  # the running cluster
    after = at("1.35")
    for name in MANAGED_ADDONS:
        assert addons(before)[name].inputs["addonVersion"] == mocks.EKS_ADDON_DEFAULTS[(name, "1.34")]
        assert addons(after)[name].inputs["addonVersion"] == mocks.EKS_ADDON_DEFAULTS[(name, "1.35")]
    diff = {r.key.rsplit("::", 1)[-1]: r for r in diff_plans(before, after).resources}
    moved = {name for name in ("cluster-vpc-cni", "cluster-kube-proxy", "cluster-coredns", "cluster-ebs-csi")
             if name in diff}
    # CoreDNS's documented version is the same for 1.34 and 1.35; every other add-on moves, none is replaced.
    assert moved == {"cluster-vpc-cni", "cluster-kube-proxy", "cluster-ebs-csi"}
    for name in moved:
        assert {c.path for c in diff[name].changes} == {"inputs.addonVersion"} and not diff[name].replaced
    assert {c.path for c in diff["cluster-eks"].changes} == {"inputs.version"}


def test_an_unreadable_default_leaves_the_addon_where_it_is_and_says_so(write_stack, monkeypatch):
    monkeypatch.setitem(mocks.LIVE, "eksAddonVersionError", "AccessDeniedException: eks:DescribeAddonVersions")
    plan = plan_of(write_stack, stack_document("staging"))
    assert all("addonVersion" not in a.inputs for a in addons(plan).values())
    assert len([w for w in plan.warnings if "could not read the default version of the EKS add-on" in w]) == 4


# -- 3. Weights readers decrypt objects of a KMS-encrypted bucket through S3, and only that --------------------


def test_a_reader_may_decrypt_only_through_s3_for_its_bucket_and_the_mirror_may_also_encrypt(shipped_plans):
    plan = shipped_plans["staging"]
    bucket = "neurodock-staging-weights-123456789012-us-east-1"
    prefix = "hf/meta-llama/Llama-3.1-8B-Instruct/0e9e39f249a16976918f6564b8830bc894c89659"
    reader = policy(plan, "llama-3-1-8b-weights-reader-read")["Statement"]
    kms = [s for s in reader if any(a.startswith("kms:") for a in _actions(s))]
    assert kms == [{
        "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
        # The bucket may be in another region than the cluster's (an existing, replicated one): S3 in any region.
        "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": [
                          f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}/*"]}}}]
    # Control: the mirror's writer uploads (GenerateDataKey) and completes multipart uploads (Decrypt).
    writer = policy(plan, "weights-mirror-writer-read")["Statement"]
    [grant] = [s for s in writer if "kms:GenerateDataKey" in s["Action"]]
    assert grant["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert grant["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"] == [
        f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]


@pytest.fixture(scope="module")
def _aws_modules() -> None:
    load("pulumi_aws.autoscaling", "pulumi_aws.cloudwatch", "pulumi_aws.ec2", "pulumi_aws.eks", "pulumi_aws.iam",
         "pulumi_aws.kms")


READER = S3WeightsReaderArgs(source="s3://weights-bucket/models/llama", oidc_provider_arn=(
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"),
    oidc_issuer_url="https://oidc.eks.eu-west-1.amazonaws.com/id/ABC", namespace="serving", service_account="llama")


@pytest.mark.usefixtures("_aws_modules")
def test_a_known_key_is_named_and_the_buckets_region_is_the_one_s3_calls_kms_from():
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    built = build(lambda: S3WeightsReader("reader", replace(READER, kms_key_arn=key, region="eu-west-1")))
    [p] = built.of_type("aws:iam/rolePolicy:RolePolicy")
    [grant] = [s for s in json.loads(p.inputs["policy"])["Statement"] if s["Action"] == "kms:Decrypt"]
    assert grant["Resource"] == key
    assert grant["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    # Control: without a key the grant is on any key, held to S3 for this bucket by its conditions.
    built = build(lambda: S3WeightsReader("reader", replace(READER, region="eu-west-1")))
    [p] = built.of_type("aws:iam/rolePolicy:RolePolicy")
    [grant] = [s for s in json.loads(p.inputs["policy"])["Statement"] if s["Action"] == "kms:Decrypt"]
    assert grant["Resource"] == "*" and set(grant["Condition"]) == {"StringEquals", "StringLike"}


def test_the_backend_key_leaves_iam_policies_of_the_account_in_charge():
    """Readers get ``kms:Decrypt`` from their IAM role alone: the bootstrap's KMS keys set no key policy, so KMS's
    default one applies, which lets the account's IAM policies grant use of the key (KMS Developer Guide, "Default
    key policy")."""
    plan = run_plan(load_stack_file("aws", root=BOOTSTRAP_DIR))
    keys = of_type(plan, "aws:kms/key:Key") + of_type(plan, "aws:kms/replicaKey:ReplicaKey")
    assert keys and all("policy" not in k.inputs for k in keys)


# -- 4. A read-only identity for the pull-request preview ------------------------------------------------------


def test_preview_roles_get_the_view_policy_and_admins_cluster_admin(write_stack):
    document = stack_document("staging")
    document["config"]["neurodock:cloud"].update(adminRoleArns=[ADMIN], previewRoleArns=[PREVIEW])
    plan = plan_of(write_stack, document)
    associations = {a.inputs["principalArn"]: a for a in of_type(plan, "aws:eks/accessPolicyAssociation:"
                                                                        "AccessPolicyAssociation")}
    entries = {e.inputs["principalArn"]: e for e in of_type(plan, "aws:eks/accessEntry:AccessEntry")}
    assert set(entries) == set(associations) == {ADMIN, PREVIEW}
    assert associations[PREVIEW].inputs["policyArn"] == VIEW_ACCESS_POLICY \
        == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
    assert associations[PREVIEW].inputs["accessScope"] == {"type": "cluster"}
    assert entries[PREVIEW].urn in associations[PREVIEW].options["dependsOn"]
    assert associations[PREVIEW].name == "cluster-preview-neurodock-preview"
    # Control: the admin role, and only it, is cluster-admin.
    assert associations[ADMIN].inputs["policyArn"] == ADMIN_ACCESS_POLICY


def test_admin_entries_are_named_by_role_and_keep_their_positional_names_as_aliases(write_stack):
    """By position, dropping the first admin would move the second role onto the first entry (ForceNew), whose
    replacement is created while the second entry still holds that role: EKS refuses a second entry of one
    principal. Stacks whose entries were named by position adopt them through an alias."""
    other = ADMIN.replace("platform-admins", "sre")
    document = stack_document("staging")
    document["config"]["neurodock:cloud"].update(adminRoleArns=[ADMIN, other])
    plan = plan_of(write_stack, document)
    for kind in ("aws:eks/accessEntry:AccessEntry", "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        by_role = {r.inputs["principalArn"]: r for r in of_type(plan, kind)}
        assert (by_role[ADMIN].name, by_role[other].name) == ("cluster-admin-platform-admins", "cluster-admin-sre")
        assert [urn.rsplit("::", 1)[-1] for urn in by_role[other].aliases] == ["cluster-admin-1"]
    document["config"]["neurodock:cloud"].update(adminRoleArns=[other])
    entries = of_type(plan_of(write_stack, document), "aws:eks/accessEntry:AccessEntry")
    assert [e.name for e in entries] == ["cluster-admin-sre"]  # the same name as before: left alone


@pytest.mark.parametrize(("roles", "expected"), [
    ({"previewRoleArns": ["neurodock-preview"]}, "neurodock:cloud.previewRoleArns[0]: must be an IAM role ARN"),
    ({"adminRoleArns": [ADMIN], "previewRoleArns": [ADMIN]},
     f"neurodock:cloud.previewRoleArns[0]: {ADMIN} is in adminRoleArns too"),
    ({"previewRoleArns": [PREVIEW, PREVIEW]}, f"neurodock:cloud.previewRoleArns[1]: lists {PREVIEW} twice"),
    ({"previewRoleArns": [PREVIEW, PREVIEW.replace("123456789012", "210987654321")]},
     "neurodock:cloud.previewRoleArns[1]: arn:aws:iam::210987654321:role/neurodock-preview has the same role name"),
    ({"adminRoleArns": [ADMIN, ADMIN.replace("123456789012", "210987654321")]},
     "neurodock:cloud.adminRoleArns[1]: arn:aws:iam::210987654321:role/platform-admins has the same role name"),
], ids=["not an ARN", "also an admin", "listed twice", "two roles of one name", "two admins of one name"])
def test_preview_roles_are_checked_like_admin_roles(roles, expected):
    config = stack_document("staging")["config"]
    config["neurodock:cloud"].update(roles)
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    assert any(str(p).startswith(expected) for p in caught.value.problems), caught.value.problems
    # Control: distinct roles in each list pass.
    config["neurodock:cloud"].update(adminRoleArns=[ADMIN], previewRoleArns=[PREVIEW])
    assert parse_config(config).cloud.preview_role_arns == [PREVIEW]


SYSTEM = pool_args(name="system", role=PoolRole.SYSTEM, instance_types=("m6i.large",))
ARGS = EksClusterArgs(cluster_name="neurodock-test", region="us-west-2", zones=("us-west-2a", "us-west-2b"),
                      kubernetes_version="1.35", support_type="STANDARD", vpc_cidr="10.0.0.0/16",
                      public_endpoint=False, node_pools=(SYSTEM,))


@pytest.mark.parametrize(("change", "expected"), [
    ({"addon_versions": {"metrics-server": "v0.8.0-eksbuild.1"}},
     [("addon_versions", "EksClusterArgs.addon_versions names add-ons the cluster does not manage (metrics-server); "
                         "use vpc-cni, kube-proxy, coredns, aws-ebs-csi-driver")]),
    ({"admin_role_arns": (ADMIN,), "preview_role_arns": (ADMIN,)},
     [("preview_role_arns[0]", f"EksClusterArgs.preview_role_arns[0] {ADMIN} is an admin role too; a principal has "
                               "one access entry: list it in one of the two")]),
], ids=["an add-on the cluster does not manage", "a preview role that is an admin"])
def test_the_cluster_refuses_args_it_cannot_deploy(change, expected):
    assert input_errors(lambda: EksCluster("cluster", replace(ARGS, **change))) == expected


@pytest.mark.usefixtures("_aws_modules")
def test_a_cluster_built_alone_without_versions_leaves_them_to_eks():
    built = build(lambda: EksCluster("cluster", ARGS))
    found = {a.inputs["addonName"]: a for a in built.of_type("aws:eks/addon:Addon")}
    assert set(found) == set(MANAGED_ADDONS) and all("addonVersion" not in a.inputs for a in found.values())
    # Control: given versions are sent as they are.
    built = build(lambda: EksCluster("cluster", replace(ARGS, addon_versions={"kube-proxy": "v1.35.3-eksbuild.2"})))
    [proxy] = [a for a in built.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "kube-proxy"]
    assert proxy.inputs["addonVersion"] == "v1.35.3-eksbuild.2"


# -- 5. After a teardown: the orphan check finds what the EBS CSI driver made -----------------------------------


def test_the_runbooks_eks_orphan_check_filters_on_the_tag_every_driver_volume_carries(shipped_plans):
    plan = shipped_plans["staging"]
    [storage] = [r.manifest for r in plan.manifests if r.manifest["kind"] == "StorageClass"]
    tags = [v for k, v in storage["parameters"].items() if k.startswith("tagSpecification")]
    assert tags == [f"{CLUSTER_TAG}=neurodock-staging"]
    # The stack's own resources carry the same key, so one filter finds both.
    assert one(plan, "aws:eks/cluster:Cluster").inputs["tags"][CLUSTER_TAG] == "neurodock-staging"
    runbook = (REPO_ROOT / "docs" / "disaster-recovery.md").read_text()
    commands = re.findall(r"aws ec2 describe-volumes[^\n]*(?:\n +[^\n]*)*", runbook)
    assert any(f"Name=tag:{CLUSTER_TAG},Values=<cluster>" in c and "Name=status,Values=available" in c
               for c in commands), commands
    # Control: volumes made before the tag was set are found by the driver's own tag (pkg/driver/controller.go).
    assert any("Name=tag:ebs.csi.aws.com/cluster,Values=true" in c for c in commands), commands


def test_prometheus_claim_on_eks_goes_with_its_statefulset_onto_a_deleting_class(shipped_plans):
    plan = shipped_plans["staging"]
    [prometheus] = [o for o in plan.chart_objects if o.kind == "Prometheus"]
    assert prometheus.manifest["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete", "whenScaled": "Retain"}
    kps = release_of(plan, KUBE_PROMETHEUS_STACK)
    claim = kps.inputs["values"]["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    [storage] = [r.manifest for r in plan.manifests if r.manifest["kind"] == "StorageClass"]
    assert claim["storageClassName"] == storage["metadata"]["name"] and storage["reclaimPolicy"] == "Delete"


# -- 6. Node groups only in the zones that offer their instance types (EC2's own answer, read at deploy) ---------


def private_subnet_zones(plan) -> dict[str, list[str]]:
    """Each node group's subnets, as the zones of the private subnets they are."""
    zone_of = {s.id: s.inputs["availabilityZone"] for s in of_type(plan, "aws:ec2/subnet:Subnet")
               if s.name.startswith("cluster-private-")}
    return {g.name: [zone_of[i] for i in g.inputs["subnetIds"]] for g in of_type(plan, "aws:eks/nodeGroup:NodeGroup")}


def test_a_node_group_goes_only_to_the_zones_that_offer_one_of_its_types(write_stack, monkeypatch):
    monkeypatch.setitem(mocks.LIVE, "ec2Offerings", {"us-east-1": {
        "g6.2xlarge": ["us-east-1b", "us-east-1c", "us-east-1d"],
        "m7i.xlarge": ["us-east-1b"], "m6i.xlarge": ["us-east-1a", "us-east-1b", "us-east-1d"]}})
    plan = plan_of(write_stack, stack_document("staging"))
    assert private_subnet_zones(plan) == {
        "cluster-gpu-l4": ["us-east-1b", "us-east-1c"],  # the stack's zones (a, b, c) that offer g6.2xlarge
        "cluster-system": ["us-east-1a", "us-east-1b"],  # either type will do: the group launches what a zone has
    }
    [cluster] = of_type(plan, "aws:eks/cluster:Cluster")
    assert len(cluster.inputs["vpcConfig"]["subnetIds"]) == 3  # the control plane keeps every zone
    # Control: offered everywhere (or not known), every group gets every zone.
    monkeypatch.setitem(mocks.LIVE, "ec2Offerings", {})
    assert set(map(tuple, private_subnet_zones(plan_of(write_stack, stack_document("staging"))).values())) == {
        ("us-east-1a", "us-east-1b", "us-east-1c")}


def test_a_pool_no_zone_of_the_stack_offers_fails_the_plan_naming_the_zones_that_do(write_stack, monkeypatch):
    monkeypatch.setitem(mocks.LIVE, "ec2Offerings", {"us-east-1": {
        "g6.2xlarge": ["us-east-1d"], "m7i.xlarge": ["us-east-1a"], "m6i.xlarge": []}})
    with pytest.raises(ProgramError) as caught:
        plan_of(write_stack, stack_document("staging"))
    message = str(caught.value)
    assert ("node pool 'gpu-l4': no zone of us-east-1a, us-east-1b, us-east-1c offers g6.2xlarge (EC2 "
            "DescribeInstanceTypeOfferings); us-east-1's zones that do: us-east-1d") in message
    assert "'system'" not in message  # control: m7i.xlarge in us-east-1a is enough for the system pool


def test_an_unreadable_offering_places_every_group_everywhere_in_a_preview_and_says_so(write_stack, monkeypatch):
    import pulumi

    monkeypatch.setitem(mocks.LIVE, "ec2OfferingsError", "UnauthorizedOperation: ec2:DescribeInstanceTypeOfferings")
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    plan = plan_of(write_stack, stack_document("staging"))
    assert [w for w in plan.warnings if "could not read which zones of us-east-1 offer" in w]
    assert all(len(zones) == 3 for zones in private_subnet_zones(plan).values())


def test_an_unreadable_offering_fails_a_deployment_rather_than_replacing_node_groups(write_stack, monkeypatch):
    import pulumi

    monkeypatch.setitem(mocks.LIVE, "ec2OfferingsError", "UnauthorizedOperation: ec2:DescribeInstanceTypeOfferings")
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    with pytest.raises(Exception, match="needs ec2:DescribeInstanceTypeOfferings"):
        plan_of(write_stack, stack_document("staging"))


@pytest.mark.usefixtures("_aws_modules")
def test_an_existing_vpcs_subnets_are_all_used_and_never_judged():
    offered = {"m6i.large": frozenset({"us-west-2d"})}
    # Created subnets: judged, and nothing offers m6i.large in a or b.
    assert input_errors(lambda: EksCluster("cluster", replace(ARGS, instance_type_zones=offered)))[0][0] == \
        "node_pools[0].instance_types"
    # Control: an existing VPC's subnets are in zones the component does not know; each group gets all of them.
    existing = replace(ARGS, instance_type_zones=offered, existing_private_subnet_ids=("subnet-1", "subnet-2"))
    [group] = build(lambda: EksCluster("cluster", existing)).of_type("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["subnetIds"] == ["subnet-1", "subnet-2"]


# -- 5. A scale-down gives the gateway proxies their whole grace period ---------------------------------------


def test_the_autoscaler_gives_evicted_proxies_their_whole_grace_period(shipped_plans):
    """Cluster Autoscaler caps an evicted pod's grace period at --max-graceful-termination-sec (600 s unless set,
    cluster-autoscaler 1.35.1 core/scaledown/actuation/drain.go:230-236); Envoy Gateway gives a proxy its drain
    plus 300 s (v1.8.3 resource_provider.go:614-624)."""
    plan = shipped_plans["staging"]
    [proxy] = [r.manifest for r in plan.manifests if r.manifest["kind"] == "EnvoyProxy"]
    grace = int(proxy["spec"]["shutdown"]["drainTimeout"].removesuffix("s")) + 300
    assert grace > 600  # the autoscaler's default would cut it short
    [deployment] = [o.manifest for o in plan.chart_objects
                    if o.kind == "Deployment" and o.manifest["metadata"]["name"].startswith("cluster-autoscaler")]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert f"--max-graceful-termination-sec={grace}" in container["command"]


# -- Zones EKS does not take ----------------------------------------------------------------------------------


def test_a_zone_eks_refuses_in_this_account_is_refused_by_name_and_id(monkeypatch):
    """us-east-1's names map to different zones per account: the one that is use1-az3 here is refused before the VPC
    exists, with the zones that would do."""
    stack = load_stack_file("staging")
    config = run_plan(stack, render_charts=False).config  # the control: the mock account's a to c are accepted
    assert config.cloud.region == "us-east-1"
    third = config.cloud.zones[2]
    ids = {"us-east-1a": "use1-az6", "us-east-1b": "use1-az1", "us-east-1c": "use1-az2",
           "us-east-1d": "use1-az4", "us-east-1e": "use1-az3", "us-east-1f": "use1-az5"}
    ids[third], ids["us-east-1e"] = "use1-az3", ids[third]
    monkeypatch.setitem(mocks.LIVE, "awsZoneIds", {"us-east-1": ids})
    with pytest.raises(ConfigError) as caught:
        run_plan(stack, render_charts=False)
    message = str(caught.value)
    assert (f"neurodock:cloud.zones[2]: {third} is the zone use1-az3 in this account, where EKS does not put a "
            "cluster's subnets") in message
    assert "use another zone of us-east-1: us-east-1d, us-east-1e, us-east-1f" in message


def test_unreadable_zones_warn_and_plan(monkeypatch):
    from infra import live

    calls = []
    monkeypatch.setattr(live.pulumi.log, "warn", lambda message, *a, **k: calls.append(message))
    monkeypatch.setitem(mocks.LIVE, "awsZonesError", "UnauthorizedOperation: ec2:DescribeAvailabilityZones")
    assert live.aws_zone_ids("us-east-1", None) is None
    assert "could not read the availability zones of us-east-1" in calls[-1]
    assert "ec2:DescribeAvailabilityZones" in calls[-1]


# -- The cluster creator's own access entry ---------------------------------------------------------------------


def test_the_deploying_role_listed_as_admin_on_a_first_up_is_refused(write_stack, monkeypatch):
    """EKS gives the role that creates the cluster an entry of its own and takes one per principal: the stack's entry
    for it would fail with 409, after the VPC and the cluster exist."""
    document = stack_document("staging")
    document["config"]["neurodock:cloud"]["adminRoleArns"] = [PREVIEW.replace("neurodock-preview", "sre"), ADMIN]
    monkeypatch.setitem(mocks.LIVE, "awsCaller", "arn:aws:sts::123456789012:assumed-role/platform-admins/gha-4821")
    with pytest.raises(ConfigError) as caught:
        plan_of(write_stack, document)
    assert (f"neurodock:cloud.adminRoleArns[1]: {ADMIN} is the role this `pulumi up` runs as, which creates the "
            "cluster") in str(caught.value)
    # The control: another role deploys, and lists this one.
    monkeypatch.setitem(mocks.LIVE, "awsCaller", "arn:aws:sts::123456789012:assumed-role/neurodock-deploy/gha-4821")
    assert {e.inputs["principalArn"] for e in of_type(plan_of(write_stack, document),
                                                      "aws:eks/accessEntry:AccessEntry")} >= {ADMIN}


def test_a_running_cluster_s_admins_are_left_to_the_docs(write_stack, monkeypatch):
    """On a running cluster the creator is not known (the access entry data source returns no tags to tell EKS's entry
    from the stack's): the caller is not read, and the plan goes on."""
    document = stack_document("staging")
    document["config"]["neurodock:cloud"]["adminRoleArns"] = [ADMIN]
    monkeypatch.setitem(mocks.LIVE, "awsCaller", "arn:aws:sts::123456789012:assumed-role/platform-admins/gha-4821")
    running_eks(monkeypatch, document, "1.35")
    assert {e.inputs["principalArn"] for e in of_type(plan_of(write_stack, document),
                                                      "aws:eks/accessEntry:AccessEntry")} == {ADMIN}


# -- An existing VPC's DNS ----------------------------------------------------------------------------------------


def _existing_vpc_document():
    document = stack_document("staging")
    document["config"]["neurodock:cloud"].pop("vpcCidr", None)
    document["config"]["neurodock:cloud"]["existingVpc"] = {
        "vpcId": "vpc-0a1b2c3d4e5f60718", "privateSubnetIds": ["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"]}
    return document


def test_an_existing_vpc_without_dns_hostnames_is_refused_and_other_dhcp_servers_warn(write_stack, monkeypatch):
    """Nodes find the private endpoint through a Route 53 zone EKS associates with the VPC: without DNS hostnames
    they never register (EKS User Guide, network-reqs.adoc)."""
    document = _existing_vpc_document()
    assert plan_of(write_stack, document).resources  # the control: DNS on, the default DHCP options
    monkeypatch.setitem(mocks.LIVE, "awsVpcs", {"vpc-0a1b2c3d4e5f60718": {"enableDnsHostnames": False}})
    with pytest.raises(ConfigError) as caught:
        plan_of(write_stack, document)
    assert ("neurodock:cloud.existingVpc.vpcId: vpc-0a1b2c3d4e5f60718 has enableDnsHostnames off, so its nodes cannot "
            "resolve the cluster's endpoint") in str(caught.value)
    assert "aws ec2 modify-vpc-attribute --vpc-id vpc-0a1b2c3d4e5f60718 --enable-dns-hostnames" in str(caught.value)
    monkeypatch.setitem(mocks.LIVE, "awsVpcs", {"vpc-0a1b2c3d4e5f60718": {"dhcpOptionsId": "dopt-0a1b2c3d"}})
    monkeypatch.setitem(mocks.LIVE, "awsDhcpOptions", {"dopt-0a1b2c3d": ["10.1.0.10", "10.1.0.11"]})
    plan = plan_of(write_stack, document)
    assert any("10.1.0.10, 10.1.0.11, without AmazonProvidedDNS" in w for w in plan.warnings)



# -- A running cluster's VPC and zones ----------------------------------------------------------------------------


def test_a_running_cluster_s_zones_and_vpc_range_are_kept(write_stack, monkeypatch):
    """EKS keeps a cluster in its VPC and takes subnets only in the zones it was created with; in the VPC the stack
    creates, each zone's ranges follow its place in the list (network-reqs.adoc)."""
    document = stack_document("staging")
    zones = document["config"]["neurodock:cloud"]["zones"]
    running_eks(monkeypatch, document, "1.34")
    assert plan_of(write_stack, document).resources  # the control: as created
    for edited in ([*zones, "us-east-1d"], zones[:2], [zones[1], zones[0], zones[2]]):
        document["config"]["neurodock:cloud"]["zones"] = edited
        with pytest.raises(ConfigError) as caught:
            plan_of(write_stack, document)
        assert (f"neurodock:cloud.zones: the running cluster neurodock-staging was created with the zones {zones}, in "
                "that order") in str(caught.value)
        assert f"Set {zones}, or recreate the cluster" in str(caught.value)
    document["config"]["neurodock:cloud"]["zones"] = zones
    document["config"]["neurodock:cloud"]["vpcCidr"] = "10.50.0.0/16"
    with pytest.raises(ConfigError, match=r"neurodock:cloud\.vpcCidr: the running cluster neurodock-staging's VPC "
                                           r"vpc-\w+ has the range 10\.40\.0\.0/16; .* Set 10\.40\.0\.0/16"):
        plan_of(write_stack, document)


def test_a_running_cluster_in_an_existing_vpc_keeps_its_vpc_and_zones(write_stack, monkeypatch):
    document = _existing_vpc_document()
    running_eks(monkeypatch, document, "1.34")
    monkeypatch.setitem(mocks.LIVE, "awsSubnets", {**mocks.LIVE["awsSubnets"], "subnet-0f0e0d0c0b0a09081": {
        "availabilityZone": "us-east-1d", "cidrBlock": "10.1.64.0/20", "vpcId": "vpc-0a1b2c3d4e5f60718"}})
    assert plan_of(write_stack, document).resources  # the control: its subnets, in its zones
    document["config"]["neurodock:cloud"]["existingVpc"]["privateSubnetIds"][1] = "subnet-0f0e0d0c0b0a09081"
    with pytest.raises(ConfigError) as caught:
        plan_of(write_stack, document)
    assert ("neurodock:cloud.existingVpc.privateSubnetIds[1]: subnet-0f0e0d0c0b0a09081 is in us-east-1d, and EKS takes "
            "new subnets only") in str(caught.value)
    # The subnet it replaced was the cluster's only one in us-east-1b.
    assert "neurodock:cloud.existingVpc.privateSubnetIds: has no subnet in us-east-1b" in str(caught.value)
    document["config"]["neurodock:cloud"]["existingVpc"]["vpcId"] = "vpc-0123456789abcdef0"
    with pytest.raises(ConfigError, match=r"neurodock:cloud\.existingVpc\.vpcId: the running cluster "
                                           r"neurodock-staging is in vpc-0a1b2c3d4e5f60718"):
        plan_of(write_stack, document)


def test_a_running_cluster_s_unreadable_subnets_warn_and_the_plan_goes_on(write_stack, monkeypatch):
    document = stack_document("staging")
    running_eks(monkeypatch, document, "1.34")
    monkeypatch.setitem(mocks.LIVE, "awsSubnets", {})
    document["config"]["neurodock:cloud"]["zones"] = ["us-east-1a", "us-east-1b"]
    plan = plan_of(write_stack, document)
    assert any("could not read the subnet" in w and "cloud.zones is not caught" in w for w in plan.warnings)


def test_fewer_system_nodes_than_zones_warn_that_prometheus_may_find_none_in_its_volume_s_zone():
    """Prometheus's EBS volume lives in one zone; the system group spans them all (EKS User Guide,
    managed-node-groups.adoc): as many system nodes as zones keeps one in each."""
    from infra.config import config_warnings

    config = stack_document("staging")["config"]
    assert not [w for w in config_warnings(parse_config(config)) if "system node" in str(w)]  # the control: 3 of 3
    config["neurodock:nodePools"][0]["minNodes"] = 2
    [warning] = [str(w) for w in config_warnings(parse_config(config)) if "system node" in str(w)]
    assert warning.startswith("neurodock:nodePools[0].minNodes: 2 system node(s) across 3 zones")
    assert "set minNodes to at least 3" in warning

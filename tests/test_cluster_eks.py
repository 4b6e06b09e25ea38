"""EKS under mocks: hardening, GPU pools, scale from zero, storage, explicit providers."""

from __future__ import annotations

import json

import pytest

from components.versions import CLUSTER_AUTOSCALER, KUBE_PROMETHEUS_STACK
from infra.plan.engine import run_plan
from infra.plan.stackfile import load_stack_file
from tests.conftest import of_type, release_of, stack_document


@pytest.fixture(scope="module")
def plan(shipped_plans):
    return shipped_plans["staging"]


def test_secrets_are_envelope_encrypted_with_a_rotating_retained_key(plan):
    [cluster] = of_type(plan, "aws:eks/cluster:Cluster")
    [key] = of_type(plan, "aws:kms/key:Key")
    [encryption] = cluster.inputs["encryptionConfig"] if isinstance(cluster.inputs["encryptionConfig"], list) \
        else [cluster.inputs["encryptionConfig"]]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"].startswith("arn:aws:kms:us-east-1:")
    assert key.inputs["enableKeyRotation"] is True
    assert key.options["retainOnDelete"] is True


def test_every_control_plane_log_type_is_enabled_into_a_retained_group(plan):
    [cluster] = of_type(plan, "aws:eks/cluster:Cluster")
    assert set(cluster.inputs["enabledClusterLogTypes"]) == {
        "api", "audit", "authenticator", "controllerManager", "scheduler"}
    [logs] = of_type(plan, "aws:cloudwatch/logGroup:LogGroup")
    assert logs.inputs["name"] == "/aws/eks/neurodock-staging/cluster"
    assert logs.inputs["retentionInDays"] >= 90


def test_endpoint_is_private_with_a_public_allow_list(plan):
    [cluster] = of_type(plan, "aws:eks/cluster:Cluster")
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["198.51.100.10/32", "203.0.113.0/24"]
    assert cluster.inputs["accessConfig"]["authenticationMode"] == "API"


def test_private_endpoint_only_by_default(write_stack):
    document = stack_document("staging")
    del document["config"]["neurodock:cloud"]["endpoint"]
    plan = run_plan(load_stack_file("test", write_stack(document)))
    [cluster] = of_type(plan, "aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in cluster.inputs["vpcConfig"]


def test_nodes_run_in_private_subnets_of_every_zone(plan):
    subnets = {r.id: r for r in of_type(plan, "aws:ec2/subnet:Subnet")}
    private = {sid for sid, s in subnets.items() if "kubernetes.io/role/internal-elb" in s.inputs["tags"]}
    assert {subnets[s].inputs["availabilityZone"] for s in private} == {"us-east-1a", "us-east-1b", "us-east-1c"}
    for group in of_type(plan, "aws:eks/nodeGroup:NodeGroup"):
        assert set(group.inputs["subnetIds"]) == private
    assert len(of_type(plan, "aws:ec2/natGateway:NatGateway")) == 3
    assert all(s.inputs.get("mapPublicIpOnLaunch") is not True for s in subnets.values())


def test_launch_templates_require_imdsv2_with_one_hop_and_encrypted_volumes(plan):
    templates = of_type(plan, "aws:ec2/launchTemplate:LaunchTemplate")
    assert len(templates) == 2
    for t in templates:
        metadata = t.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required"
        assert metadata["httpPutResponseHopLimit"] == 1
        [device] = t.inputs["blockDeviceMappings"]
        assert device["ebs"]["encrypted"] == "true"
    gpu = next(t for t in templates if t.name.endswith("gpu-l4"))
    assert gpu.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 200


def test_gpu_pool_is_tainted_labelled_spot_and_can_scale_to_zero(plan):
    gpu = next(g for g in of_type(plan, "aws:eks/nodeGroup:NodeGroup") if g.name.endswith("gpu-l4"))
    assert gpu.inputs["amiType"] == "AL2023_x86_64_NVIDIA"
    assert gpu.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert gpu.inputs["labels"]["neurodock.io/gpu-type"] == "nvidia-l4"
    assert gpu.inputs["labels"]["neurodock.io/gpu-count"] == "1"
    assert gpu.inputs["capacityType"] == "SPOT"
    assert gpu.inputs["instanceTypes"] == ["g6.2xlarge"]
    assert gpu.inputs["scalingConfig"]["minSize"] == 0
    system = next(g for g in of_type(plan, "aws:eks/nodeGroup:NodeGroup") if g.name.endswith("system"))
    assert system.inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert "taints" not in system.inputs or system.inputs["taints"] == []


def test_autoscaler_sees_gpu_labels_taints_and_capacity_of_an_empty_pool(plan):
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in of_type(plan, "aws:autoscaling/tag:Tag")
            if "gpu-l4" in t.name}
    template = "k8s.io/cluster-autoscaler/node-template"
    assert tags[f"{template}/label/neurodock.io/gpu-type"] == "nvidia-l4"
    assert tags[f"{template}/taint/nvidia.com/gpu"] == "present:NoSchedule"
    assert tags[f"{template}/resources/nvidia.com/gpu"] == "1"
    # The tags land on the node group's own Auto Scaling group.
    gpu = next(g for g in of_type(plan, "aws:eks/nodeGroup:NodeGroup") if g.name.endswith("gpu-l4"))
    asgs = {t.inputs["autoscalingGroupName"] for t in of_type(plan, "aws:autoscaling/tag:Tag") if "gpu-l4" in t.name}
    assert len(asgs) == 1 and asgs.pop().startswith(f"eks-{gpu.id.split(':')[1]}")


def test_autoscaler_is_installed_pinned_with_a_least_privilege_irsa_role(plan):
    release = release_of(plan, CLUSTER_AUTOSCALER)
    assert release.inputs["version"] == "9.59.0"
    values = release.inputs["values"]
    assert values["autoDiscovery"]["clusterName"] == "neurodock-staging"
    role_arn = values["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    role = next(r for r in of_type(plan, "aws:iam/role:Role") if r.name == "cluster-autoscaler")
    assert role_arn.startswith("arn:aws:iam::123456789012:role/cluster-autoscaler-")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in trust["Condition"]["StringEquals"].values()
    [policy] = [p for p in of_type(plan, "aws:iam/rolePolicy:RolePolicy") if p.name.startswith("cluster-autoscaler")]
    writes = json.loads(policy.inputs["policy"])["Statement"][1]
    assert writes["Condition"] == {"StringEquals": {
        "aws:ResourceTag/k8s.io/cluster-autoscaler/neurodock-staging": "owned"}}


def test_ebs_csi_driver_and_encrypted_default_storage_class(plan):
    [addon] = [a for a in of_type(plan, "aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-ebs-csi-driver"]
    assert addon.inputs["serviceAccountRoleArn"].startswith("arn:aws:iam::")
    [storage] = [r.manifest for r in plan.manifests if r.manifest["kind"] == "StorageClass"]
    assert storage["metadata"]["name"] == "gp3"
    assert storage["provisioner"] == "ebs.csi.aws.com"
    assert storage["parameters"]["encrypted"] == "true"
    kps = release_of(plan, KUBE_PROMETHEUS_STACK)
    claim = kps.inputs["values"]["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "gp3"
    # Monitoring waits for the add-ons (the SDK expands a component dependency into its children).
    addons = next(r for r in plan.resources if r.type == "neurodock:cluster:EksAddons")
    children = {r.urn for r in plan.resources if r.parent == addons.urn}
    monitoring = next(r for r in plan.resources if r.type == "neurodock:monitoring:MonitoringStack")
    assert children and children <= set(monitoring.options["dependsOn"])


def test_kubernetes_provider_uses_aws_eks_get_token(plan):
    [cluster] = of_type(plan, "aws:eks/cluster:Cluster")
    [provider] = of_type(plan, "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]"
    from components.cluster.eks import _kubeconfig

    config = json.loads(_kubeconfig("neurodock-staging", "https://x", "Y2E=", "us-west-2"))
    assert config["users"][0]["user"]["exec"]["command"] == "aws"
    assert config["users"][0]["user"]["exec"]["args"][:3] == ["eks", "get-token", "--cluster-name"]
    assert cluster.provider.endswith("pulumi:providers:aws::aws")
    [aws] = of_type(plan, "pulumi:providers:aws")
    assert aws.inputs["region"] == "us-east-1"


def test_existing_vpc_is_used_instead_of_creating_one(write_stack):
    document = stack_document("staging")
    document["config"]["neurodock:cloud"]["existingVpc"] = {
        "vpcId": "vpc-0a1b2c3d4e5f60718", "privateSubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]}
    plan = run_plan(load_stack_file("test", write_stack(document)))
    assert not of_type(plan, "aws:ec2/vpc:Vpc") and not of_type(plan, "aws:ec2/subnet:Subnet")
    [cluster] = of_type(plan, "aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["subnetIds"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]

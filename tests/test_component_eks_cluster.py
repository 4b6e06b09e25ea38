"""EksCluster built alone: network, KMS-encrypted control plane, OIDC, node groups and IRSA roles from
minimal Args, and one InputPropertiesError per rule its Args break."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.cluster.base import PoolRole
from components.cluster.eks import EksCluster, EksClusterArgs
from tests.pools import pool_args
from tests.test_component_harness import build, input_errors, load

SYSTEM = pool_args(name="system", role=PoolRole.SYSTEM, instance_types=("m6i.large",))
ARGS = EksClusterArgs(cluster_name="neurodock-test", region="us-west-2", zones=("us-west-2a", "us-west-2b"),
                      kubernetes_version="1.34", support_type="STANDARD", vpc_cidr="10.0.0.0/16",
                      public_endpoint=False, node_pools=(SYSTEM,))


@pytest.fixture(scope="module")
def _provider_modules() -> None:
    load("pulumi_aws.autoscaling", "pulumi_aws.cloudwatch", "pulumi_aws.ec2", "pulumi_aws.eks", "pulumi_aws.iam",
         "pulumi_aws.kms")


def cluster(args: EksClusterArgs) -> EksCluster:
    return EksCluster("cluster", args)


@pytest.mark.usefixtures("_provider_modules")
def test_minimal_args_build_the_network_control_plane_and_node_group():
    built = build(lambda: cluster(ARGS))
    assert built.resources[0].type == "neurodock:cluster:EksCluster"
    assert {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway", "aws:kms/key:Key",
            "aws:eks/cluster:Cluster", "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
            "aws:ec2/launchTemplate:LaunchTemplate", "aws:eks/nodeGroup:NodeGroup",
            "aws:eks/addon:Addon"} <= built.types
    assert len(built.of_type("aws:ec2/subnet:Subnet")) == 4  # a public and a private one per zone
    [group] = built.of_type("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["instanceTypes"] == ["m6i.large"]
    [control_plane] = built.of_type("aws:eks/cluster:Cluster")
    assert control_plane.inputs["vpcConfig"]["endpointPublicAccess"] is False


@pytest.mark.usefixtures("_provider_modules")
def test_existing_subnets_need_no_second_zone_and_no_vpc():
    built = build(lambda: cluster(replace(ARGS, zones=("us-west-2a",),
                                          existing_private_subnet_ids=("subnet-0a1b2c3d4e5f67890",))))
    assert not built.of_type("aws:ec2/vpc:Vpc")


@pytest.mark.parametrize(("change", "expected"), [
    ({"zones": ("us-west-2a",)},
     [("zones", "EksClusterArgs.zones needs at least two zones (EKS requires subnets in two)")]),
    ({"public_endpoint": True},
     [("public_access_cidrs", "EksClusterArgs.public_access_cidrs is required when public_endpoint is true")]),
    ({"node_pools": (SYSTEM, pool_args(name="gpu", role=PoolRole.GPU))},
     [("node_pools[1].instance_types", "node pool 'gpu' needs instance_types")]),
    ({"api_source_cidrs": ("52.94.76.0/22",)},
     [("api_source_cidrs[0]", "EksClusterArgs.api_source_cidrs[0] 52.94.76.0/22 is not a private range: the private "
                              "endpoint is reached from inside the VPC or a network connected to it")]),
    ({"admin_role_arns": ("arn:aws:iam::123456789012:role/ops", "arn:aws:iam::210987654321:role/ops")},
     [("admin_role_arns[1]", "EksClusterArgs.admin_role_arns[1] arn:aws:iam::210987654321:role/ops has the name of "
                             "arn:aws:iam::123456789012:role/ops; give admin roles distinct names (entries are named "
                             "by role)")]),
], ids=["one zone without existing subnets is refused", "a public endpoint without an allow-list is refused",
        "a pool without instance types is refused", "a public range as an API source is refused",
        "two admin roles of one name are refused"])
def test_a_broken_cluster_is_refused(change, expected):
    assert input_errors(lambda: cluster(replace(ARGS, **change))) == expected


def test_every_problem_is_reported_at_once():
    assert [path for path, _ in input_errors(lambda: cluster(replace(ARGS, zones=(), public_endpoint=True)))] == [
        "zones", "public_access_cidrs"]


@pytest.mark.usefixtures("_provider_modules")
def test_each_api_source_range_gets_port_443_on_the_cluster_security_group():
    built = build(lambda: cluster(replace(ARGS, api_source_cidrs=("10.1.32.0/20", "100.64.0.0/16"))))
    rules = built.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert sorted(r.inputs["cidrIpv4"] for r in rules) == ["10.1.32.0/20", "100.64.0.0/16"]
    assert {(r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"]) for r in rules} == {("tcp", 443, 443)}
    assert not build(lambda: cluster(ARGS)).of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")

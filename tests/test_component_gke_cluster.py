"""GkeCluster built alone: APIs, node identity, KMS key, network and the private cluster with its pools
from minimal Args, and one InputPropertiesError per rule its Args break."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.cluster.base import PoolRole
from components.cluster.gke import GkeCluster, GkeClusterArgs
from tests.pools import pool_args
from tests.test_component_harness import build, input_errors, load

SYSTEM = pool_args(name="system", role=PoolRole.SYSTEM, instance_types=("e2-standard-4",))
ARGS = GkeClusterArgs(cluster_name="neurodock-test", project="neurodock-test", region="europe-west4",
                      zones=("europe-west4-a",), release_channel="REGULAR", subnet_cidr="10.10.0.0/20",
                      pods_cidr="10.16.0.0/14", services_cidr="10.20.0.0/20", master_cidr="172.16.0.0/28",
                      dns_endpoint=True, public_endpoint=False, deletion_protection=True, node_pools=(SYSTEM,))


@pytest.fixture(scope="module")
def _provider_modules() -> None:
    load("pulumi_gcp.compute", "pulumi_gcp.container", "pulumi_gcp.kms", "pulumi_gcp.organizations",
         "pulumi_gcp.projects", "pulumi_gcp.serviceaccount")


def cluster(args: GkeClusterArgs) -> GkeCluster:
    return GkeCluster("cluster", args)


@pytest.mark.usefixtures("_provider_modules")
def test_minimal_args_build_the_network_key_cluster_and_pool():
    built = build(lambda: cluster(ARGS))
    assert built.resources[0].type == "neurodock:cluster:GkeCluster"
    assert {"gcp:projects/service:Service", "gcp:serviceaccount/account:Account", "gcp:kms/keyRing:KeyRing",
            "gcp:kms/cryptoKey:CryptoKey", "gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork",
            "gcp:compute/routerNat:RouterNat", "gcp:container/cluster:Cluster",
            "gcp:container/nodePool:NodePool"} <= built.types
    [control_plane] = built.of_type("gcp:container/cluster:Cluster")
    assert control_plane.inputs["releaseChannel"] == {"channel": "REGULAR"}
    [subnet] = built.of_type("gcp:compute/subnetwork:Subnetwork")
    assert subnet.inputs["ipCidrRange"] == "10.10.0.0/20"


@pytest.mark.parametrize(("change", "expected"), [
    ({"public_endpoint": True},
     [("authorized_cidrs", "GkeClusterArgs.authorized_cidrs is required when public_endpoint is true")]),
    ({"node_pools": (replace(SYSTEM, instance_types=("e2-standard-4", "e2-standard-8")),)},
     [("node_pools[0].instance_types", "node pool 'system' needs exactly one machine type")]),
    ({"node_pools": (SYSTEM, pool_args(name="gpu", role=PoolRole.GPU, instance_types=("g2-standard-8",),
                                          gpu_type="nvidia-a10g", gpu_count=1))},
     [("node_pools[1].gpu_type", "node pool 'gpu': GKE has no nvidia-a10g")]),
], ids=["a public endpoint without an allow-list is refused", "a pool with two machine types is refused",
        "a GPU GKE does not offer is refused"])
def test_a_broken_cluster_is_refused(change, expected):
    assert input_errors(lambda: cluster(replace(ARGS, **change))) == expected


def test_every_problem_is_reported_at_once():
    pool = pool_args(name="gpu", role=PoolRole.GPU, gpu_type="nvidia-l40s", gpu_count=1)
    assert [path for path, _ in input_errors(lambda: cluster(replace(ARGS, public_endpoint=True,
                                                                      node_pools=(pool,))))] == [
        "authorized_cidrs", "node_pools[0].instance_types", "node_pools[0].gpu_type"]

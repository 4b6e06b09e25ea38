"""KindCluster built alone: the kind command from minimal Args, and the InputPropertiesError of a
Kubernetes version with no pinned node image."""

from __future__ import annotations

from components.cluster.base import PoolRole
from components.cluster.kind import KindCluster, KindClusterArgs
from tests.pools import pool_args
from tests.test_component_harness import build, input_errors

ARGS = KindClusterArgs(cluster_name="neurodock-test", kubernetes_version="1.33",
                       node_pools=(pool_args(name="system", role=PoolRole.SYSTEM),))


def test_minimal_args_create_the_cluster_with_kind():
    built = build(lambda: KindCluster("cluster", ARGS))
    assert built.resources[0].type == "neurodock:cluster:KindCluster"
    assert built.types == {"command:local:Command"}
    [kind] = built.of_type("command:local:Command")
    # The kubeconfig (stdout) holds the client key: only stderr is logged. An edit of the script that is not a
    # trigger runs `update`, which reads the kubeconfig again, never `create`, which kind refuses on a live cluster.
    assert kind.inputs["logging"] == "stderr"
    assert kind.inputs["update"] == f"kind get kubeconfig --name {ARGS.cluster_name}"


def test_an_existing_context_creates_nothing():
    args = KindClusterArgs(cluster_name="neurodock-test", kubernetes_version="1.33", existing_context="kind-mine")
    assert build(lambda: KindCluster("cluster", args)).types == set()


def test_a_version_without_a_pinned_node_image_is_refused():
    args = KindClusterArgs(cluster_name="neurodock-test", kubernetes_version="1.20")
    [(path, reason)] = input_errors(lambda: KindCluster("cluster", args))
    assert path == "kubernetes_version"
    assert reason == "KindClusterArgs.kubernetes_version '1.20' has no pinned kind node image; use one of 1.33"

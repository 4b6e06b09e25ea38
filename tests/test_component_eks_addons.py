"""EksAddons built alone: the gp3 StorageClass and the Cluster Autoscaler from minimal Args, and the
InputPropertiesError of a Kubernetes version with no pinned autoscaler image."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.charts import ChartSource
from components.cluster.eks_addons import EksAddons, EksAddonsArgs
from components.versions import CLUSTER_AUTOSCALER, CLUSTER_AUTOSCALER_IMAGE_TAGS
from tests.test_component_harness import build, input_errors, load

ARGS = EksAddonsArgs(autoscaler_chart=ChartSource(CLUSTER_AUTOSCALER), cluster_name="neurodock-test",
                     discovery_tags=("k8s.io/cluster-autoscaler/enabled",), region="us-west-2",
                     kubernetes_version="1.34", autoscaler_role_arn="arn:aws:iam::123456789012:role/autoscaler")


@pytest.fixture(scope="module")
def _provider_modules() -> None:
    load("pulumi_kubernetes.helm.v3", "pulumi_kubernetes.storage.v1")


@pytest.mark.usefixtures("_provider_modules")
def test_minimal_args_build_the_storage_class_and_the_autoscaler():
    built = build(lambda: EksAddons("cluster-addons", ARGS))
    assert built.resources[0].type == "neurodock:cluster:EksAddons"
    assert built.types == {"kubernetes:storage.k8s.io/v1:StorageClass", "kubernetes:helm.sh/v3:Release"}
    [release] = built.of_type("kubernetes:helm.sh/v3:Release")
    assert release.inputs["values"]["image"]["tag"] == CLUSTER_AUTOSCALER_IMAGE_TAGS["1.34"]


def test_a_version_without_a_pinned_autoscaler_is_refused():
    [(path, reason)] = input_errors(lambda: EksAddons("cluster-addons", replace(ARGS, kubernetes_version="1.20")))
    assert path == "kubernetes_version"
    assert reason == ("EksAddonsArgs.kubernetes_version '1.20' has no pinned autoscaler image; use one of "
                      f"{', '.join(sorted(CLUSTER_AUTOSCALER_IMAGE_TAGS))}")

"""GKE under mocks: private, encrypted, Workload Identity, Shielded Nodes, GPU pools and sharing."""

from __future__ import annotations

import json

import pytest

from infra.plan.engine import run_plan
from infra.plan.stackfile import load_stack_file
from tests.conftest import of_type, stack_document


@pytest.fixture(scope="module")
def plan(shipped_plans):
    return shipped_plans["prod"]


def test_cluster_is_private_vpc_native_with_dataplane_v2(plan):
    [cluster] = of_type(plan, "gcp:container/cluster:Cluster")
    private = cluster.inputs["privateClusterConfig"]
    assert private["enablePrivateNodes"] is True
    assert private["enablePrivateEndpoint"] is True
    assert private["masterIpv4CidrBlock"] == "172.16.0.0/28"
    assert cluster.inputs["networkingMode"] == "VPC_NATIVE"
    assert cluster.inputs["ipAllocationPolicy"] == {"clusterSecondaryRangeName": "pods",
                                                    "servicesSecondaryRangeName": "services"}
    assert cluster.inputs["datapathProvider"] == "ADVANCED_DATAPATH"
    [subnet] = of_type(plan, "gcp:compute/subnetwork:Subnetwork")
    assert {r["rangeName"] for r in subnet.inputs["secondaryIpRanges"]} == {"pods", "services"}
    assert subnet.inputs["privateIpGoogleAccess"] is True
    assert of_type(plan, "gcp:compute/routerNat:RouterNat")


def test_workload_identity_shielded_nodes_and_release_channel(plan):
    [cluster] = of_type(plan, "gcp:container/cluster:Cluster")
    assert cluster.inputs["workloadIdentityConfig"]["workloadPool"] == "neurodock-prod-4821.svc.id.goog"
    assert cluster.inputs["enableShieldedNodes"] is True
    assert cluster.inputs["releaseChannel"]["channel"] == "STABLE"
    for pool in of_type(plan, "gcp:container/nodePool:NodePool"):
        node = pool.inputs["nodeConfig"]
        assert node["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
        assert node["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
        assert node["metadata"]["disable-legacy-endpoints"] == "true"


def test_secrets_are_encrypted_with_cloud_kms(plan):
    [cluster] = of_type(plan, "gcp:container/cluster:Cluster")
    [key] = of_type(plan, "gcp:kms/cryptoKey:CryptoKey")
    encryption = cluster.inputs["databaseEncryption"]
    assert encryption["state"] == "ENCRYPTED"
    assert encryption["keyName"] == key.id
    assert key.options["retainOnDelete"] is True
    [grant] = of_type(plan, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert grant.inputs["member"].endswith("@container-engine-robot.iam.gserviceaccount.com")


def test_nodes_use_a_least_privilege_service_account(plan):
    # The cluster's node account; models' weights readers and the mirror have their own.
    [account] = [a for a in of_type(plan, "gcp:serviceaccount/account:Account") if a.name.startswith("cluster")]
    roles = {m.inputs["role"] for m in of_type(plan, "gcp:projects/iAMMember:IAMMember")}
    assert roles == {"roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer",
                     "roles/stackdriver.resourceMetadata.writer", "roles/artifactregistry.reader"}
    email = f"{account.inputs['accountId']}@neurodock-prod-4821.iam.gserviceaccount.com"
    assert {p.inputs["nodeConfig"]["serviceAccount"] for p in of_type(plan, "gcp:container/nodePool:NodePool")} \
        == {email}


def test_gpu_pools_have_accelerators_managed_drivers_taints_and_autoscaling(plan):
    pools = {p.inputs["namePrefix"].rstrip("-"): p.inputs for p in of_type(plan, "gcp:container/nodePool:NodePool")}
    h100 = pools["gpu-h100"]
    [accelerator] = h100["nodeConfig"]["guestAccelerators"]
    assert accelerator["type"] == "nvidia-h100-80gb" and accelerator["count"] == 8
    assert accelerator["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST"
    assert h100["nodeConfig"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert h100["nodeConfig"]["labels"]["neurodock.io/gpu-type"] == "nvidia-h100-80gb"
    assert h100["autoscaling"]["totalMaxNodeCount"] == 3
    assert "guestAccelerators" not in pools["system"]["nodeConfig"] or not pools["system"]["nodeConfig"][
        "guestAccelerators"]


def test_gpu_pool_can_scale_from_zero_on_spot(write_stack):
    document = stack_document("prod")
    pool = document["config"]["neurodock:nodePools"][1]
    pool.update(minNodes=0, capacity="spot")
    plan = run_plan(load_stack_file("test", write_stack(document)))
    l4 = next(p.inputs for p in of_type(plan, "gcp:container/nodePool:NodePool") if p.inputs["namePrefix"] == "gpu-l4-")
    assert l4["autoscaling"]["totalMinNodeCount"] == 0
    assert l4["nodeConfig"]["spot"] is True


def test_gpu_time_sharing_and_mig_are_configured_on_the_accelerator(write_stack):
    document = stack_document("prod")
    pools = document["config"]["neurodock:nodePools"]
    pools[1]["gpu"]["sharing"] = {"strategy": "timeSharing", "maxSharedClients": 4}
    pools[2]["gpu"]["sharing"] = {"strategy": "mig", "partitionSize": "3g.40gb"}
    # prod's models need whole GPUs (the config refuses them on shared ones): this is about the pools alone.
    document["config"]["neurodock:models"] = []
    document["config"]["neurodock:monitoring"]["alerting"]["routes"] = []
    plan = run_plan(load_stack_file("test", write_stack(document)))
    pools = {p.inputs["namePrefix"].rstrip("-"): p.inputs for p in of_type(plan, "gcp:container/nodePool:NodePool")}
    [l4] = pools["gpu-l4"]["nodeConfig"]["guestAccelerators"]
    assert l4["gpuSharingConfig"] == {"gpuSharingStrategy": "TIME_SHARING", "maxSharedClientsPerGpu": 4}
    [h100] = pools["gpu-h100"]["nodeConfig"]["guestAccelerators"]
    assert h100["gpuPartitionSize"] == "3g.40gb"


def test_kubeconfig_uses_the_gke_auth_plugin():
    from components.cluster.gke import _kubeconfig

    config = json.loads(_kubeconfig("c", "10.0.0.2", "Y2E="))
    assert config["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert config["clusters"][0]["cluster"]["server"] == "https://10.0.0.2"


def test_resources_use_the_stacks_gcp_provider(plan):
    [provider] = of_type(plan, "pulumi:providers:gcp")
    assert provider.inputs["project"] == "neurodock-prod-4821"
    assert provider.inputs["region"] == "europe-west4"
    gcp = [r for r in plan.resources if r.custom and r.type.startswith("gcp:")]
    assert gcp and all(r.provider == provider.urn for r in gcp)

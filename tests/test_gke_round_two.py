"""Deploys that work on GKE, round two (issue 28): each GPU pool is placed only in the stack's zones that offer its
machine (a third-party catalogue, dated, with a staleness warning), a pool no zone offers is a configuration error,
the DR diff still explains the pools' zones by the location, GPU pools never start above their minimum, the temporary
default pool runs as the stack's node account, the bootstrap enables its APIs first, and an edit GKE could only apply
by replacing the fixed-name cluster is refused against the running cluster. Each test has a control: the same check
where the behaviour must not happen, or the rule that would have failed."""

from __future__ import annotations

import dataclasses
import ipaddress
import warnings
from datetime import date, timedelta

import pytest

from components.cluster import zones
from components.cluster.base import PoolRole
from components.cluster.gke import GkeCluster, GkeClusterArgs
from components.gpu.catalog import GKE_ATTACHABLE, GKE_MACHINE_TYPES, GPU_MODELS, gke_accelerator
from infra.config import ConfigError, parse_config
from infra.diff import REPLACED_BY, diff_plans, render
from infra.plan import mocks
from infra.plan.engine import BOOTSTRAP_DIR, run_plan
from infra.plan.stackfile import load_stack_file
from tests.conftest import of_type, run_cli, stack_document
from tests.pools import pool_args
from tests.test_component_harness import build, input_errors, load

POOL = "gcp:container/nodePool:NodePool"
CLUSTER = "gcp:container/cluster:Cluster"
PROD_ZONES = ["europe-west4-a", "europe-west4-b", "europe-west4-c"]
DR_ZONES = ["europe-west1-b", "europe-west1-c", "europe-west1-d"]


def pools(plan) -> dict[str, dict]:
    return {p.inputs["namePrefix"].rstrip("-"): p.inputs for p in of_type(plan, POOL)}


# -- 1. The catalogue: dated data with its source, caveats and refresh procedure -------------------


def test_the_zone_catalogue_names_its_source_caveats_and_refresh_and_warns_when_old():
    """STYLE #24: a pytest warning (not a failure) once the data is more than 180 days old."""
    data = zones.catalogue()
    assert "NOT READ" in data["source"]["official"] and "THIRD-PARTY" in data["source"]["values"]
    assert data["caveats"] and data["refresh"] and all("gcloud compute" in v for v in data["verify"])
    read = zones.read_date()
    assert zones.stale(read + timedelta(days=zones.STALE_AFTER_DAYS)) is None
    # The control: a day later the same data is stale, and the message says how to refresh it.
    message = zones.stale(read + timedelta(days=zones.STALE_AFTER_DAYS + 1))
    assert message is not None and data["refresh"] in message
    if (now := zones.stale(date.today())) is not None:
        warnings.warn(now, stacklevel=1)


@pytest.mark.parametrize("machine", sorted(GKE_MACHINE_TYPES))
def test_every_gke_gpu_machine_neurodock_accepts_has_zones(machine):
    offered = zones.offered_zones(machine, gke_accelerator(machine, GKE_MACHINE_TYPES[machine].gpu_type))
    assert offered and all(zones.judged(z) for z in offered)


def test_n1_with_a_t4_is_placed_by_the_t4s_zones_and_a_cpu_machine_by_none():
    [(prefix, (gpu, _))] = GKE_ATTACHABLE.items()
    accelerator = GPU_MODELS[gpu].gke_accelerator
    t4 = zones.offered_zones(f"{prefix}standard-8", accelerator)
    assert t4 is not None and "europe-west1-d" in t4 and "europe-west4-a" in t4
    # Controls: the same N1 without the GPU, a CPU machine and a machine the data lacks are not judged.
    assert zones.offered_zones(f"{prefix}standard-8") is None
    assert zones.offered_zones("e2-standard-8") is None and zones.offered_zones("a9-highgpu-1g") is None
    assert zones.pool_zones("e2-standard-8", None, DR_ZONES) == tuple(DR_ZONES)


def test_the_catalogue_matches_the_research_for_the_shipped_regions():
    """/work/research/issue28.md: a3-highgpu-4g in europe-west4-b and -c only; europe-west1-d offers neither
    a3-highgpu nor g2-standard; a3-highgpu-8g is not offered in europe-west8-c, where -4g is."""
    assert zones.pool_zones("a3-highgpu-4g", None, PROD_ZONES) == ("europe-west4-b", "europe-west4-c")
    assert zones.pool_zones("g2-standard-16", None, PROD_ZONES) == tuple(PROD_ZONES)
    for machine in ("a3-highgpu-4g", "a3-highgpu-8g", "g2-standard-16"):
        assert zones.pool_zones(machine, None, DR_ZONES) == ("europe-west1-b", "europe-west1-c")
    assert "europe-west8-c" in zones.offered_zones("a3-highgpu-4g")
    assert "europe-west8-c" not in zones.offered_zones("a3-highgpu-8g")
    # AI zones are not in the data: kept, unjudged.
    assert zones.pool_zones("a3-highgpu-4g", None, ["us-central1-ai1a"]) == ("us-central1-ai1a",)


# -- 2. The accelerator type is the machine's ------------------------------------------------------


def test_the_a3_mega_takes_its_own_accelerator_type_and_the_catalogue_agrees():
    assert gke_accelerator("a3-megagpu-8g", "nvidia-h100-80gb") == "nvidia-h100-mega-80gb"
    # The control: the A3 High's H100s are the GPU model's own type.
    assert gke_accelerator("a3-highgpu-8g", "nvidia-h100-80gb") == "nvidia-h100-80gb"
    data = zones.catalogue()
    for machine, gpus in GKE_MACHINE_TYPES.items():
        entry = data["machineTypes"].get(machine) or data["machineSeries"][machine.rsplit("-", 1)[0]]
        assert gke_accelerator(machine, gpus.gpu_type) == entry["accelerator"], machine


@pytest.fixture(scope="module")
def _provider_modules() -> None:
    load("pulumi_gcp.compute", "pulumi_gcp.container", "pulumi_gcp.kms", "pulumi_gcp.organizations",
         "pulumi_gcp.projects", "pulumi_gcp.serviceaccount")


SYSTEM = pool_args(name="system", role=PoolRole.SYSTEM, instance_types=("e2-standard-4",), min_nodes=3)
ARGS = GkeClusterArgs(cluster_name="neurodock-test", project="neurodock-test", region="europe-west4",
                      zones=tuple(PROD_ZONES), release_channel="REGULAR", subnet_cidr="10.10.0.0/20",
                      pods_cidr="10.16.0.0/14", services_cidr="10.20.0.0/20", master_cidr="172.16.0.0/28",
                      dns_endpoint=True, public_endpoint=False, deletion_protection=True, node_pools=(SYSTEM,))


def _gpu_pool(machine: str, count: int, **fields):
    return pool_args(name="gpu", role=PoolRole.GPU, instance_types=(machine,), gpu_type="nvidia-h100-80gb",
                     gpu_count=count, **fields)


@pytest.mark.usefixtures("_provider_modules")
def test_a_pool_s_guest_accelerator_is_its_machine_s():
    args = dataclasses.replace(ARGS, node_pools=(SYSTEM, _gpu_pool("a3-megagpu-8g", 8),
                                                 dataclasses.replace(_gpu_pool("a3-highgpu-4g", 4), name="high")))
    built = {p.inputs["namePrefix"]: p.inputs for p in build(lambda: GkeCluster("cluster", args)).of_type(POOL)}
    assert [a["type"] for a in built["gpu-"]["nodeConfig"]["guestAccelerators"]] == ["nvidia-h100-mega-80gb"]
    assert [a["type"] for a in built["high-"]["nodeConfig"]["guestAccelerators"]] == ["nvidia-h100-80gb"]
    # Placement follows the machine too: neither A3 in europe-west4-a; the CPU pool everywhere.
    assert built["gpu-"]["nodeLocations"] == built["high-"]["nodeLocations"] == ["europe-west4-b", "europe-west4-c"]
    assert built["system-"]["nodeLocations"] == PROD_ZONES


@pytest.mark.usefixtures("_provider_modules")
def test_a3_ultra_nodes_boot_from_hyperdisk_and_the_others_from_persistent_disk():
    """A3 Ultra takes no Persistent Disk: Hyperdisk Balanced is its only boot disk (Compute Engine docs,
    accelerator-optimized machines, A3 Ultra limitations)."""
    ultra = pool_args(name="ultra", role=PoolRole.GPU, instance_types=("a3-ultragpu-8g",), gpu_type="nvidia-h200-141gb",
                      gpu_count=8)
    args = dataclasses.replace(ARGS, node_pools=(SYSTEM, ultra, _gpu_pool("a3-highgpu-8g", 8)))
    built = {p.inputs["namePrefix"]: p.inputs for p in build(lambda: GkeCluster("cluster", args)).of_type(POOL)}
    assert built["ultra-"]["nodeConfig"]["diskType"] == "hyperdisk-balanced"
    assert built["gpu-"]["nodeConfig"]["diskType"] == built["system-"]["nodeConfig"]["diskType"] == "pd-balanced"


def test_the_component_refuses_a_gpu_pool_no_zone_offers():
    only_a = dataclasses.replace(ARGS, zones=("europe-west4-a",), node_pools=(SYSTEM, _gpu_pool("a3-highgpu-4g", 4)))
    [(path, reason)] = input_errors(lambda: GkeCluster("cluster", only_a))
    assert path == "node_pools[1].instance_types"
    assert reason.startswith("node pool 'gpu': no zone of europe-west4-a offers a3-highgpu-4g (THIRD-PARTY")


@pytest.mark.usefixtures("_provider_modules")
def test_the_component_accepts_the_same_pool_where_a_zone_offers_it():
    # The control of the test above: one offering zone is enough.
    args = dataclasses.replace(ARGS, zones=("europe-west4-a", "europe-west4-c"),
                               node_pools=(SYSTEM, _gpu_pool("a3-highgpu-4g", 4)))
    [gpu] = [p for p in build(lambda: GkeCluster("cluster", args)).of_type(POOL) if p.name == "cluster-gpu"]
    assert gpu.inputs["nodeLocations"] == ["europe-west4-c"]


# -- 3. Placement of the shipped stacks, and the configuration error -------------------------------


def test_prod_and_prod_dr_place_gpu_pools_only_where_their_machines_are_offered(shipped_plans):
    prod, dr = pools(shipped_plans["prod"]), pools(shipped_plans["prod-dr"])
    assert prod["gpu-h100"]["nodeLocations"] == ["europe-west4-b", "europe-west4-c"]
    assert prod["gpu-l4"]["nodeLocations"] == PROD_ZONES
    assert dr["gpu-h100"]["nodeLocations"] == dr["gpu-l4"]["nodeLocations"] == ["europe-west1-b", "europe-west1-c"]
    # The control: the CPU system pool keeps every zone of the stack, europe-west1-d included.
    assert prod["system"]["nodeLocations"] == PROD_ZONES and dr["system"]["nodeLocations"] == DR_ZONES
    [cluster] = of_type(shipped_plans["prod-dr"], CLUSTER)
    assert cluster.inputs["nodeLocations"] == DR_ZONES


def _with_zones(stack: str, zone_list: list[str]) -> dict:
    config = stack_document(stack)["config"]
    config["neurodock:cloud"]["zones"] = zone_list
    return config


def test_a_pool_no_zone_of_the_stack_offers_is_a_config_error_naming_the_offering_zones():
    with pytest.raises(ConfigError) as caught:
        parse_config(_with_zones("prod-dr", ["europe-west1-d"]))
    problems = [str(p) for p in caught.value.problems]
    assert ("neurodock:nodePools[2].instanceTypes[0]: pool 'gpu-h100': no zone of the stack (europe-west1-d) offers "
            "a3-highgpu-8g; europe-west1's zones that do: europe-west1-b, europe-west1-c (THIRD-PARTY catalogue "
            "components/cluster/data/gce_gpu_zones.json, read 2026-12-06") in "\n".join(problems)
    assert any(p.startswith("neurodock:nodePools[1].instanceTypes[0]: pool 'gpu-l4': no zone of the stack") and
               "g2-standard-16" in p for p in problems)
    assert not any("nodePools[0]" in p for p in problems)  # the CPU system pool runs in any zone
    # The control: one offering zone beside europe-west1-d is enough.
    parse_config(_with_zones("prod-dr", ["europe-west1-c", "europe-west1-d"]))


def test_prod_in_europe_west4_a_alone_names_b_and_c_for_its_h100s(write_stack):
    config = _with_zones("prod", ["europe-west4-a"])
    document = stack_document("prod")
    document["config"] = config
    result = run_cli("plan", "prod", "--stack-file", str(write_stack(document, "prod")))
    assert result.returncode == 2, result.stderr
    assert ("pool 'gpu-h100': no zone of the stack (europe-west4-a) offers a3-highgpu-8g; europe-west4's zones that "
            "do: europe-west4-b, europe-west4-c") in result.stderr
    assert "gpu-l4" not in result.stderr  # L4s are offered in europe-west4-a: the control


# -- 4. The DR diff explains the pools' zones by the location --------------------------------------


def test_the_dr_diff_classes_derived_pool_zones_as_location(shipped_plans):
    prod, dr = shipped_plans["prod"], shipped_plans["prod-dr"]
    diff = diff_plans(prod, dr)
    assert diff.other == []
    changed = {r.key.rsplit("::", 1)[-1]: r for r in diff.resources}
    h100 = {c.path: c for c in changed["cluster-gpu-h100"].changes}
    # Substitution alone would read europe-west4-b as europe-west1-c: the rule explains europe-west1-b.
    first = h100["inputs.nodeLocations[0]"]
    assert (first.old, first.new, first.location) == ("europe-west4-b", "europe-west1-b", True)
    l4 = {c.path: c for c in [*changed["cluster-gpu-l4"].changes, *changed["cluster-gpu-l4"].ignored]}
    assert l4["inputs.nodeLocations"].location and l4["inputs.initialNodeCount"].location
    # The control: the same pool placed anywhere else in prod-dr is a difference the location does not explain.
    def misplaced(r):
        if r.type == POOL and r.inputs["namePrefix"] == "gpu-h100-":
            return dataclasses.replace(r, inputs={**r.inputs, "nodeLocations": ["europe-west1-d"]})
        return r
    moved = dataclasses.replace(dr, resources=[misplaced(r) for r in dr.resources])
    [other] = diff_plans(prod, moved).other
    assert other.key.endswith("::cluster-gpu-h100")
    assert [c.path for c in other.changes if not c.location] == ["inputs.nodeLocations"]


# -- 5. GPU pools never start above their minimum ---------------------------------------------------


@pytest.mark.parametrize("stack", ["prod", "prod-dr"])
def test_gpu_pools_start_at_most_at_their_minimum_and_exactly_where_the_zones_divide_it(shipped_plans, stack):
    by_name = {p.name: p for p in shipped_plans[stack].config.node_pools}
    for name, pool in pools(shipped_plans[stack]).items():
        count, minimum = len(pool["nodeLocations"]), pool["autoscaling"]["totalMinNodeCount"]
        total = pool["initialNodeCount"] * count
        if by_name[name].role == "gpu":
            assert total <= minimum, (stack, name)
            assert total == minimum or minimum % count, (stack, name)
        else:
            assert total >= minimum, (stack, name)  # add-ons have nodes as soon as the cluster exists
    # prod-dr's L4 pool: 2 zones divide its minimum of 2, one node each.
    if stack == "prod-dr":
        assert pools(shipped_plans[stack])["gpu-l4"]["initialNodeCount"] == 1


def test_the_former_ceiling_rule_would_have_started_prods_l4_pool_above_its_minimum():
    # The control of the test above: ceil(2 / 3 zones) = 1 per zone is 3 L4 nodes for a minimum of 2.
    assert zones.initial_nodes_per_zone(gpu=False, min_nodes=2, zone_count=3) * 3 == 3
    assert zones.initial_nodes_per_zone(gpu=True, min_nodes=2, zone_count=3) == 0
    assert zones.initial_nodes_per_zone(gpu=True, min_nodes=4, zone_count=2) == 2


def test_raising_a_gpu_minimum_moves_the_initial_count_only_as_an_ignored_change(write_stack):
    """initialNodeCount is ForceNew and in the pool's ignoreChanges: a running pool keeps its size, so the diff
    keeps that change apart from what `pulumi up` would send."""
    document = stack_document("prod")
    before = run_plan(load_stack_file("prod", write_stack(document, "prod")), render_charts=False)
    document["config"]["neurodock:nodePools"][1]["minNodes"] = 3
    after = run_plan(load_stack_file("prod", write_stack(document, "prod")), render_charts=False)
    [pool] = diff_plans(before, after).resources
    assert [c.path for c in pool.changes] == ["inputs.autoscaling.totalMinNodeCount"]
    assert [(c.path, c.old, c.new) for c in pool.ignored] == [("inputs.initialNodeCount", 0, 1)]
    assert "ignoreChanges: a running stack keeps its value" in render(diff_plans(before, after))


# -- 6. The temporary default pool runs as the stack's node account --------------------------------


def test_the_default_pool_uses_the_node_account_and_the_cluster_waits_for_it_and_its_roles(shipped_plans):
    plan = shipped_plans["prod"]
    [cluster] = of_type(plan, CLUSTER)
    [account] = [a for a in of_type(plan, "gcp:serviceaccount/account:Account") if a.name == "cluster-nodes"]
    node = cluster.inputs["nodeConfig"]
    assert node["serviceAccount"] == f"{account.inputs['accountId']}@neurodock-prod-4821.iam.gserviceaccount.com"
    assert node["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    # The control: the same account the node pools run as, and not the project's default compute account.
    assert {p["nodeConfig"]["serviceAccount"] for p in pools(plan).values()} == {node["serviceAccount"]}
    assert "-compute@developer.gserviceaccount.com" not in node["serviceAccount"]
    roles = [m.urn for m in of_type(plan, "gcp:projects/iAMMember:IAMMember") if m.name.startswith("cluster-nodes-")]
    assert len(roles) == 5 and {account.urn, *roles} <= set(cluster.dependencies)
    assert cluster.options["ignoreChanges"] == ["nodeConfig", "initialNodeCount"]


# -- 7. The bootstrap enables its APIs before using them -------------------------------------------


def test_the_gcp_bootstrap_enables_kms_and_storage_before_the_key_ring_grant_and_buckets():
    plan = run_plan(load_stack_file("gcp", root=BOOTSTRAP_DIR))
    services = {s.inputs["service"]: s for s in of_type(plan, "gcp:projects/service:Service")}
    assert set(services) == {"cloudkms.googleapis.com", "storage.googleapis.com"}
    assert all(s.inputs["disableOnDestroy"] is False and s.dependencies == [] for s in services.values())
    kms, storage = services["cloudkms.googleapis.com"].urn, services["storage.googleapis.com"].urn
    [ring] = of_type(plan, "gcp:kms/keyRing:KeyRing")
    [key] = of_type(plan, "gcp:kms/cryptoKey:CryptoKey")
    [grant] = of_type(plan, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert kms in ring.dependencies and ring.urn in key.dependencies
    # The storage agent's lookup waits for Storage's API, and the grant made from it with it.
    assert storage in grant.dependencies
    for bucket in of_type(plan, "gcp:storage/bucket:Bucket"):
        assert {storage, grant.urn, key.urn} <= set(bucket.dependencies)
    # The control: the AWS backend has no Google API to enable.
    assert not of_type(run_plan(load_stack_file("aws", root=BOOTSTRAP_DIR)), "gcp:projects/service:Service")


def test_a_gke_stack_enables_storage_before_its_weights_bucket(write_stack):
    """The stack's own weights bucket (no neurodock:weightsBucket) is a GCS bucket: Storage's API is on by default only
    in projects made with the console or gcloud, so the cluster's APIs include it and the bucket waits for them."""
    from tests.conftest import plan_with

    plan = plan_with(write_stack, "prod", lambda c: c.pop("neurodock:weightsBucket"))
    services = {s.inputs["service"]: s.urn for s in of_type(plan, "gcp:projects/service:Service")}
    assert "storage.googleapis.com" in services
    [component] = [r for r in plan.resources if r.type == "neurodock:serving:MirrorBucket"]
    [bucket] = of_type(plan, "gcp:storage/bucket:Bucket")
    # The bucket is the component's child, and the component waits for the cluster component's children: the API
    # enablements, the storage one among them.
    assert bucket.parent == component.urn
    assert services["storage.googleapis.com"] in component.options["dependsOn"]
    [storage] = [r for r in plan.resources if r.urn == services["storage.googleapis.com"]]
    assert storage.inputs["disableOnDestroy"] is False and storage.inputs["project"] == "neurodock-prod-4821"


# -- 8. An edit that would replace the fixed-name cluster is refused -------------------------------

RUNNING = "projects/neurodock-prod-4821/locations/europe-west4/clusters/neurodock-prod"



def _prod_at(write_stack, version: str, channel: str = "STABLE"):
    document = stack_document("prod")
    document["config"]["neurodock:cloud"].update(kubernetesVersion=version, releaseChannel=channel)
    return run_plan(load_stack_file("prod", write_stack(document, "prod")), render_charts=False)


def test_a_version_the_release_channel_does_not_offer_is_refused(write_stack, monkeypatch):
    """A minor comes to Rapid, then Regular, then Stable: GKE's server config lists each channel's valid versions."""
    monkeypatch.setitem(mocks.LIVE, "gkeChannelVersions", {"RAPID": ["1.35", "1.36"], "REGULAR": ["1.35", "1.36"],
                                                          "STABLE": ["1.35"]})
    assert of_type(_prod_at(write_stack, "1.35"), CLUSTER)  # the control: Stable offers 1.35
    assert of_type(_prod_at(write_stack, "1.36", "REGULAR"), CLUSTER)
    with pytest.raises(ConfigError) as caught:
        _prod_at(write_stack, "1.36")
    assert ("neurodock:cloud.kubernetesVersion: GKE's STABLE channel does not offer 1.36 in europe-west4 (the channels "
            "that offer it: RAPID, REGULAR); set cloud.releaseChannel to a channel that does") in str(caught.value)
    # A running cluster GKE already moved to 1.36 keeps its setting: it is a floor, not checked again.
    moved = {**running_prod()[RUNNING], "masterVersion": "1.36.1-gke.1"}
    monkeypatch.setitem(mocks.LIVE, "gkeClusters", {RUNNING: moved})
    assert of_type(_prod_at(write_stack, "1.36"), CLUSTER)
    # A cluster that could not be read is not taken for a new one: the check is skipped, with the warning.
    from infra import live

    def denied(**_):
        raise Exception("googleapi: Error 403: Required \"container.clusters.get\" permission(s), forbidden")

    monkeypatch.setattr(live.gcp.container, "get_cluster", denied)
    plan = _prod_at(write_stack, "1.36")
    assert any("could not read the GKE cluster neurodock-prod" in w for w in plan.warnings)


def test_moving_a_running_stack_to_another_region_is_refused(write_stack, monkeypatch):
    """The network is global and the node subnet regional, both named after the cluster: the subnet's region is where
    the stack runs."""
    network = "projects/neurodock-prod-4821/global/networks/neurodock-prod"
    monkeypatch.setitem(mocks.LIVE, "gcpNetworks", {
        network: ["projects/neurodock-prod-4821/regions/europe-west4/subnetworks/neurodock-prod-nodes"]})
    assert of_type(run_plan(load_stack_file("prod"), render_charts=False), CLUSTER)  # the control: still there
    document = stack_document("prod")
    document["config"]["neurodock:cloud"].update(
        region="europe-west1", zones=["europe-west1-b", "europe-west1-c", "europe-west1-d"])
    with pytest.raises(ConfigError) as caught:
        run_plan(load_stack_file("prod", write_stack(document, "prod")), render_charts=False)
    assert ("neurodock:cloud.region: the stack's cluster neurodock-prod runs in europe-west4 (its node subnet "
            "neurodock-prod-nodes is there), and GKE never moves a cluster to another region: set europe-west4") in (
        str(caught.value))

def running_prod(*, master_cidr="172.16.0.0/28", pods_cidr="10.16.0.0/14", services_cidr="10.20.0.0/20",
                 datapath="ADVANCED_DATAPATH") -> dict:
    """prod's running cluster as ``gcp.container.get_cluster`` answers (camelCase; the provider reads these from
    the cluster's networkConfig, privateClusterConfig and ipAllocationPolicy: resource_container_cluster.go)."""
    return {RUNNING: {
        "network": "projects/neurodock-prod-4821/global/networks/neurodock-prod",
        "subnetwork": "projects/neurodock-prod-4821/regions/europe-west4/subnetworks/neurodock-prod-nodes",
        "datapathProvider": datapath,
        "privateClusterConfigs": [{"enablePrivateNodes": True, "enablePrivateEndpoint": True,
                                   "masterIpv4CidrBlock": master_cidr, "privateEndpoint": "172.16.0.2"}],
        "ipAllocationPolicies": [{"clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services",
                                  "clusterIpv4CidrBlock": pods_cidr, "servicesIpv4CidrBlock": services_cidr,
                                  "stackType": "IPV4"}],
        "masterVersion": "1.35.6-gke.1250000",
    }}


def test_a_master_cidr_edit_of_the_running_cluster_is_refused_with_the_way_out(monkeypatch):
    monkeypatch.setitem(mocks.LIVE, "gkeClusters", running_prod(master_cidr="172.16.0.16/28"))
    with pytest.raises(ConfigError) as caught:
        run_plan(load_stack_file("prod"), render_charts=False)
    message = str(caught.value)
    assert ("neurodock:cloud.masterCidr: the running cluster neurodock-prod was created with 172.16.0.16/28 as its "
            "control plane's range, which GKE cannot change in place") in message
    assert "Set it back to 172.16.0.16/28" in message and "docs/disaster-recovery.md" in message
    # The control: the running cluster as the stack describes it plans as before.
    monkeypatch.setitem(mocks.LIVE, "gkeClusters", running_prod())
    assert of_type(run_plan(load_stack_file("prod"), render_charts=False), CLUSTER)


def test_pod_range_and_datapath_edits_are_refused_too(monkeypatch):
    monkeypatch.setitem(mocks.LIVE, "gkeClusters", running_prod(pods_cidr="10.32.0.0/14", datapath="LEGACY_DATAPATH"))
    with pytest.raises(ConfigError) as caught:
        run_plan(load_stack_file("prod"), render_charts=False)
    message = str(caught.value)
    assert "neurodock:cloud.podsCidr: the running cluster neurodock-prod was created with 10.32.0.0/14" in message
    assert "neurodock:cloud: the running cluster neurodock-prod has datapath LEGACY_DATAPATH" in message
    assert "masterCidr" not in message and "servicesCidr" not in message  # the unchanged ones: the control


def test_a_missing_cluster_plans_a_create_and_an_unreadable_one_warns(monkeypatch):
    from infra import live

    # No cluster of that name: the shipped plans (LIVE empty) are the control. An unreadable one warns.
    calls = []
    monkeypatch.setattr(live.pulumi.log, "warn", lambda message, *a, **k: calls.append(message))

    def denied(**_):
        raise Exception("googleapi: Error 403: Required \"container.clusters.get\" permission(s), forbidden")

    monkeypatch.setattr(live.gcp.container, "get_cluster", denied)
    assert live.gke_cluster("p", "europe-west4", "neurodock-prod", None) is live.UNREAD
    assert calls and "could not read the GKE cluster neurodock-prod" in calls[0]

    def missing(**_):
        raise Exception(f"invoke failed: {RUNNING} not found")

    calls.clear()
    monkeypatch.setattr(live.gcp.container, "get_cluster", missing)
    assert live.gke_cluster("p", "europe-west4", "neurodock-prod", None) is None and calls == []

    def disabled(**_):  # a new project: the stack enables GKE's API itself, so no cluster can exist yet
        raise Exception("googleapi: Error 403: Kubernetes Engine API has not been used in project 123 before or it is "
                        "disabled, SERVICE_DISABLED")

    monkeypatch.setattr(live.gcp.container, "get_cluster", disabled)
    assert live.gke_cluster("p", "europe-west4", "neurodock-prod", None) is None and calls == []


def test_what_the_live_check_compares_is_what_the_diff_marks_as_replacing():
    """terraform-provider-google resource_container_cluster.go at e03b7622: the compared inputs are ForceNew;
    enable_private_nodes is updated in place (the control)."""
    forcing = REPLACED_BY[CLUSTER]
    for path in ("inputs.privateClusterConfig.masterIpv4CidrBlock", "inputs.datapathProvider", "inputs.network",
                 "inputs.subnetwork", "inputs.ipAllocationPolicy", "inputs.name", "inputs.location"):
        assert path in forcing, path
    assert "inputs.privateClusterConfig.enablePrivateNodes" not in forcing


SUBNET = "projects/neurodock-prod-4821/regions/europe-west4/subnetworks/neurodock-prod-nodes"


def test_a_subnet_range_may_widen_and_any_other_edit_is_refused(monkeypatch):
    """Google Cloud widens a subnet's primary range in place and replaces the subnet for any other edit, under its
    fixed name, beneath the running cluster."""
    monkeypatch.setitem(mocks.LIVE, "gkeClusters", running_prod())
    stack = load_stack_file("prod")
    shipped = ipaddress.ip_network(run_plan(stack, render_charts=False).config.cloud.subnet_cidr)
    narrower = next(shipped.subnets(prefixlen_diff=1))
    monkeypatch.setitem(mocks.LIVE, "gcpSubnets", {SUBNET: {"ipCidrRange": str(narrower)}})
    assert of_type(run_plan(stack, render_charts=False), CLUSTER)  # the control: the shipped range widens it
    wider = shipped.supernet()
    monkeypatch.setitem(mocks.LIVE, "gcpSubnets", {SUBNET: {"ipCidrRange": str(wider)}})
    with pytest.raises(ConfigError) as caught:
        run_plan(stack, render_charts=False)
    message = str(caught.value)
    assert (f"neurodock:cloud.subnetCidr: the running cluster neurodock-prod's node subnet neurodock-prod-nodes "
            f"has the range {wider}") in message
    assert f"Set {wider}, or a wider range that contains it" in message and "docs/disaster-recovery.md" in message
    # The same size elsewhere is no widening either.
    moved = ipaddress.ip_network((int(shipped.network_address) + shipped.num_addresses, shipped.prefixlen))
    monkeypatch.setitem(mocks.LIVE, "gcpSubnets", {SUBNET: {"ipCidrRange": str(moved)}})
    with pytest.raises(ConfigError, match=rf"neurodock:cloud\.subnetCidr: .* {shipped} does not contain {moved}"):
        run_plan(stack, render_charts=False)


def test_an_unreadable_subnet_or_key_ring_list_warns_and_a_disabled_api_does_not(monkeypatch):
    from infra import live

    calls = []
    monkeypatch.setattr(live.pulumi.log, "warn", lambda message, *a, **k: calls.append(message))
    assert live._subnet_cidr("p", "europe-west4", "neurodock-prod-nodes", None) is None  # LIVE has none: not found
    assert calls and "could not read the subnet neurodock-prod-nodes" in calls[-1]

    calls.clear()
    denied = "googleapi: Error 403: Permission 'cloudkms.keyRings.list' denied on resource"
    monkeypatch.setitem(mocks.LIVE, "gcpKeyRingsError", denied)
    assert run_plan(load_stack_file("prod-dr"), render_charts=False)
    [warning] = [c for c in calls if "key rings" in c]
    assert "could not list the Cloud KMS key rings of neurodock-prod-dr-4821/europe-west1" in warning
    assert "neurodock-prod-secrets" in warning and "409" in warning

    calls.clear()
    monkeypatch.setitem(mocks.LIVE, "gcpKeyRingsError",
                        "googleapi: Error 403: Cloud Key Management Service (KMS) API has not been used in project "
                        "4821 before or it is disabled. SERVICE_DISABLED")
    assert run_plan(load_stack_file("prod-dr"), render_charts=False)
    assert not [c for c in calls if "key rings" in c]

"""GPU enablement: the device plugin (not on GKE), the DCGM exporter, and GPU readiness ordering."""

from __future__ import annotations

import pytest

from components.cluster.base import GpuSharing, PoolFacts, PoolRole, SharingStrategy
from components.gpu.device_plugin import plugin_configs
from components.versions import KUBE_PROMETHEUS_STACK
from infra.plan.engine import run_plan
from infra.plan.stackfile import load_stack_file
from tests.conftest import model_servers, of_type, plan_in, release_of, stack_document


def manifests(plan, kind, namespace=None):
    return [r.manifest for r in plan.manifests if r.manifest["kind"] == kind
            and (namespace is None or r.manifest["metadata"].get("namespace") == namespace)]


@pytest.mark.parametrize(("stack", "plugin"), [("dev", True), ("staging", True), ("prod", False)])
def test_device_plugin_everywhere_but_gke_and_dcgm_everywhere(shipped_plans, stack, plugin):
    plan = shipped_plans[stack]
    assert bool(manifests(plan, "DaemonSet", "nvidia-device-plugin")) is plugin
    assert len(manifests(plan, "DaemonSet", "nvidia-dcgm-exporter")) == 1


def test_device_plugin_runs_only_on_real_gpu_nodes_as_a_critical_node_agent(shipped_plans):
    [ds] = manifests(shipped_plans["staging"], "DaemonSet", "nvidia-device-plugin")
    pod = ds["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "neurodock.io/gpu-type", "operator": "Exists"} in term["matchExpressions"]
    assert {"key": "neurodock.io/gpu-backed", "operator": "NotIn", "values": ["false"]} in term["matchExpressions"]
    assert {"key": "neurodock.io/pool", "operator": "In", "values": ["gpu-l4"]} in term["matchExpressions"]
    [container] = pod["containers"]
    assert container["image"].startswith("nvcr.io/nvidia/k8s-device-plugin:v")
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    [ns] = [n for n in manifests(shipped_plans["staging"], "Namespace")
            if n["metadata"]["name"] == "nvidia-device-plugin"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_kind_marks_its_gpu_stand_ins_so_agents_stay_off_them(shipped_plans):
    plan = shipped_plans["dev"]
    [command] = of_type(plan, "command:local:Command")
    assert "neurodock.io/gpu-backed: 'false'" in command.inputs["stdin"]


def pool(name, sharing=None):
    return PoolFacts(name=name, role=PoolRole.GPU, gpu_type="nvidia-l4", gpu_count=1, gpu_memory_gib=22,
                     gpu_sharing=sharing, real_gpus=True, node_labels={}, taints=())


def test_time_sliced_pools_get_their_own_plugin_config():
    variants = plugin_configs([pool("a"), pool("b", GpuSharing(strategy=SharingStrategy.TIME_SHARING,
                                                               max_shared_clients=4))])
    assert variants["exclusive"][1] == ("a",)
    document, pools = variants["shared-b"]
    assert pools == ("b",)
    assert document["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    # A plugin that cannot initialise exits (and its DaemonSet turns unready) instead of advertising nothing.
    assert document["flags"]["failOnInitError"] is True


@pytest.fixture(scope="module")
def time_shared_plan(tmp_path_factory):
    """staging with its L4 pool time-shared three ways (planned once for this module's tests)."""
    def time_shared(config: dict) -> None:
        config["neurodock:nodePools"][1]["gpu"]["sharing"] = {"strategy": "timeSharing", "maxSharedClients": 3}
        # The 8B model takes a whole L4: a time-shared one holds none (the config refuses it).
        config["neurodock:models"] = []

    return plan_in(tmp_path_factory.mktemp("time-shared"), "staging", time_shared)


def test_time_slicing_config_reaches_the_cluster(time_shared_plan):
    plan = time_shared_plan
    [config] = manifests(plan, "ConfigMap", "nvidia-device-plugin")
    assert "replicas: 3" in config["data"]["shared-gpu-l4.yaml"]
    [ds] = manifests(plan, "DaemonSet", "nvidia-device-plugin")
    env = {e["name"]: e["value"] for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CONFIG_FILE"].endswith("/shared-gpu-l4.yaml")


def test_dcgm_attributes_metrics_to_pods_and_is_scraped_with_its_labels(shipped_plans):
    plan = shipped_plans["staging"]
    [ds] = manifests(plan, "DaemonSet", "nvidia-dcgm-exporter")
    pod = ds["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DCGM_EXPORTER_KUBERNETES"] == "true"
    assert "DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE" not in env  # uid: what the NVIDIA plugin hands out
    assert {"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True} \
        in container["volumeMounts"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    [endpoint] = manifests(plan, "ServiceMonitor", "nvidia-dcgm-exporter")[0]["spec"]["endpoints"]
    # The exporter's own pod labels are dropped: an idle GPU is never attributed to the exporter, and a
    # busy GPU's pod keeps its name instead of becoming exported_pod.
    assert endpoint["honorLabels"] is False
    assert {"action": "labeldrop", "regex": "pod|namespace|container"} in endpoint["relabelings"]


def test_dcgm_attributes_every_pod_of_a_time_shared_gpu_from_the_hosts_pid_namespace(time_shared_plan):
    """Without ``KUBERNETES_VIRTUAL_GPUS`` the exporter credits a time-shared GPU to one of its pods; with it,
    each pod gets series of its own, matched to its processes through ``/proc/<pid>/cgroup``, which needs the
    host's PID namespace (dcgm-exporter d5e5f51 ``internal/pkg/transformation/kubernetes.go``, ``pidmapper.go``;
    components/gpu/dcgm.py)."""
    plan = time_shared_plan
    # The stack really time-shares its L4s: the device plugin advertises three per GPU on that pool...
    [config] = manifests(plan, "ConfigMap", "nvidia-device-plugin")
    assert "replicas: 3" in config["data"]["shared-gpu-l4.yaml"]
    # ...and the exporter runs on that pool's nodes.
    [group] = [r for r in of_type(plan, "aws:eks/nodeGroup:NodeGroup") if "gpu-l4" in r.name]
    node_labels = group.inputs["labels"]
    [ds] = manifests(plan, "DaemonSet", "nvidia-dcgm-exporter")
    pod = ds["spec"]["template"]["spec"]
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    for expression in term["matchExpressions"]:
        value = node_labels.get(expression["key"])
        assert {"Exists": value is not None, "In": value in expression.get("values", ()),
                "NotIn": value not in expression.get("values", ())}[expression["operator"]], expression
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBERNETES_VIRTUAL_GPUS"] == "true"
    # Virtual GPUs refine the pod mapping, which must be on for them to mean anything.
    assert env["DCGM_EXPORTER_KUBERNETES"] == "true"
    assert pod["hostPID"] is True
    # The host's PID namespace adds no privilege off GKE: every capability still dropped, none added.
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_dcgm_collects_its_counters_file_and_no_profiling_field(shipped_plans):
    from components.gpu.dcgm import COUNTERS, counters_csv
    from components.monitoring import metrics

    plan = shipped_plans["staging"]
    [ds] = manifests(plan, "DaemonSet", "nvidia-dcgm-exporter")
    [container] = ds["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    [counters] = [m for m in manifests(plan, "ConfigMap", "nvidia-dcgm-exporter") if "counters.csv" in m["data"]]
    assert counters["data"]["counters.csv"] == counters_csv()
    mount = next(m for m in container["volumeMounts"] if m["name"] == "counters")
    assert env["DCGM_EXPORTER_COLLECTORS"] == f"{mount['mountPath']}/counters.csv"
    # Exactly the DCGM fields the dashboards and alerts read, the XID counter among them.
    assert {f for f, _, _ in COUNTERS} == {m.name for m in metrics.REGISTRY.values() if m.source == "dcgm"}
    # Profiling fields need SYS_ADMIN, which the exporter does not get.
    assert not any(f.startswith("DCGM_FI_PROF_") for f, _, _ in COUNTERS)
    assert "SYS_ADMIN" not in str(container["securityContext"])


def test_dcgm_on_gke_reads_the_host_driver_is_admitted_and_matches_gpus_by_device_name(shipped_plans):
    plan = shipped_plans["prod"]
    [ds] = manifests(plan, "DaemonSet", "nvidia-dcgm-exporter")
    pod = ds["spec"]["template"]["spec"]
    assert {"name": "nvidia", "hostPath": {"path": "/home/kubernetes/bin/nvidia", "type": "Directory"}} \
        in pod["volumes"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE"] == "device-name"
    # GKE admits a system-node-critical pod outside kube-system only under a quota scoped to it.
    assert pod["priorityClassName"] == "system-node-critical"
    [quota] = manifests(plan, "ResourceQuota", "nvidia-dcgm-exporter")
    [scope] = quota["spec"]["scopeSelector"]["matchExpressions"]
    assert scope["scopeName"] == "PriorityClass" and scope["operator"] == "In"
    assert pod["priorityClassName"] in scope["values"]
    # No quota where none is needed.
    assert manifests(shipped_plans["staging"], "ResourceQuota", "nvidia-dcgm-exporter") == []


def test_gke_runs_one_dcgm_collector(shipped_plans):
    [cluster] = of_type(shipped_plans["prod"], "gcp:container/cluster:Cluster")
    assert cluster.inputs["monitoringConfig"]["enableComponents"] == ["SYSTEM_COMPONENTS"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_model_servers_wait_for_the_gpu_agents(shipped_plans, stack):
    plan = shipped_plans[stack]
    catalog = next(r for r in plan.resources if r.type == "neurodock:serving:ModelCatalog")
    agents = {r.urn for r in plan.resources if r.type == "kubernetes:apps/v1:DaemonSet"}
    assert agents and agents <= set(catalog.options["dependsOn"])


def test_readiness_budgets_set_probes_deadlines_and_await_timeouts(write_stack):
    document = stack_document("staging")
    document["config"]["neurodock:readiness"] = {"nodeScaleUpSeconds": 300, "imagePullSeconds": 200,
                                                 "modelLoadSeconds": 600}
    plan = run_plan(load_stack_file("test", write_stack(document)))
    [deployment] = model_servers(plan)
    total = 300 + 200 + 600 + 120
    # An update is a rollout: up to maxReplicas (4) replaced a surge (1) at a time.
    assert deployment.options["customTimeouts"] == {"create": f"{total}s", "update": f"{4 * total}s"}
    spec = deployment.manifest["spec"]
    assert spec["progressDeadlineSeconds"] == total
    probe = spec["template"]["spec"]["containers"][0]["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 600


def test_grafana_admin_password_is_generated_and_kept_secret(shipped_plans):
    plan = shipped_plans["staging"]
    assert of_type(plan, "random:index/randomPassword:RandomPassword")
    assert plan.outputs["grafanaAdminPassword"] == "[secret]"
    release = release_of(plan, KUBE_PROMETHEUS_STACK)
    admin = release.inputs["values"]["grafana"]["admin"]
    [secret] = [m for m in manifests(plan, "Secret", "monitoring")]
    assert admin["existingSecret"] == secret["metadata"]["name"]
    assert secret["stringData"] == {"admin-user": "[secret]", "admin-password": "[secret]"}
    assert release.inputs["values"]["grafana"]["service"]["type"] == "ClusterIP"


def test_a_configured_grafana_password_replaces_the_generated_one(write_stack):
    document = stack_document("staging")
    document["config"]["neurodock:grafanaAdminPassword"] = {"secure": "v1:AAAA"}
    plan = run_plan(load_stack_file("test", write_stack(document)))
    assert not of_type(plan, "random:index/randomPassword:RandomPassword")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_prometheus_retains_by_size_within_its_volume(shipped_plans, stack):
    plan = shipped_plans[stack]
    [prometheus] = [o.manifest["spec"] for o in plan.chart_objects if o.kind == "Prometheus"]
    size_mib = int(prometheus["retentionSize"].removesuffix("MiB"))
    volume_gib = int(prometheus["storage"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
                     .removesuffix("Gi"))
    assert volume_gib == plan.config.monitoring.storage_gib
    # At most 80% of the volume: WAL and head chunks count towards it and are never dropped.
    assert 0.7 * volume_gib * 1024 <= size_mib <= 0.8 * volume_gib * 1024
    assert prometheus["retention"] == plan.config.monitoring.retention


def test_policy_finds_critical_pods_gke_would_refuse(shipped_plans):
    from neurodock_policies import wiring

    from infra.check import policy_resources

    resources = policy_resources(shipped_plans["prod"])
    assert wiring.unadmitted_critical_pods(resources) == []
    # Control: without the quota, GKE refuses the exporter's pods, and the policy says so.
    without = [r for r in resources if not r.resource_type.endswith("ResourceQuota")]
    [(urn, message)] = wiring.unadmitted_critical_pods(without)
    assert "DaemonSet" in urn and "system-node-critical pods in namespace nvidia-dcgm-exporter" in message
    # Off GKE there is no such admission rule.
    assert wiring.unadmitted_critical_pods(
        [r for r in policy_resources(shipped_plans["staging"]) if not r.resource_type.endswith("ResourceQuota")]) == []


@pytest.mark.parametrize(("gpu", "sharing", "expected"), [
    ("nvidia-l4", GpuSharing(strategy=SharingStrategy.TIME_SHARING, max_shared_clients=4), 4),
    ("nvidia-h100-80gb", GpuSharing(strategy=SharingStrategy.MIG, partition_size="1g.10gb"), 7),
    # Not 7 // 1: GKE makes four 1g.20gb partitions of an H100 (mig.go gpuPartitionSizeMaxCount).
    ("nvidia-h100-80gb", GpuSharing(strategy=SharingStrategy.MIG, partition_size="1g.20gb"), 4),
    ("nvidia-h200-141gb", GpuSharing(strategy=SharingStrategy.MIG, partition_size="1g.35gb"), 4),
    ("nvidia-a100-40gb", GpuSharing(strategy=SharingStrategy.MIG, partition_size="3g.20gb"), 2),
])
def test_gpus_a_node_advertises_per_gpu(gpu, sharing, expected):
    assert sharing.devices_per_gpu(gpu) == expected

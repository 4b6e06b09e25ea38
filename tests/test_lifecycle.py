"""Deploys that work on a real cloud (issue 14): the API is reachable from where `pulumi up` runs, things
are created in an order the clouds accept, edits update in place or replace safely, and a destroyed stack
can be created again. Each test has a control: the same check on a stack built the way that fails."""

from __future__ import annotations

import json
import re

import pytest
from neurodock_policies import deploy_reaches_api, gke_control_plane_reaches_webhooks, wiring

from infra.check import policy_resources
from infra.config import ConfigError
from infra.diff import diff_plans
from infra.plan import mocks
from infra.plan.engine import run_plan
from infra.plan.stackfile import REPO_ROOT, load_stack_file
from infra.program import control_plane_ports
from tests.conftest import SHIPPED_STACKS, of_type, one, stack_document
from tests.live import running_eks
from tests.test_serving import LLAMA_8B


def plan_of(write_stack, document, name="test", render_charts=False):
    return run_plan(load_stack_file(name, write_stack(document, name)), render_charts=render_charts)


def depends_on(plan, registration, type_) -> bool:
    urns = {r.urn for r in of_type(plan, type_)}
    return bool(urns & set(registration.options["dependsOn"]))


# -- 1. The API server is reachable from where the deploy runs -----------------------------------


def test_gke_api_is_served_on_the_iam_gated_dns_endpoint_and_the_kubeconfig_uses_it(shipped_plans):
    plan = shipped_plans["prod"]
    cluster = one(plan, "gcp:container/cluster:Cluster")
    assert cluster.inputs["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]["allowExternalTraffic"] is True
    assert cluster.inputs["privateClusterConfig"]["enablePrivateEndpoint"] is True  # the IP stays private
    endpoint = plan.outputs["clusterEndpoint"]
    assert endpoint.startswith("https://gke-") and endpoint.endswith(".europe-west4.gke.goog")


def test_gke_kubeconfig_names_the_dns_endpoint_without_the_cluster_ca(write_stack):
    from components.cluster.gke import _kubeconfig

    dns = json.loads(_kubeconfig("c", "gke-1.europe-west4.gke.goog", None))
    assert dns["clusters"][0]["cluster"] == {"server": "https://gke-1.europe-west4.gke.goog"}
    ip = json.loads(_kubeconfig("c", "172.16.0.2", "Q0E="))
    assert ip["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="
    document = stack_document("prod")
    document["config"]["neurodock:cloud"]["endpoint"]["dns"] = False
    plan = plan_of(write_stack, document)
    assert plan.outputs["clusterEndpoint"].startswith("https://172.16.0.")
    assert one(plan, "gcp:container/cluster:Cluster").inputs["controlPlaneEndpointsConfig"][
        "dnsEndpointConfig"]["allowExternalTraffic"] is False


def _deploy_violations(plan):
    return deploy_reaches_api.check(policy_resources(plan), {})


@pytest.mark.parametrize("stack", ["staging", "prod", "prod-dr"])
def test_every_shipped_cloud_stack_is_reachable_from_its_deploy_runner(shipped_plans, stack):
    assert shipped_plans[stack].outputs["deploy"]["runsOn"]
    assert _deploy_violations(shipped_plans[stack]) == []


def test_a_github_hosted_runner_cannot_reach_an_allow_listed_eks_endpoint(write_stack):
    document = stack_document("staging")
    del document["config"]["neurodock:deploy"]
    [(urn, message)] = _deploy_violations(plan_of(write_stack, document))
    assert "aws:eks/cluster:Cluster" in urn and "GitHub-hosted runner" in message


def test_a_runner_egress_outside_the_allow_list_is_flagged(write_stack):
    document = stack_document("staging")
    document["config"]["neurodock:deploy"]["egressCidrs"] = ["192.0.2.7/32"]
    [(_, message)] = _deploy_violations(plan_of(write_stack, document))
    assert "192.0.2.7/32" in message and "allowedCidrs" in message


def test_a_private_eks_endpoint_needs_a_runner_in_an_existing_vpc(write_stack):
    document = stack_document("staging")
    document["config"]["neurodock:cloud"]["endpoint"] = {"public": False}
    document["config"]["neurodock:deploy"] = {"runsOn": ["self-hosted", "in-vpc"], "inVpc": True,
                                              "privateCidrs": ["10.0.32.0/20", "10.8.0.0/16"]}
    [(_, message)] = _deploy_violations(plan_of(write_stack, document))
    assert "this stack creates that VPC" in message
    document["config"]["neurodock:cloud"]["existingVpc"] = {
        "vpcId": "vpc-0a1b2c3d4e5f60718", "privateSubnetIds": ["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"]}
    plan = plan_of(write_stack, document)
    assert _deploy_violations(plan) == []
    # The runner's ranges reach the API server: EKS's cluster security group admits only itself, so the stack adds
    # one rule per range, on that group, port 443.
    group = one(plan, "aws:eks/cluster:Cluster").state["vpcConfig"]["clusterSecurityGroupId"]
    rules = {r.inputs["cidrIpv4"]: r.inputs for r in of_type(
        plan, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")}
    assert set(rules) == {"10.0.32.0/20", "10.8.0.0/16"}
    assert all((r["securityGroupId"], r["ipProtocol"], r["fromPort"], r["toPort"]) == (group, "tcp", 443, 443)
               for r in rules.values())
    # Without a rule for one range, the policy names it.
    resources = [r for r in policy_resources(plan) if r.props.get("cidrIpv4") != "10.8.0.0/16"]
    [(_, message)] = deploy_reaches_api.check(resources, {})
    assert "no ingress rule on the cluster's security group admits the runner's ['10.8.0.0/16'] on port 443" in message


def test_a_private_gke_ip_endpoint_without_the_dns_endpoint_is_unreachable_from_github(write_stack):
    document = stack_document("prod")
    document["config"]["neurodock:cloud"]["endpoint"]["dns"] = False
    [(_, message)] = _deploy_violations(plan_of(write_stack, document))
    assert "private endpoint only" in message


# -- 2. The private GKE control plane reaches every webhook -------------------------------------


def test_gke_firewall_opens_exactly_the_webhook_ports_the_rendered_objects_use(shipped_plans):
    plan = shipped_plans["prod"]
    derived = {port for _, _, port in wiring.control_plane_callbacks(policy_resources(plan))}
    assert None not in derived, "every webhook and APIService resolves to a pod port"
    assert {6443, 9443} <= derived  # KEDA's metrics server and webhooks, Envoy Gateway's webhook
    firewall = one(plan, "gcp:compute/firewall:Firewall")
    assert firewall.inputs["sourceRanges"] == ["172.16.0.0/28"]
    assert firewall.inputs["direction"] == "INGRESS"
    [allow] = firewall.inputs["allows"]
    assert {int(p) for p in allow["ports"]} == derived - {443, 10250}
    assert set(control_plane_ports(plan.config)) - {443, 10250} == derived - {443, 10250}
    assert gke_control_plane_reaches_webhooks.check(policy_resources(plan), {}) == []


def test_without_the_firewall_rule_the_policy_names_every_cut_off_webhook(shipped_plans):
    resources = [r for r in policy_resources(shipped_plans["prod"])
                 if r.resource_type != "gcp:compute/firewall:Firewall"]
    found = gke_control_plane_reaches_webhooks.check(resources, {})
    ports = {message.split("pod port ")[1].split(",")[0] for _, message in found}
    assert ports == {"6443", "9443"}
    assert any("APIService 'v1beta1.external.metrics.k8s.io'" in message for _, message in found)


def test_keda_ports_are_pinned_in_its_values_not_left_to_chart_defaults(shipped_plans):
    from components.serving.keda import METRICS_SERVER_PORT, WEBHOOK_PORT

    [keda] = [r for r in of_type(shipped_plans["prod"], "kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "keda"]
    assert keda.inputs["values"]["service"]["portHttpsTarget"] == METRICS_SERVER_PORT
    assert keda.inputs["values"]["webhooks"]["port"] == WEBHOOK_PORT


# -- 3. Creation order ----------------------------------------------------------------------------


def test_gke_cluster_waits_for_its_apis_and_the_kms_grant_to_its_service_agent(shipped_plans):
    plan = shipped_plans["prod"]
    cluster = one(plan, "gcp:container/cluster:Cluster")
    apis = {s.inputs["service"] for s in of_type(plan, "gcp:projects/service:Service")}
    assert {"container.googleapis.com", "compute.googleapis.com", "cloudkms.googleapis.com"} <= apis
    assert all(s.inputs["disableOnDestroy"] is False for s in of_type(plan, "gcp:projects/service:Service"))
    assert depends_on(plan, cluster, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert depends_on(plan, cluster, "gcp:projects/service:Service")
    grant = one(plan, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert depends_on(plan, grant, "gcp:projects/serviceIdentity:ServiceIdentity")
    agent = one(plan, "gcp:projects/serviceIdentity:ServiceIdentity")
    assert agent.inputs["service"] == "container.googleapis.com"


def test_workload_identity_binding_takes_the_pool_from_the_cluster(write_stack):
    document = stack_document("prod")
    document["config"]["neurodock:models"][0]["source"] = "gs://acme-models/llama-3.1-8b"
    document["config"]["neurodock:models"][0].pop("revision")
    document["config"]["neurodock:models"][0]["architecture"] = LLAMA_8B
    plan = plan_of(write_stack, document)
    bindings = of_type(plan, "gcp:serviceaccount/iAMMember:IAMMember")
    assert bindings
    for binding in bindings:
        assert binding.inputs["member"].startswith("serviceAccount:neurodock-prod-4821.svc.id.goog[")
        assert depends_on(plan, binding, "gcp:container/cluster:Cluster")


# -- 4. Destroy and re-create ---------------------------------------------------------------------


def test_gke_deletion_protection_is_a_config_key(shipped_plans, write_stack):
    """GKE's flag, and Pulumi's protect: `pulumi destroy` would delete everything that depends on the cluster
    before GKE's flag stops it; a protected resource fails the destroy's preview instead."""
    cluster = one(shipped_plans["prod"], "gcp:container/cluster:Cluster")
    assert cluster.inputs["deletionProtection"] is True and cluster.options["protect"] is True
    document = stack_document("prod-dr")
    document["config"]["neurodock:cloud"]["deletionProtection"] = False
    plan = plan_of(write_stack, document)
    cluster = one(plan, "gcp:container/cluster:Cluster")
    assert cluster.inputs["deletionProtection"] is False and not cluster.options["protect"]


def test_a_recreated_gke_stack_adopts_its_retained_key_ring_and_key(write_stack, monkeypatch, shipped_plans):
    for kind in ("gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey"):
        assert one(shipped_plans["prod-dr"], kind).options["import"] is None  # first up: create
    ring = "projects/neurodock-prod-dr-4821/locations/europe-west1/keyRings/neurodock-prod-secrets"
    monkeypatch.setitem(mocks.LIVE, "gcpKeyRings", {
        "projects/neurodock-prod-dr-4821/locations/europe-west1": [ring]})
    monkeypatch.setitem(mocks.LIVE, "gcpCryptoKeys", {ring: [f"{ring}/cryptoKeys/etcd-secrets"]})
    plan = plan_of(write_stack, stack_document("prod-dr"))
    assert one(plan, "gcp:kms/keyRing:KeyRing").options["import"] == ring
    assert one(plan, "gcp:kms/cryptoKey:CryptoKey").options["import"] == f"{ring}/cryptoKeys/etcd-secrets"
    assert one(plan, "gcp:kms/keyRing:KeyRing").options["retainOnDelete"] is True


def test_prometheus_volume_claims_go_with_it(shipped_plans):
    [prometheus] = [o for o in shipped_plans["prod"].chart_objects if o.kind == "Prometheus"]
    assert prometheus.manifest["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete", "whenScaled": "Retain"}


# -- 5. Edits that roll or break ------------------------------------------------------------------


def _groups(plan):
    return {g.inputs["nodeGroupNamePrefix"].rstrip("-"): g for g in of_type(plan, "aws:eks/nodeGroup:NodeGroup")}


def test_eks_gpu_groups_update_without_spare_gpus_and_within_a_timeout_that_fits_the_pool(shipped_plans):
    groups = _groups(shipped_plans["staging"])
    gpu, system = groups["gpu-l4"], groups["system"]
    # No spare GPU machines (two per zone under EKS's default strategy), and a drain forced after EKS's 15
    # minutes rather than a failed update; CPU groups keep the default surge.
    assert gpu.inputs["updateConfig"] == {"maxUnavailable": 1, "updateStrategy": "MINIMAL"}
    assert gpu.inputs["forceUpdateVersion"] is True
    assert system.inputs["updateConfig"] == {"maxUnavailable": 1, "updateStrategy": "DEFAULT"}
    assert "forceUpdateVersion" not in system.inputs
    config = {p.name: p for p in shipped_plans["staging"].config.node_pools}
    for name, group in groups.items():
        minutes = max(60, 30 * config[name].max_nodes)
        assert group.options["customTimeouts"]["update"] == f"{minutes}m"
    assert groups["gpu-l4"].options["customTimeouts"]["update"] != "60m"


def test_a_new_eks_group_starts_at_min(shipped_plans):
    for group in _groups(shipped_plans["staging"]).values():
        assert group.options["ignoreChanges"] == []
        assert group.inputs["scalingConfig"]["desiredSize"] == group.inputs["scalingConfig"]["minSize"]


def test_the_live_size_is_sent_back_so_a_scaling_edit_never_resets_the_autoscalers_nodes(write_stack, monkeypatch):
    document = stack_document("staging")
    document["config"]["neurodock:environment"] = "test"
    document["config"]["neurodock:nodePools"][1]["maxNodes"] = 6   # an edit of the GPU group's bounds
    _live_groups(monkeypatch, {"system": 2, "gpu-l4": 3})
    groups = _groups(plan_of(write_stack, document))
    assert groups["gpu-l4"].inputs["scalingConfig"] == {"minSize": 0, "maxSize": 6, "desiredSize": 3}
    document["config"]["neurodock:nodePools"][1]["maxNodes"] = 2   # lowering max below the live size
    document["config"]["neurodock:models"][0]["maxReplicas"] = 2   # (and the model's, to fit the smaller pool)
    assert _groups(plan_of(write_stack, document))["gpu-l4"].inputs["scalingConfig"]["desiredSize"] == 2


def test_an_unreadable_group_keeps_its_size(write_stack, monkeypatch):
    monkeypatch.setitem(mocks.LIVE, "eksError", "AccessDeniedException: not authorized: eks:ListNodegroups")
    plan = plan_of(write_stack, stack_document("staging"))
    assert all(g.options["ignoreChanges"] == ["scalingConfig.desiredSize"] for g in _groups(plan).values())
    assert any("could not read the node groups" in w for w in plan.warnings)


@pytest.mark.parametrize(("running", "error"), [("1.33", "set 1.34"), ("1.36", "cannot downgrade")])
def test_eks_version_moves_one_minor_at_a_time(write_stack, monkeypatch, running, error):
    running_eks(monkeypatch, stack_document("staging"), running)
    with pytest.raises(ConfigError, match=error):
        plan_of(write_stack, stack_document("staging"))
    running_eks(monkeypatch, stack_document("staging"), "1.34")
    assert plan_of(write_stack, stack_document("staging")).resources



def test_eks_moves_the_control_plane_only_once_every_group_runs_its_version(write_stack, monkeypatch):
    document = stack_document("staging")
    document["config"]["neurodock:cloud"].update(kubernetesVersion="1.35", supportType="EXTENDED")
    running_eks(monkeypatch, document, "1.34")
    groups = {"system-20261101": {"tags": {"neurodock:pool": "system"}, "desiredSize": 3},
              "gpu-l4-20261101": {"tags": {"neurodock:pool": "gpu-l4"}, "desiredSize": 1}}
    monkeypatch.setitem(mocks.LIVE, "eksNodeGroups", {"neurodock-staging": groups})
    assert plan_of(write_stack, document).resources  # the control: every group on 1.34
    groups["gpu-l4-20261101"]["version"] = "1.33"  # its last update failed
    with pytest.raises(ConfigError) as caught:
        plan_of(write_stack, document)
    assert ("neurodock:cloud.kubernetesVersion: the cluster runs 1.34, but its node group gpu-l4-20261101 (1.33) does "
            "not") in str(caught.value)
    assert "set 1.34 and `pulumi up` to finish the groups' update, then set 1.35" in str(caught.value)
    document["config"]["neurodock:cloud"]["kubernetesVersion"] = "1.34"  # the step it names
    assert plan_of(write_stack, document).resources
    # A group the stack did not create: `pulumi up` cannot update it, so the way out is EKS's own command.
    groups["gpu-l4-20261101"].pop("version")
    groups["team-batch"] = {"tags": {}, "desiredSize": 2, "version": "1.33"}
    document["config"]["neurodock:cloud"]["kubernetesVersion"] = "1.35"
    with pytest.raises(ConfigError, match=r"node groups this stack did not create, team-batch \(1\.33\), do not.*"
                                          r"aws eks update-nodegroup-version"):
        plan_of(write_stack, document)


def test_the_kubernetes_provider_is_replaced_only_with_the_cluster(shipped_plans):
    for stack, prefix in (("staging", "eks:https://oidc.eks.us-east-1.amazonaws.com/id/"),
                          ("prod", "gke:projects/neurodock-prod-4821/locations/europe-west4/clusters/neurodock-prod:")):
        [provider] = [r for r in shipped_plans[stack].resources if r.type == "pulumi:providers:kubernetes"]
        assert provider.inputs["clusterIdentifier"].startswith(prefix)


def test_a_kind_clusters_provider_keeps_its_identity_while_its_command_does(shipped_plans):
    # The Command's id, unlike its stdout, stays known through the update an edit of the kind script runs, so a
    # preview no longer replaces the provider; a cluster created again has a new id, and a new provider.
    plan = shipped_plans["dev"]
    [provider] = of_type(plan, "pulumi:providers:kubernetes")
    [kind] = of_type(plan, "command:local:Command")
    cluster = plan.config.cluster_name
    assert kind.id.startswith(kind.name) and len(kind.id) == len(kind.name) + 8
    assert provider.inputs["clusterIdentifier"] == f"kind:{cluster}:{kind.id}"


def _live_groups(monkeypatch, sizes):
    monkeypatch.setitem(mocks.LIVE, "eksNodeGroups", {"neurodock-test": {
        f"{pool}-20261101": {"tags": {"neurodock:pool": pool}, "desiredSize": size} for pool, size in sizes.items()}})


def test_raising_min_nodes_above_the_live_size_raises_the_desired_size(write_stack, monkeypatch):
    document = stack_document("staging")
    document["config"]["neurodock:environment"] = "test"
    document["config"]["neurodock:nodePools"][0]["minNodes"] = 3
    _live_groups(monkeypatch, {"system": 2, "gpu-l4": 3})
    groups = _groups(plan_of(write_stack, document))
    system = groups["system"]
    assert system.inputs["scalingConfig"] == {"minSize": 3, "maxSize": 4, "desiredSize": 3}
    assert system.options["ignoreChanges"] == []
    # Control: a pool whose minimum is below its live size keeps the size the autoscaler gave it.
    assert groups["gpu-l4"].inputs["scalingConfig"]["desiredSize"] == 3


def test_eks_gpu_groups_carry_the_autoscalers_gpu_label_and_follow_the_cluster_version(shipped_plans):
    plan = shipped_plans["staging"]
    cluster = one(plan, "aws:eks/cluster:Cluster")
    gpu = _groups(plan)["gpu-l4"]
    assert gpu.inputs["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-l4"
    assert "k8s.amazonaws.com/accelerator" not in _groups(plan)["system"].inputs["labels"]
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in of_type(plan, "aws:autoscaling/tag:Tag")}
    assert tags["k8s.io/cluster-autoscaler/node-template/label/k8s.amazonaws.com/accelerator"] == "nvidia-l4"
    assert {g.inputs["version"] for g in _groups(plan).values()} == {cluster.inputs["version"]}


def test_one_eks_group_takes_instance_types_of_one_shape(write_stack):
    document = stack_document("staging")
    document["config"]["neurodock:nodePools"][1]["instanceTypes"] = ["g6.2xlarge", "g6.4xlarge"]
    with pytest.raises(ConfigError) as error:
        plan_of(write_stack, document)
    assert "neurodock:nodePools[1].instanceTypes[1]" in str(error.value)
    assert "first instance type" in str(error.value)
    document["config"]["neurodock:nodePools"][0]["instanceTypes"] = ["m7i.xlarge", "c7i.xlarge"]
    document["config"]["neurodock:nodePools"][1]["instanceTypes"] = ["g6.2xlarge"]
    with pytest.raises(ConfigError, match=r"nodePools\[0\]\.instanceTypes\[1\]"):
        plan_of(write_stack, document)


def test_gke_pools_are_named_by_prefix_with_upgrade_settings_and_a_maintenance_window(shipped_plans):
    plan = shipped_plans["prod"]
    pools = {p.inputs["namePrefix"]: p for p in of_type(plan, "gcp:container/nodePool:NodePool")}
    assert set(pools) == {"system-", "gpu-l4-", "gpu-h100-"}
    assert all("name" not in p.inputs for p in pools.values())
    assert pools["gpu-h100-"].inputs["upgradeSettings"] == {"strategy": "SURGE", "maxSurge": 0, "maxUnavailable": 1}
    assert pools["system-"].inputs["upgradeSettings"] == {"strategy": "SURGE", "maxSurge": 1, "maxUnavailable": 0}
    # A replaced pool's deletion drains within the PodDisruptionBudgets, while the new pool grows.
    assert all(p.inputs["nodeDrainConfigs"] == [{"respectPdbDuringNodePoolDeletion": True}] for p in pools.values())
    # The metadata server impersonates the weights readers' service accounts through IAM Credentials.
    services = {s.inputs["service"] for s in of_type(plan, "gcp:projects/service:Service")}
    assert "iamcredentials.googleapis.com" in services
    window = one(plan, "gcp:container/cluster:Cluster").inputs["maintenancePolicy"]["recurringWindow"]
    assert window == {"startTime": "2026-01-03T01:00:00Z", "endTime": "2026-01-03T09:00:00Z",
                      "recurrence": "FREQ=WEEKLY;BYDAY=SA,SU"}


# -- 6. Least privilege and supported versions ----------------------------------------------------


def test_eks_runs_a_version_in_standard_support_and_says_so(shipped_plans):
    cluster = one(shipped_plans["staging"], "aws:eks/cluster:Cluster")
    assert cluster.inputs["version"] == "1.35"
    assert cluster.inputs["upgradePolicy"] == {"supportType": "STANDARD"}


def test_ebs_csi_node_reads_imds_on_the_host_network_with_hop_limit_one(shipped_plans):
    plan = shipped_plans["staging"]
    [addon] = [a for a in of_type(plan, "aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-ebs-csi-driver"]
    assert json.loads(addon.inputs["configurationValues"]) == {"node": {"hostNetwork": True}}
    for template in of_type(plan, "aws:ec2/launchTemplate:LaunchTemplate"):
        assert template.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1


# -- The edit sequence a platform team walks, through `neurodock diff` -----------------------------


class EditSequence:
    """A stack file edited step by step, each step planned and diffed against the one before, as
    `neurodock diff` shows it to a reviewer."""

    def __init__(self, write_stack, stack: str, start=lambda config: None):
        self.write_stack, self.document, self.steps = write_stack, stack_document(stack), 0
        start(self.document["config"])
        self.plan = plan_of(write_stack, self.document, "step0")

    def edit(self, change):
        change(self.document["config"])
        self.steps += 1
        plan = plan_of(self.write_stack, self.document, f"step{self.steps}")
        diff, self.plan = diff_plans(self.plan, plan), plan
        return diff


def resource(diff, type_: str, name: str):
    [found] = [r for r in diff.resources if r.key.endswith(f"{type_}::{name}")]
    return found


def priced_pool(diff) -> str:
    """The pool whose price the cost rules gained in ``diff``: their only change is one rule more."""
    [cost] = [r for r in diff.resources if r.key.endswith("::alerts-cost")]
    added = {c.path.split(".rules")[0] for c in cost.changes}
    assert added == {"manifest.spec.groups[0]"}, cost.changes
    def pools(value) -> set[str]:
        return set(re.findall(r'label_neurodock_io_pool=\\"([^"\\]+)', json.dumps(value)))

    [pool] = set.union(*(pools(c.new) - pools(c.old) for c in cost.changes))
    return pool


def test_staging_edit_sequence(write_stack):
    steps = EditSequence(write_stack, "staging",
                         start=lambda c: c["neurodock:cloud"].update(kubernetesVersion="1.34", supportType="EXTENDED"))
    # 1. add a CPU pool: only its group, launch template and autoscaler tags are added, and its nodes' price
    #    joins the cost rules.
    diff = steps.edit(lambda c: c["neurodock:nodePools"].append(
        {"name": "cpu", "role": "cpu", "instanceTypes": ["m7i.2xlarge"], "minNodes": 0, "maxNodes": 3}))
    assert {r.status for r in diff.resources if not r.key.endswith("::alerts-cost")} == {"added"}
    assert priced_pool(diff) == "cpu"
    resource(diff, "aws:eks/nodeGroup:NodeGroup", "cluster-cpu")
    resource(diff, "aws:ec2/launchTemplate:LaunchTemplate", "cluster-cpu")
    # 2. raise minNodes: the group's scaling config changes in place.
    diff = steps.edit(lambda c: c["neurodock:nodePools"][0].update(minNodes=4))
    [group] = diff.resources
    assert group.key.endswith("::cluster-system") and not group.replaced
    assert {c.path for c in group.changes} == {"inputs.scalingConfig.minSize", "inputs.scalingConfig.desiredSize"}
    # 3. change a tag: every tagged resource updates, nothing is replaced.
    diff = steps.edit(lambda c: c["neurodock:tags"].update({"cost-center": "inference-2"}))
    assert diff.resources and not any(r.replaced for r in diff.resources)
    # 4. bump Kubernetes: the control plane and every group upgrade in place, the autoscaler image follows.
    diff = steps.edit(lambda c: c["neurodock:cloud"].update(kubernetesVersion="1.35"))
    assert not any(r.replaced for r in diff.resources)
    assert [c.path for c in resource(diff, "aws:eks/cluster:Cluster", "cluster-eks").changes] == ["inputs.version"]
    # 5. a new instance type replaces the group: created before the old one is deleted (name prefix).
    diff = steps.edit(lambda c: c["neurodock:nodePools"][1].update(instanceTypes=["g6.xlarge"]))
    assert resource(diff, "aws:eks/nodeGroup:NodeGroup", "cluster-gpu-l4").replaced


def test_prod_edit_sequence(write_stack):
    steps = EditSequence(write_stack, "prod")
    # add a pool: only the pool is added, and its nodes' price joins the cost rules.
    diff = steps.edit(lambda c: c["neurodock:nodePools"].append(
        {"name": "cpu", "role": "cpu", "instanceTypes": ["n2-standard-8"], "minNodes": 0, "maxNodes": 3}))
    assert {(r.key.rsplit("::", 1)[-1], r.status) for r in diff.resources} == {("alerts-cost", "changed"),
                                                                               ("cluster-cpu", "added")}
    assert priced_pool(diff) == "cpu"
    # raise minNodes: the pool's autoscaling changes in place.
    [pool] = steps.edit(lambda c: c["neurodock:nodePools"][1].update(minNodes=3)).resources
    # initialNodeCount is per zone (ceil(3 / 3 zones) = 1, as before): only the total minimum moves.
    assert not pool.replaced and {c.path for c in pool.changes} == {"inputs.autoscaling.totalMinNodeCount"}

    # a different GPU count per node replaces the pool, by prefix: the new pool comes up first.
    def four_gpus(config):
        config["neurodock:nodePools"][2]["gpu"]["count"] = 4
        config["neurodock:nodePools"][2]["instanceTypes"] = ["a3-highgpu-4g"]
        config["neurodock:nodePools"][2]["capacity"] = "spot"  # Google starts a3-highgpu-4g as Spot VMs only
        config["neurodock:nodePools"][2]["maxNodes"] = 5

    diff = steps.edit(four_gpus)
    assert resource(diff, "gcp:container/nodePool:NodePool", "cluster-gpu-h100").replaced


def test_the_kubernetes_provider_leaves_delete_unreachable_to_the_dr_runbooks_environment_switch(shipped_plans):
    """``deleteUnreachable`` set on the provider would override PULUMI_K8S_DELETE_UNREACHABLE (pulumi-kubernetes
    provider.go: the provider flag wins over the environment), which the DR runbook sets for the one `refresh`
    of a lost region's stack; set always, a routine refresh during a blip would drop every object."""
    for stack in SHIPPED_STACKS:
        [provider] = [r for r in shipped_plans[stack].resources if r.type == "pulumi:providers:kubernetes"]
        assert "deleteUnreachable" not in provider.inputs
        assert provider.inputs["enableServerSideApply"] in (True, "true")
    runbook = (REPO_ROOT / "docs" / "disaster-recovery.md").read_text()
    assert "PULUMI_K8S_DELETE_UNREACHABLE=true pulumi refresh -s prod" in runbook

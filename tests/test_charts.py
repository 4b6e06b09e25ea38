"""Helm releases rendered with Helm itself from the pinned charts: what each installs, the facts the
stack relies on in the rendered objects, the wiring between them, and the chart cache."""

from __future__ import annotations

import copy
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import helm_python
import pytest
from neurodock_policies import wiring
from neurodock_policies.pss import violations

from components.cluster.eks import autoscaler_discovery_tags
from components.monitoring.stack import SELECTED
from components.versions import CHARTS, CLUSTER_AUTOSCALER, CRD_BUNDLES, KEDA, KUBE_PROMETHEUS_STACK
from infra import charts
from infra.charts import load_documents
from infra.check import policy_resources
from infra.cli import CHART_CACHE_ENV, main
from infra.plan.helm import render_release
from infra.plan.render import text
from tests.conftest import SHARED_CHARTS, of_type, release_of


def objects(plan, kind: str, release: str | None = None) -> list[dict]:
    return [o.manifest for o in plan.chart_objects if o.kind == kind and (release is None or o.release == release)]


def rerender(plan, ref, edit):
    """The release of ``ref`` rendered again after ``edit(values)``: what a values change would install."""
    registration = copy.deepcopy(release_of(plan, ref))
    edit(registration.inputs["values"])
    return render_release(registration, ref, charts.cached(ref))


def test_cli_agrees_with_the_cache_module_on_its_variable():
    assert CHART_CACHE_ENV == charts.CACHE_ENV


# -- What a plan shows ------------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "releases"), [
    ("prod", {"kps", "keda", "envoy-gateway", "ai-gateway"}),
    ("staging", {"kps", "keda", "envoy-gateway", "ai-gateway", "cluster-autoscaler"}),
])
def test_plan_out_writes_every_releases_objects(tmp_path, capsys, stack, releases):
    out = tmp_path / "plan"
    assert main(["plan", stack, "--out", str(out), "--require-charts", "--chart-cache", str(SHARED_CHARTS)]) == 0
    printed = capsys.readouterr().out
    written = {p.name for p in (out / "manifests").iterdir() if p.is_dir()}
    # Envoy AI Gateway's CRDs chart installs CRDs only.
    assert written == {*releases, "ai-gateway-crds"}
    for release in releases:
        kinds = {load_documents(p.read_text())[0]["kind"] for p in (out / "manifests" / release).glob("*.yaml")}
        assert "Deployment" in kinds, release
        assert f"\n  {release}: " in printed
    assert "Helm releases (" in printed and "not rendered" not in printed


def test_text_plan_counts_each_releases_objects_by_kind(shipped_plans):
    plan = shipped_plans["staging"]
    shown = text(plan)
    kps = next(r for r in plan.releases if r.name == "kps")
    deployments = sum(1 for o in kps.objects if o.kind == "Deployment")
    assert f"kps: kube-prometheus-stack 82.6.0 in namespace monitoring, {len(kps.objects)} objects" in shown
    assert f"\n    {deployments}  Deployment\n" in shown.split("  kps: ")[1]


def test_each_release_names_its_chart_as_the_provider_fetches_it_and_is_rendered_from_that_version(shipped_plans):
    for plan in shipped_plans.values():
        for release in plan.releases:
            registration = next(r for r in plan.helm_releases if r.urn == release.urn)
            ref = release.chart
            assert registration.inputs["version"] == ref.version and release.package.name == ref.package
            if ref.oci:
                assert registration.inputs["chart"] == ref.reference and "repositoryOpts" not in registration.inputs
            else:
                assert (registration.inputs["chart"], registration.inputs["repositoryOpts"]) == (
                    ref.name, {"repo": ref.repository})


def test_release_inputs_are_the_same_whatever_the_chart_cache_path(tmp_path, monkeypatch):
    """`pulumi up` from another machine (a laptop, a DR runner) sees the same inputs: no release upgrades."""
    from infra.plan.engine import run_plan
    from infra.plan.stackfile import load_stack_file

    elsewhere = tmp_path / "somewhere" / "else"
    shutil.copytree(SHARED_CHARTS, elsewhere)
    inputs = []
    for cache in (SHARED_CHARTS, elsewhere):
        monkeypatch.setenv(charts.CACHE_ENV, str(cache))
        plan = run_plan(load_stack_file("staging"))
        assert {r.package.parent for r in plan.releases} == {cache.resolve()}
        inputs.append(json.dumps([r.inputs for r in plan.helm_releases], sort_keys=True).encode())
    assert inputs[0] == inputs[1]


def test_a_chart_mirror_is_where_every_release_fetches_its_chart():
    from components.charts import ChartSource

    http = ChartSource(KUBE_PROMETHEUS_STACK, "/some/cache/x.tgz", "https://charts.internal.example/neurodock/")
    assert http.release_args()["chart"] == "kube-prometheus-stack"
    assert http.release_args()["repository_opts"].repo == "https://charts.internal.example/neurodock"
    oci = ChartSource(KUBE_PROMETHEUS_STACK, None, "oci://registry.internal.example/neurodock")
    assert oci.release_args() == {"chart": "oci://registry.internal.example/neurodock/kube-prometheus-stack",
                                  "version": "82.6.0", "max_history": 10}
    # A plan still knows which pinned chart each names.
    assert charts.ref_of(oci.release_args()["chart"], "82.6.0") == KUBE_PROMETHEUS_STACK



def test_every_release_keeps_a_bounded_history(shipped_plans):
    """Each revision is a Secret holding the whole release; the provider keeps every one unless told."""
    releases = [r for plan in shipped_plans.values() for r in of_type(plan, "kubernetes:helm.sh/v3:Release")]
    assert len(releases) > 5 and {r.inputs.get("maxHistory") for r in releases} == {10}

def program_charts_only(tmp_path) -> Path:
    """A chart cache with only what the program renders or reads itself: the picker's chart, Envoy Gateway's
    (its CRDs) and the InferencePool CRD."""
    from components.versions import ENVOY_GATEWAY, INFERENCE_EXTENSION_CRDS, LLM_D_ROUTER

    cache = tmp_path / "program-only"
    cache.mkdir()
    shutil.copy(SHARED_CHARTS / LLM_D_ROUTER.package, cache)
    shutil.copy(SHARED_CHARTS / ENVOY_GATEWAY.package, cache)
    shutil.copytree(SHARED_CHARTS / INFERENCE_EXTENSION_CRDS.directory, cache / INFERENCE_EXTENSION_CRDS.directory)
    return cache


def test_what_the_program_renders_itself_must_be_cached(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["plan", "dev", "--chart-cache", str(empty)]) == 2
    err = capsys.readouterr().err
    assert (f"neurodock: dev: gateway-api-inference-extension v1.4.0 CRDs and gateway-helm v1.8.3 and "
            f"llm-d-router-gateway v0.10.0 are not in the chart cache {empty}: fetch them with `neurodock charts pull`"
            ) in err
    assert "Traceback" not in err
    cache = tmp_path / "crds-only"
    shutil.copytree(program_charts_only(tmp_path) / "crds", cache / "crds")
    assert main(["plan", "dev", "--chart-cache", str(cache)]) == 2
    assert "gateway-helm v1.8.3 and llm-d-router-gateway v0.10.0 are not in the chart cache" in capsys.readouterr().err


def test_without_a_cached_chart_the_release_downloads_it_and_the_plan_warns(tmp_path, capsys, write_stack):
    empty = program_charts_only(tmp_path)
    assert main(["plan", "dev", "--chart-cache", str(empty)]) == 0
    printed = capsys.readouterr().out
    assert (f"chart kube-prometheus-stack 82.6.0 is not in the chart cache {empty}: no offline plan renders or "
            "checks what its release installs; fetch it with `neurodock charts pull`") in printed
    assert "kps: not rendered (chart kube-prometheus-stack 82.6.0 is not cached" in printed


def test_require_charts_makes_a_missing_chart_an_error(tmp_path, capsys):
    empty = program_charts_only(tmp_path)
    out = tmp_path / "out"
    assert main(["plan", "staging", "--chart-cache", str(empty), "--require-charts", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "release 'cluster-autoscaler': chart cluster-autoscaler 9.59.0" in err
    assert "release 'kps': chart kube-prometheus-stack 82.6.0" in err
    assert "`neurodock charts pull`" in err
    assert not out.exists(), "nothing is written when charts are required and missing"


def test_an_uncached_release_still_names_its_repository_and_its_crds_still_come_from_the_program(
        tmp_path, monkeypatch, shipped_plans):
    from infra.plan.engine import run_plan
    from infra.plan.stackfile import load_stack_file

    monkeypatch.setenv(charts.CACHE_ENV, str(program_charts_only(tmp_path)))
    plan = run_plan(load_stack_file("staging"))
    kps = release_of(plan, KUBE_PROMETHEUS_STACK)
    assert (kps.inputs["chart"], kps.inputs["repositoryOpts"]["repo"]) == (
        "kube-prometheus-stack", KUBE_PROMETHEUS_STACK.repository)
    gateway = next(r for r in plan.helm_releases if r.inputs["name"] == "envoy-gateway")
    assert gateway.inputs["chart"] == "oci://docker.io/envoyproxy/gateway-helm"
    # Whatever is cached, the gateway release skips its CRDs and the program applies them, ahead of it:
    # the release's inputs and the CRD patches are those of a fully cached plan.
    full = shipped_plans["staging"]
    assert [r.inputs for r in plan.helm_releases] == [r.inputs for r in full.helm_releases]
    patches = sorted(r.manifest["metadata"]["name"] for r in plan.resources
                     if r.type.endswith("CustomResourceDefinitionPatch"))
    assert "inferencepools.inference.networking.k8s.io" in patches and "httproutes.gateway.networking.k8s.io" in patches
    assert patches == sorted(r.manifest["metadata"]["name"] for r in full.resources
                             if r.type.endswith("CustomResourceDefinitionPatch"))
    assert gateway.inputs["skipCrds"] is True
    assert [r.chart.name for r in plan.releases] == ["gateway-helm"] and len(plan.missing_charts) == 5


def test_a_stack_with_the_gateway_needs_envoy_gateways_chart_cached(tmp_path, capsys):
    from components.versions import INFERENCE_EXTENSION_CRDS, LLM_D_ROUTER

    cache = tmp_path / "no-envoy-gateway"
    cache.mkdir()
    shutil.copy(SHARED_CHARTS / LLM_D_ROUTER.package, cache)
    shutil.copytree(SHARED_CHARTS / INFERENCE_EXTENSION_CRDS.directory, cache / INFERENCE_EXTENSION_CRDS.directory)
    assert main(["plan", "dev", "--chart-cache", str(cache)]) == 2
    assert "gateway-helm v1.8.3 is not in the chart cache" in capsys.readouterr().err


def test_a_chart_mirror_in_the_config_is_where_every_release_fetches(write_stack):
    from tests.conftest import plan_with

    plan = plan_with(write_stack, "staging",
                     lambda c: c.update({"neurodock:chartMirror": "oci://registry.internal.example/charts"}))
    assert {r.inputs["chart"] for r in plan.helm_releases} == {
        f"oci://registry.internal.example/charts/{ref.name}" for ref in
        (KUBE_PROMETHEUS_STACK, KEDA, CLUSTER_AUTOSCALER, *[r for r in CHARTS if r.name.startswith(("gateway-helm",
                                                                                                    "ai-gateway"))])}
    assert all(r.chart.package == r.package.name for r in plan.releases)  # still rendered from the cache


def test_a_missing_chart_cache_directory_is_a_usage_error(tmp_path, capsys):
    assert main(["plan", "dev", "--chart-cache", str(tmp_path / "nowhere")]) == 2
    assert f"--chart-cache {tmp_path / 'nowhere'}: no such directory" in capsys.readouterr().err


# -- Facts the stack relies on, read in the rendered objects ---------------------------------------


def test_prometheus_selects_monitors_and_rules_on_the_label_ours_carry(shipped_plans):
    plan = shipped_plans["prod"]
    [prometheus] = objects(plan, "Prometheus")
    for key in ("serviceMonitorSelector", "podMonitorSelector", "ruleSelector"):
        assert prometheus["spec"][key] == {"matchLabels": SELECTED}
    ours = [r.manifest for r in plan.manifests if r.manifest["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert len(ours) >= 3 and all(m["metadata"]["labels"]["release"] == "kps" for m in ours)
    assert wiring.unselected_monitors(policy_resources(plan)) == []


def test_a_monitor_without_the_selected_label_is_reported(shipped_plans):
    resources = copy.deepcopy(policy_resources(shipped_plans["prod"]))
    monitor = next(r for r in resources if r.resource_type.endswith(":ServiceMonitor") and not wiring.from_chart(r))
    del monitor.props["metadata"]["labels"]["release"]
    [(urn, message)] = wiring.unselected_monitors(resources)
    assert urn == monitor.urn and "is not selected by any Prometheus" in message


def test_grafana_loads_every_dashboard_and_a_mislabelled_one_is_reported(shipped_plans):
    resources = copy.deepcopy(policy_resources(shipped_plans["staging"]))
    dashboards = [r for r in resources if r.resource_type.endswith(":ConfigMap") and not wiring.from_chart(r)
                  and any(k.endswith(".json") for k in r.props.get("data", {}))]
    assert len(dashboards) >= 2 and wiring.unloaded_dashboards(resources) == []
    dashboards[0].props["metadata"]["labels"]["grafana_dashboard"] = "0"
    [(urn, message)] = wiring.unloaded_dashboards(resources)
    assert urn == dashboards[0].urn and "labelled grafana_dashboard='1'" in message


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_in_cluster_url_names_a_real_service_and_port(shipped_plans, stack):
    resources = policy_resources(shipped_plans[stack])
    checked = {what for _, what, _ in wiring.in_cluster_urls(resources)}
    assert {"stack output prometheusUrl", "stack output grafanaUrl", "stack output gatewayUrl"} <= checked
    assert any("serverAddress" in what for what in checked)
    assert wiring.dangling_urls(resources) == []


def test_a_url_with_a_wrong_port_or_service_is_reported(shipped_plans):
    resources = copy.deepcopy(policy_resources(shipped_plans["staging"]))
    stack = next(r for r in resources if r.resource_type == "pulumi:pulumi:Stack")
    stack.props["prometheusUrl"] = stack.props["prometheusUrl"].replace(":9090", ":9091")
    stack.props["grafanaUrl"] = stack.props["grafanaUrl"].replace("kps-grafana", "grafana")
    found = sorted(m for _, m in wiring.dangling_urls(resources))
    assert len(found) == 2
    assert "names Service 'monitoring/grafana', which nothing creates" in found[0]
    assert ("uses port 9091, but Service 'monitoring/kps-kube-prometheus-stack-prometheus' exposes [8080, 9090]"
            in found[1])


def test_autoscaler_discovers_the_tags_eks_puts_on_node_groups_and_may_only_scale_those(shipped_plans):
    plan = shipped_plans["staging"]
    [deployment] = objects(plan, "Deployment", "cluster-autoscaler")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    tags = autoscaler_discovery_tags("neurodock-staging")
    assert f"--node-group-auto-discovery=asg:tag={','.join(tags)}" in container["command"]
    [policy] = [r for r in of_type(plan, "aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-autoscaler")]
    import json

    condition = json.loads(policy.inputs["policy"])["Statement"][1]["Condition"]["StringEquals"]
    assert condition == {"aws:ResourceTag/k8s.io/cluster-autoscaler/neurodock-staging": "owned"}
    assert tags["k8s.io/cluster-autoscaler/neurodock-staging"] == "owned"


def test_autoscaler_meets_pod_security_restricted(shipped_plans):
    [deployment] = objects(shipped_plans["staging"], "Deployment", "cluster-autoscaler")
    assert violations(deployment["spec"]["template"]["spec"], "restricted") == []


def test_keda_serves_external_metrics_on_6443(shipped_plans):
    """The aggregated API the control plane calls: APIService -> Service -> the server's port (a
    private GKE control plane must be allowed to reach it, see the deploy work)."""
    plan = shipped_plans["prod"]
    [api] = [a for a in objects(plan, "APIService", "keda")
             if a["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"]
    ref = api["spec"]["service"]
    [service] = [s for s in objects(plan, "Service", "keda") if s["metadata"]["name"] == ref["name"]]
    [port] = [p for p in service["spec"]["ports"] if p["port"] == ref.get("port", 443)]
    [server] = [d for d in objects(plan, "Deployment", "keda")
                if d["metadata"]["name"] == "keda-operator-metrics-apiserver"]
    ports = {p["containerPort"] for c in server["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    assert port["targetPort"] == 6443 and 6443 in ports


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_nothing_scrapes_a_control_plane_pods_cannot_reach(shipped_plans, stack):
    plan = shipped_plans[stack]
    assert wiring.managed_control_plane_scrapes(policy_resources(plan)) == []
    groups = {g["name"] for rule in objects(plan, "PrometheusRule", "kps") for g in rule["spec"]["groups"]}
    assert not groups & {"etcd", "kubernetes-system-scheduler", "kubernetes-system-controller-manager"}
    monitors = {m["metadata"]["name"].removeprefix("kps-kube-prometheus-stack-")
                for m in objects(plan, "ServiceMonitor")}
    assert {"kubelet", "apiserver"} <= monitors
    expected_dns = "kube-dns" if plan.config.cloud.provider == "gke" else "coredns"
    assert expected_dns in monitors and ({"kube-dns", "coredns"} - {expected_dns}).isdisjoint(monitors)
    assert ("kube-proxy" in monitors) is (plan.config.cloud.provider == "eks")


def test_a_control_plane_scrape_turned_back_on_is_reported(shipped_plans):
    plan = shipped_plans["prod"]
    rendered = rerender(plan, KUBE_PROMETHEUS_STACK, lambda v: v.update(kubeScheduler={"enabled": True}))
    service = next(o for o in rendered.objects if o.kind == "Service" and "scheduler" in o.object_name)
    from pulumi_policy import PolicyResource

    found = wiring.managed_control_plane_scrapes(
        [PolicyResource(service.type, service.manifest, service.urn, service.name, None, None, None, [], {})])
    assert len(found) == 1 and "scrapes kube-scheduler" in found[0][1]


def test_crds_of_a_disabled_subchart_are_not_installed_and_crds_dir_ones_are_install_only(shipped_plans):
    plan = shipped_plans["prod"]
    kps = next(r for r in plan.releases if r.name == "kps")
    crds = [o for o in kps.objects if o.kind == "CustomResourceDefinition"]
    assert len(crds) == 10 and all(o.install_only for o in crds)
    assert not any(o.install_only for o in kps.objects if o.kind != "CustomResourceDefinition")
    # KEDA's CRDs are templates: Helm upgrades them with the release.
    keda = next(r for r in plan.releases if r.name == "keda")
    assert [o.install_only for o in keda.objects if o.kind == "CustomResourceDefinition"] == [False] * 6
    rendered = rerender(plan, KUBE_PROMETHEUS_STACK, lambda v: v.update(crds={"enabled": False}))
    assert not [o for o in rendered.objects if o.kind == "CustomResourceDefinition"]



def test_kube_prometheus_stacks_crds_are_applied_again_on_every_upgrade(shipped_plans):
    """Helm installs a chart's crds/ once and never upgrades them (the chart's README): the chart's hook Job applies
    the same CRDs server-side before each install and upgrade, taking over Helm's fields."""
    import base64
    import bz2

    from infra.charts import load_documents

    kps = next(r for r in shipped_plans["staging"].releases if r.name == "kps")
    installed = {o.object_name for o in kps.objects if o.kind == "CustomResourceDefinition" and o.install_only}
    [job] = [o for o in kps.objects if o.kind == "Job" and "crds-upgrade" in o.object_name]
    hooks = set(job.manifest["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert {"pre-install", "pre-upgrade"} <= hooks
    [kubectl] = job.manifest["spec"]["template"]["spec"]["containers"]
    assert kubectl["args"][:3] == ["apply", "--server-side", "--force-conflicts"]
    [bundle] = [o for o in kps.objects if o.kind == "ConfigMap" and o.object_name == job.object_name]
    text = bz2.decompress(base64.b64decode(bundle.manifest["binaryData"]["crds.bz2"])).decode()
    applied = {d["metadata"]["name"] for d in load_documents(text) if d.get("kind") == "CustomResourceDefinition"}
    assert len(installed) == 10 and applied == installed

def test_a_kube_proxy_scrape_is_reported_where_no_pod_can_reach_kube_proxy(shipped_plans):
    plan = shipped_plans["prod"]
    rendered = rerender(plan, KUBE_PROMETHEUS_STACK, lambda v: v.update(kubeProxy={"enabled": True}))
    from pulumi_policy import PolicyResource

    service = next(o for o in rendered.objects if o.kind == "Service" and "kube-proxy" in o.object_name)
    stack = next(r for r in policy_resources(plan) if r.resource_type == "pulumi:pulumi:Stack")
    as_policy = PolicyResource(service.type, service.manifest, service.urn, service.name, None, None, None, [], {})
    assert stack.props["cloud"] == "gke"
    assert len(wiring.managed_control_plane_scrapes([stack, as_policy])) == 1
    eks_stack = copy.deepcopy(stack)
    eks_stack.props["cloud"] = "eks"
    assert wiring.managed_control_plane_scrapes([eks_stack, as_policy]) == []


def test_a_misspelt_value_key_is_reported_and_a_correct_one_is_not(shipped_plans):
    plan = shipped_plans["prod"]
    assert not [w for w in plan.warnings if "is not a value of chart" in w]
    rendered = rerender(plan, KUBE_PROMETHEUS_STACK,
                        lambda v: v["prometheus"]["prometheusSpec"].update(retentionSiz="40GB"))
    assert rendered.unknown_values == ["prometheus.prometheusSpec.retentionSiz"]
    assert rendered.warnings() == [
        "Helm release 'kps': value 'prometheus.prometheusSpec.retentionSiz' is not a value of chart "
        "kube-prometheus-stack 82.6.0, so Helm ignores it; check its spelling against the chart's values.yaml."]
    assert rerender(plan, KUBE_PROMETHEUS_STACK,
                    lambda v: v["prometheus"]["prometheusSpec"].update(retentionSize="40GB")).unknown_values == []


def test_a_value_a_template_rejects_fails_the_render(shipped_plans):
    from infra.plan.helm import RenderError

    with pytest.raises(RenderError, match="keda"):
        # KEDA's templates require a map here; a string cannot be rendered.
        rerender(shipped_plans["prod"], KEDA, lambda v: v.update(podSecurityContext="restricted"))


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_chart_image_names_a_release(shipped_plans, stack):
    images = [c["image"] for o in shipped_plans[stack].chart_objects
              if o.kind in ("Deployment", "DaemonSet", "StatefulSet", "Job")
              for c in [*o.manifest["spec"]["template"]["spec"].get("initContainers", []),
                        *o.manifest["spec"]["template"]["spec"]["containers"]]]
    assert len(images) >= 6
    for image in images:
        tag = image.rsplit("/", 1)[-1].partition("@")[0].rpartition(":")[2]
        assert tag and tag not in ("latest", "main", "master"), image


def test_alertmanager_routing_follows_the_tree():
    route = {"receiver": "null", "routes": [
        {"matchers": ['alertname = "Watchdog"'], "receiver": "null"},
        {"matchers": ["severity =~ critical|page"], "receiver": "pager", "continue": True},
        {"match": {"team": "ml"}, "receiver": "ml-chat"},
        {"match_re": {"model": "llama.*"}, "routes": [{"match": {"variant": "canary"}, "receiver": "canary"}]}]}
    assert wiring.receivers_for(route, {"alertname": "X", "severity": "critical"}) == ["pager"]
    # `continue`: the alert goes on to the next matching route too.
    assert wiring.receivers_for(route, {"alertname": "X", "severity": "critical", "team": "ml"}) == ["pager", "ml-chat"]
    assert wiring.receivers_for(route, {"alertname": "Watchdog", "severity": "critical"}) == ["null"]
    assert wiring.receivers_for(route, {"alertname": "X", "severity": "info"}) == ["null"]
    # A matching route that names no receiver inherits its parent's; its own children come first.
    assert wiring.receivers_for(route, {"alertname": "X", "model": "llama-8b"}) == ["null"]
    assert wiring.receivers_for(route, {"alertname": "X", "model": "llama-8b", "variant": "canary"}) == ["canary"]


# -- The chart cache --------------------------------------------------------------------------------


def test_charts_list_shows_what_each_stack_needs_and_what_is_cached(tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(SHARED_CHARTS / KEDA.package, cache)
    assert main(["charts", "list", "--chart-cache", str(cache)]) == 0
    printed = capsys.readouterr().out
    assert f"chart cache: {cache}" in printed
    assert "  keda                     2.17.2    cached   stacks: dev, prod, prod-dr, staging" in printed
    assert "  cluster-autoscaler       9.59.0    MISSING  stacks: staging" in printed
    # The program's own: the picker's chart and the InferencePool CRD.
    assert "  llm-d-router-gateway     v0.10.0   MISSING  stacks: dev, prod, prod-dr, staging" in printed
    assert "  gateway-api-inference-extension CRDs v1.4.0    MISSING  stacks: dev, prod, prod-dr, staging" in printed
    assert "7 needed chart(s) missing: run `neurodock charts pull`" in printed


@pytest.fixture
def chart_mirror(tmp_path):
    """An HTTP chart repository on the loopback interface holding the pinned packages."""
    site = tmp_path / "mirror"
    site.mkdir()
    for ref in CHARTS:
        shutil.copy(SHARED_CHARTS / ref.package, site)
    for bundle in CRD_BUNDLES:
        shutil.copytree(SHARED_CHARTS / bundle.directory, site / bundle.directory)
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    helm_python.repo_index_generate(site, base_url=url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_charts_pull_fills_the_cache_whole_and_then_finds_it_cached(tmp_path, capsys, chart_mirror):
    cache = tmp_path / "cache"
    assert main(["charts", "pull", "staging", "--mirror", chart_mirror, "--chart-cache", str(cache)]) == 0
    packages = sorted(p for p in cache.iterdir() if p.is_file())
    assert [p.name for p in packages] == sorted(ref.package for ref in CHARTS)
    assert [p.read_bytes() for p in packages] == [(SHARED_CHARTS / p.name).read_bytes() for p in packages]
    [bundle] = CRD_BUNDLES
    assert [(cache / bundle.directory / f).read_bytes() for f in bundle.files] == [
        (SHARED_CHARTS / bundle.directory / f).read_bytes() for f in bundle.files]
    assert capsys.readouterr().out.count("fetched  ") == len(CHARTS) + 1
    assert main(["charts", "pull", "--mirror", chart_mirror, "--chart-cache", str(cache)]) == 0
    assert capsys.readouterr().out.count("cached   ") == len(CHARTS) + 1


def test_charts_pull_of_one_stack_fetches_only_its_charts(tmp_path, chart_mirror):
    cache = tmp_path / "cache"
    assert main(["charts", "pull", "dev", "--mirror", chart_mirror, "--chart-cache", str(cache)]) == 0
    assert CLUSTER_AUTOSCALER.package not in {p.name for p in cache.iterdir()}


def test_charts_pull_from_an_unreachable_repository_fails_cleanly(tmp_path, capsys):
    cache = tmp_path / "cache"
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    assert main(["charts", "pull", "dev", "--mirror", "http://127.0.0.1:9", "--chart-cache", str(cache)]) == 1
    err = capsys.readouterr().err
    assert "neurodock: cannot fetch kube-prometheus-stack 82.6.0 from http://127.0.0.1:9:" in err
    assert [p for p in cache.iterdir()] == [], "no partial package is left in the cache"


def test_a_cached_file_that_is_not_the_pinned_chart_is_refused(tmp_path, chart_mirror):
    site_index = chart_mirror  # the mirror serves the real packages; a wrong version is asked for below
    wrong = charts.ChartRef("keda", "2.17.1", KEDA.repository)
    with pytest.raises(charts.PullError, match=r"keda 2\.17\.1"):
        charts.pull(wrong, tmp_path, mirror=site_index)
    assert not any(Path(tmp_path).glob("*.tgz"))


def test_diff_shows_what_a_values_change_does_to_the_charts_objects(shipped_plans, write_stack):
    from infra.diff import diff_plans
    from infra.plan.engine import run_plan
    from infra.plan.stackfile import load_stack_file
    from tests.conftest import stack_document

    document = stack_document("staging")
    document["config"]["neurodock:monitoring"] = {**document["config"].get("neurodock:monitoring", {}),
                                                  "retention": "30d"}
    edited = run_plan(load_stack_file("staging", write_stack(document, "staging")))
    diff = diff_plans(shipped_plans["staging"], edited)
    changed = {r.key: r for r in diff.resources if r.status == "changed"}
    prometheus = next(k for k in changed if "monitoring.coreos.com/v1:Prometheus::" in k)
    assert [(c.path, c.new) for c in changed[prometheus].changes] == [("manifest.spec.retention", "30d")]
    assert not any(c.location for c in changed[prometheus].changes)


def test_a_stored_render_is_each_callers_own_copy_and_a_later_process_reads_it_without_helm(tmp_path, monkeypatch):
    monkeypatch.setenv(charts.RENDER_CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(charts, "_kept", {})
    package = SHARED_CHARTS / KEDA.package
    first = charts.helm(package, {}, name="keda", namespace="keda")
    second = charts.helm(package, {}, name="keda", namespace="keda")
    assert first == second and first.documents
    first.documents[0][1]["metadata"]["name"] = "changed"
    assert charts.helm(package, {}, name="keda", namespace="keda") == second != first
    monkeypatch.setattr(charts, "_kept", {})  # as a new process finds it: on disk only
    monkeypatch.setattr(charts, "_render", lambda *args: pytest.fail("rendered again"))
    assert charts.helm(package, {}, name="keda", namespace="keda") == second
    with pytest.raises(pytest.fail.Exception):  # the control: other values are rendered
        charts.helm(package, {"replicaCount": 2}, name="keda", namespace="keda")


def test_a_parsed_document_is_each_callers_own_copy_and_is_parsed_once(tmp_path, monkeypatch):
    monkeypatch.setenv(charts.RENDER_CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(charts, "_kept", {})
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n"
    first = charts.parsed_document(text)
    first["data"]["k"] = "changed"
    monkeypatch.setattr(charts, "_kept", {})
    monkeypatch.setattr(charts, "load_documents", lambda text: pytest.fail("parsed again"))
    assert charts.parsed_document(text) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                                            "data": {"k": "v"}}
    with pytest.raises(pytest.fail.Exception):
        charts.parsed_document(text.replace("name: a", "name: b"))

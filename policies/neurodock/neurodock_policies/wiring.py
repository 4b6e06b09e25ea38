"""What ties the stack together inside the cluster, judged on the objects the Helm releases install
as well as NeuroDock's own. Shape is not semantics: each object can be valid and the stack still
blind (a ServiceMonitor Prometheus never selects), mute (alerts routed nowhere) or broken (a URL
naming a Service or port that does not exist).

The checks need the releases' rendered objects, which only ``neurodock check`` has (CrossGuard sees a
release as one resource): each check judges only what it can see, and says nothing otherwise.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import yaml

from neurodock_policies.support import UNKNOWN, all_known, describe, dig, entries, fields, kind_of, known

RELEASE_CHILD = "$kubernetes:helm.sh/v3:Release$"
"""In the URN of every object a Helm release installs (``infra/plan/helm.py``)."""
MONITOR_SELECTORS = {
    "ServiceMonitor": ("serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
    "PodMonitor": ("podMonitorSelector", "podMonitorNamespaceSelector"),
    "PrometheusRule": ("ruleSelector", "ruleNamespaceSelector"),
}
DASHBOARD_SIDECAR = "grafana-sc-dashboard"
"""The Grafana chart's dashboard-loading sidecar container (grafana chart, templates/_pod.tpl)."""
CONTROL_PLANE_COMPONENTS = {"etcd", "kube-scheduler", "kube-controller-manager"}
"""``component`` labels of the control-plane pods kube-prometheus-stack's Services select."""
NO_REACHABLE_KUBE_PROXY = {"gke", "kind"}
"""Clouds (stack output ``cloud``) where no pod can scrape kube-proxy: GKE Dataplane V2 runs none,
kind's listens on 127.0.0.1 (docs/upstream.md)."""


def from_chart(resource) -> bool:
    return RELEASE_CHILD in resource.urn


def objects(resources: Sequence, kind: str) -> list:
    return [r for r in resources if r.resource_type.startswith("kubernetes:") and kind_of(r.resource_type) == kind]


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, Any] | None) -> bool:
    """A Kubernetes label selector: ``None`` selects nothing, ``{}`` everything. A selector or labels not known yet
    select: whether they will is judged once they are known."""
    if selector is None:
        return False
    if not all_known(selector) or not all_known(labels):
        return True
    labels = fields(labels)
    if any(labels.get(k) != v for k, v in fields(selector.get("matchLabels")).items()):
        return False
    for expression in entries(selector.get("matchExpressions")):
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if ((operator == "In" and labels.get(key) not in values) or (operator == "NotIn" and labels.get(key) in values)
                or (operator == "Exists" and not present) or (operator == "DoesNotExist" and present)):
            return False
    return True


def namespace_labels(resources: Sequence, name: str) -> dict[str, Any]:
    """A namespace's labels, with the one the API server always sets."""
    for ns in objects(resources, "Namespace"):
        if dig(ns.props, "metadata", "name") == name:
            return {**fields(dig(ns.props, "metadata", "labels")), "kubernetes.io/metadata.name": name}
    return {"kubernetes.io/metadata.name": name}


def unselected_monitors(resources: Sequence) -> list[tuple[str, str]]:
    """ServiceMonitors, PodMonitors and PrometheusRules, NeuroDock's and the charts', that no
    Prometheus selects."""
    prometheuses = objects(resources, "Prometheus")
    if not prometheuses:
        return []  # the monitoring release was not rendered: nothing to judge against
    out = []
    for kind, (selector_key, namespace_key) in MONITOR_SELECTORS.items():
        for monitor in objects(resources, kind):
            labels = dig(monitor.props, "metadata", "labels") or {}  # an unknown one selects (``selects``)
            namespace = dig(monitor.props, "metadata", "namespace")
            chosen = [p for p in prometheuses if selects(dig(p.props, "spec", selector_key), labels)
                      and _namespace_selected(resources, p, namespace_key, namespace)]
            if not chosen:
                wanted = "; ".join(f"{describe(p.resource_type, p.props, p.name)} selects "
                                   f"{dig(p.props, 'spec', selector_key)}" for p in prometheuses)
                out.append((monitor.urn, f"{describe(monitor.resource_type, monitor.props, monitor.name)} is not "
                                         f"selected by any Prometheus, so it is ignored: its labels are {labels} and "
                                         f"{wanted}; give it those labels (components/monitoring/resources.py)."))
    return out


def _namespace_selected(resources: Sequence, prometheus, key: str, namespace: Any) -> bool:
    selector = dig(prometheus.props, "spec", key)
    if selector is None:  # unset: the Prometheus object's own namespace only
        return namespace == dig(prometheus.props, "metadata", "namespace")
    return selects(selector, namespace_labels(resources, str(namespace)))


def unloaded_dashboards(resources: Sequence) -> list[tuple[str, str]]:
    """NeuroDock's dashboard ConfigMaps that Grafana's sidecar does not load."""
    sidecars = [(d, c) for d in objects(resources, "Deployment") if from_chart(d)
                for c in entries(dig(d.props, "spec", "template", "spec", "containers"))
                if c.get("name") == DASHBOARD_SIDECAR]
    if not sidecars:
        return []
    out = []
    for cm in objects(resources, "ConfigMap"):
        data = fields(dig(cm.props, "data"))
        if from_chart(cm) or not any(str(k).endswith(".json") for k in data):
            continue
        labels = dig(cm.props, "metadata", "labels")
        if not all_known(labels):
            continue  # judged once its labels are known
        labels = fields(labels)
        namespace = dig(cm.props, "metadata", "namespace")
        loaded = False
        for _, container in sidecars:
            if not all_known(container.get("env")):
                loaded = True  # what the sidecar loads is not known yet: no verdict
                continue
            env = {e.get("name"): e.get("value") for e in entries(container.get("env"))}
            label, value, where = env.get("LABEL"), env.get("LABEL_VALUE"), env.get("NAMESPACE")
            in_scope = where in (None, "ALL") or namespace in str(where).split(",")
            if in_scope and label in labels and (value is None or str(labels[label]) == str(value)):
                loaded = True
        if not loaded:
            env = {e.get("name"): e.get("value") for e in entries(sidecars[0][1].get("env"))}
            out.append((cm.urn, f"{describe(cm.resource_type, cm.props, cm.name)} holds a dashboard but Grafana's "
                                f"sidecar loads ConfigMaps labelled {env.get('LABEL')}={env.get('LABEL_VALUE')!r} in "
                                f"{env.get('NAMESPACE') or 'its own namespace'}; label it so."))
    return out


_SERVICE_HOST = re.compile(r"^(?P<name>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc(\.cluster\.local)?$")


def in_cluster_urls(resources: Sequence) -> list[tuple[str, str, str]]:
    """``(urn, what, url)`` for every in-cluster URL the stack configures: its outputs and KEDA's
    Prometheus addresses."""
    urls = []
    for stack in (r for r in resources if r.resource_type == "pulumi:pulumi:Stack"):
        for key in ("prometheusUrl", "grafanaUrl", "gatewayUrl"):
            if known(stack.props.get(key)):
                urls.append((stack.urn, f"stack output {key}", str(stack.props[key])))
    for scaled in objects(resources, "ScaledObject"):
        for trigger in dig(scaled.props, "spec", "triggers", default=[]) or []:
            address = dig(trigger, "metadata", "serverAddress")
            if known(address):
                urls.append((scaled.urn, f"{describe(scaled.resource_type, scaled.props, scaled.name)} trigger "
                                         "serverAddress", str(address)))
    return urls


def dangling_urls(resources: Sequence) -> list[tuple[str, str]]:
    """In-cluster URLs that name no Service, or a port that Service does not expose."""
    rendered = {dig(r.props, "metadata", "namespace") for r in resources if from_chart(r)}
    if not rendered:
        return []
    releases = {r.props.get("namespace") for r in resources if r.resource_type == "kubernetes:helm.sh/v3:Release"}
    services = {(dig(s.props, "metadata", "namespace"), dig(s.props, "metadata", "name")):
                ({p.get("port") for p in entries(dig(s.props, "spec", "ports"))}
                 if all_known(dig(s.props, "spec", "ports")) else None)  # None: not known yet
                for s in objects(resources, "Service")}
    services.update(_envoy_services(resources))
    # A Service whose namespace or name is not known yet may be the one a URL names: no verdict on "nothing creates".
    unnamed = any(not known(ns) or not known(name) for ns, name in services)
    out = []
    for urn, what, url in in_cluster_urls(resources):
        parts = urlsplit(url)
        match = _SERVICE_HOST.match(parts.hostname or "")
        if match is None:
            continue  # not an in-cluster Service address
        key = (match["namespace"], match["name"])
        if key[0] in releases - rendered:
            continue  # a release in that namespace was not rendered: its Services are unknown here
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if key not in services and not unnamed:
            out.append((urn, f"{what} {url} names Service '{key[0]}/{key[1]}', which nothing creates; "
                             "point it at a Service the stack installs."))
        elif key in services and services[key] is not None and port not in services[key]:
            out.append((urn, f"{what} {url} uses port {port}, but Service '{key[0]}/{key[1]}' exposes "
                             f"{sorted(services[key])}; use one of those."))
    return out


def _envoy_services(resources: Sequence) -> dict[tuple[str, str], set[int] | None]:
    """The proxies' Services Envoy Gateway creates at run time: named by the EnvoyProxy a GatewayClass
    refers to, with a port per listener of each Gateway of that class."""
    out: dict[tuple[str, str], set[int] | None] = {}  # None: its ports are not known yet
    proxies = {(dig(p.props, "metadata", "namespace"), dig(p.props, "metadata", "name")): p
               for p in objects(resources, "EnvoyProxy")}
    classes = {dig(c.props, "metadata", "name"): c for c in objects(resources, "GatewayClass")}
    if not all_known([list(key) for key in proxies]) or not all_known(list(classes)):
        out[(UNKNOWN, UNKNOWN)] = None  # a proxy or class not known yet: its Service may be any
    for gateway in objects(resources, "Gateway"):
        gateway_class = classes.get(dig(gateway.props, "spec", "gatewayClassName"))
        ref = dig(gateway_class.props, "spec", "parametersRef") if gateway_class else None
        proxy = proxies.get((dig(ref, "namespace"), dig(ref, "name"))) if ref else None
        name = dig(proxy.props, "spec", "provider", "kubernetes", "envoyService", "name") if proxy else None
        if not all_known([dig(gateway.props, "spec", "gatewayClassName"), ref, name]):
            out[(UNKNOWN, UNKNOWN)] = None  # which Service it makes is not known yet
            continue
        if known(name):
            listeners = dig(gateway.props, "spec", "listeners")
            key = (dig(gateway.props, "metadata", "namespace"), name)
            if not all_known(listeners) or out.get(key, set()) is None:
                out[key] = None
                continue
            out.setdefault(key, set()).update(listener.get("port") for listener in entries(listeners))
    return out


def managed_control_plane_scrapes(resources: Sequence) -> list[tuple[str, str]]:
    """Services the monitoring chart creates to scrape control-plane pods no pod can reach here."""
    clouds = {r.props.get("cloud") for r in resources if r.resource_type == "pulumi:pulumi:Stack"}
    out = []
    for service in objects(resources, "Service"):
        component = dig(service.props, "spec", "selector", "component")
        if dig(service.props, "spec", "selector", "k8s-app") == "kube-proxy" and clouds & NO_REACHABLE_KUBE_PROXY:
            component = "kube-proxy"
        if from_chart(service) and (component in CONTROL_PLANE_COMPONENTS or component == "kube-proxy"):
            out.append((service.urn, f"{describe(service.resource_type, service.props, service.name)} scrapes "
                                     f"{component}, which runs out of reach of pods (managed by the cloud, or bound "
                                     "to 127.0.0.1 on kind): its target is always down and its alerts fire forever; "
                                     "turn it off in the monitoring values (components/monitoring/stack.py)."))
    return out


MONITORING_CHART = "kube-prometheus-stack"
CHART_DEFAULT_ROUTE = {"receiver": "null"}
"""kube-prometheus-stack's default Alertmanager route (values.yaml ``alertmanager.config``)."""


def alertmanager_config(resources: Sequence) -> tuple[Any, dict[str, Any]] | None:
    """The Alertmanager configuration the monitoring chart installs, and the resource holding it:
    the Secret the chart renders (``neurodock check``), else the release's own values (CrossGuard
    under ``pulumi preview``, which sees the release but not what it renders)."""
    for secret in objects(resources, "Secret"):
        if not from_chart(secret):
            continue
        for field in ("stringData", "data"):
            text = dig(secret.props, field, "alertmanager.yaml")
            if known(text):
                if field == "data":
                    text = base64.b64decode(str(text)).decode()
                return secret, yaml.safe_load(text) or {}
    for release in resources:
        # The chart is a name, a repository reference or a cached package path (components/charts.py).
        chart = str(release.props.get("chart", "")).rsplit("/", 1)[-1]
        if release.resource_type != "kubernetes:helm.sh/v3:Release" or not chart.startswith(MONITORING_CHART):
            continue
        if dig(release.props, "values", "alertmanager", "enabled") in (False, UNKNOWN):
            return None
        config = dig(release.props, "values", "alertmanager", "config")
        if not all_known(config):
            return None  # judged once known
        config = config if isinstance(config, Mapping) else {}
        return release, {"route": config.get("route") or CHART_DEFAULT_ROUTE,
                         "receivers": config.get("receivers") or [{"name": "null"}]}
    return None


def receivers_for(route: Mapping[str, Any], labels: Mapping[str, str], inherited: str | None = None) -> list[str]:
    """The receivers Alertmanager's routing tree sends an alert with these labels to: children in
    order, each matching one taking the alert (and its receiver, inherited when it names none), the
    search going on past it only if it says ``continue``; a node no child takes keeps the alert."""
    receiver = route.get("receiver") or inherited
    found: list[str] = []
    for child in route.get("routes") or []:
        if _route_matches(child, labels):
            found += receivers_for(child, labels, receiver)
            if not child.get("continue"):
                break
    return found or ([receiver] if receiver else [])


_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def _route_matches(route: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for key, value in (route.get("match") or {}).items():
        if labels.get(key, "") != value:
            return False
    for key, value in (route.get("match_re") or {}).items():
        if not re.fullmatch(str(value), labels.get(key, "")):
            return False
    for matcher in route.get("matchers") or []:
        parsed = _MATCHER.match(str(matcher))
        if parsed is None:
            return False
        key, op, value = parsed.groups()
        actual = labels.get(key, "")
        ok = {"=": actual == value, "!=": actual != value, "=~": re.fullmatch(value, actual) is not None,
              "!~": re.fullmatch(value, actual) is None}[op]
        if not ok:
            return False
    return True


def neurodock_alerts(resources: Sequence) -> list[dict[str, str]]:
    """The labels of every alert of NeuroDock's own PrometheusRules, ``alertname`` included."""
    out = []
    for rule in objects(resources, "PrometheusRule"):
        if from_chart(rule):
            continue
        for group in entries(dig(rule.props, "spec", "groups")):
            for r in entries(group.get("rules")):
                if known(r.get("alert")):
                    out.append({"alertname": r["alert"], **fields(r.get("labels"))})
    return out


def unrouted_alerts(resources: Sequence) -> list[tuple[str, str]]:
    """NeuroDock alerts Alertmanager routes to a receiver that notifies nobody."""
    found = alertmanager_config(resources)
    if found is None:
        return []
    secret, config = found
    receivers = {r.get("name"): r for r in config.get("receivers") or []}
    mute: dict[str, list[str]] = {}
    for labels in neurodock_alerts(resources):
        chosen = receivers_for(config.get("route") or {}, labels)
        if not any(k.endswith("_configs") and v for name in chosen for k, v in (receivers.get(name) or {}).items()):
            mute.setdefault(", ".join(chosen) or "none", []).append(labels["alertname"])
    return [(secret.urn, f"Alertmanager routes NeuroDock's alerts {', '.join(sorted(set(names)))} to receiver "
                         f"'{receiver}', which notifies nobody; configure a receiver for them.")
            for receiver, names in sorted(mute.items())]


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
KUBE_API_DEFAULT_SERVICE_PORT = 443
"""A webhook's or APIService's ``service.port`` when unset (admissionregistration.k8s.io/v1
ServiceReference, apiregistration.k8s.io/v1 ServiceReference: "Defaults to 443")."""


def control_plane_callbacks(resources: Sequence) -> list[tuple[str, str, int | None]]:
    """``(urn, what, pod port)`` for every call the API server makes into a pod: admission webhooks,
    aggregated APIs (APIService) and CRD conversion webhooks, NeuroDock's and the charts'. The pod
    port is the Service's ``targetPort`` resolved through the pods it selects (``None`` when it cannot
    be resolved: the Service or its pods are not in the plan). The API server dials the pod directly,
    so it is the pod port a firewall between the control plane and the nodes must let through."""
    out = []
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for config in objects(resources, kind):
            for hook in entries(dig(config.props, "webhooks")):
                service = dig(hook, "clientConfig", "service")
                if service:
                    what = f"{describe(config.resource_type, config.props, config.name)} webhook {hook.get('name')!r}"
                    out.append((config.urn, what, _pod_port(resources, service)))
    for api in objects(resources, "APIService"):
        service = dig(api.props, "spec", "service")
        if service:
            out.append((api.urn, describe(api.resource_type, api.props, api.name), _pod_port(resources, service)))
    for crd in objects(resources, "CustomResourceDefinition"):
        service = dig(crd.props, "spec", "conversion", "webhook", "clientConfig", "service")
        if service:
            what = f"{describe(crd.resource_type, crd.props, crd.name)} conversion webhook"
            out.append((crd.urn, what, _pod_port(resources, service)))
    return out


def _pod_port(resources: Sequence, ref: Mapping[str, Any]) -> int | None:
    if not isinstance(ref, Mapping):
        return None  # not known yet
    namespace, name = ref.get("namespace"), ref.get("name")
    port = ref.get("port") or KUBE_API_DEFAULT_SERVICE_PORT
    service = next((s for s in objects(resources, "Service") if dig(s.props, "metadata", "namespace") == namespace
                    and dig(s.props, "metadata", "name") == name), None)
    if service is None:
        return None
    entry = next((p for p in entries(dig(service.props, "spec", "ports")) if p.get("port") == port), None)
    if entry is None:
        return None
    target = entry.get("targetPort", port)
    if isinstance(target, (int, float)) or (isinstance(target, str) and target.isdigit()):  # 9443.0 from CrossGuard
        return int(target)
    selector = fields(dig(service.props, "spec", "selector"))
    for kind in WORKLOAD_KINDS:
        for workload in objects(resources, kind):
            template = fields(dig(workload.props, "spec", "template"))
            if dig(workload.props, "metadata", "namespace") != namespace or not selector or not selects(
                    {"matchLabels": selector}, dig(template, "metadata", "labels")):
                continue
            for container in entries(dig(template, "spec", "containers")):
                for named in entries(container.get("ports")):
                    if named.get("name") == target and isinstance(named.get("containerPort"), (int, float)):
                        return int(named["containerPort"])
    return None


CRITICAL_PRIORITY_CLASSES = ("system-node-critical", "system-cluster-critical")


def unadmitted_critical_pods(resources: Sequence) -> list[tuple[str, str]]:
    """On GKE, workloads of a critical priority class outside kube-system whose namespace has no
    ResourceQuota scoped to that class: GKE's API server refuses their pods ("insufficient quota to
    match these scopes"), so the DaemonSet exists and never runs a pod."""
    if not any(r.resource_type == "gcp:container/cluster:Cluster" for r in resources):
        return []
    admitted: set[tuple[str, str]] = set()
    for quota in objects(resources, "ResourceQuota"):
        expressions = dig(quota.props, "spec", "scopeSelector", "matchExpressions")
        if not all_known(expressions):
            return []  # a quota not known yet may admit any of them: judged once known
        for expression in entries(expressions):
            if expression.get("scopeName") == "PriorityClass" and expression.get("operator") == "In":
                admitted |= {(dig(quota.props, "metadata", "namespace"), v) for v in expression.get("values") or []}
    out = []
    for kind in WORKLOAD_KINDS:
        for workload in objects(resources, kind):
            namespace = dig(workload.props, "metadata", "namespace")
            priority = dig(workload.props, "spec", "template", "spec", "priorityClassName")
            if (priority in CRITICAL_PRIORITY_CLASSES and known(namespace) and namespace != "kube-system"
                    and (namespace, priority) not in admitted):
                out.append((workload.urn, f"{describe(workload.resource_type, workload.props, workload.name)} runs "
                            f"{priority} pods in namespace {namespace}, which has no ResourceQuota scoped to that "
                            "PriorityClass: GKE refuses its pods; add one (components/k8s.py critical_pods_quota)."))
    return out

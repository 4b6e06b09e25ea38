"""pod-security-restricted: workloads meet Pod Security "restricted"; only allow-listed node-agent
DaemonSets in namespaces labelled privileged are exempt.

An entry of ``nodeAgentNamespaces`` is a namespace (every DaemonSet in it) or ``namespace/name`` (that
DaemonSet alone). The defaults, and why each needs the host:

- ``nvidia-device-plugin``: the device plugin registers GPUs with the kubelet through its socket
  under /var/lib/kubelet (hostPath);
- ``nvidia-dcgm-exporter``: DCGM reads the GPUs through the driver's devices and libraries on the host;
- ``monitoring/kps-prometheus-node-exporter``: kube-prometheus-stack's node exporter reads the node's
  /proc, /sys and root filesystem with hostNetwork and hostPID. The rest of the monitoring namespace
  (operator, Prometheus, Grafana...) is held to "restricted".
"""

from __future__ import annotations

from pulumi_policy import PolicyConfigSchema

from neurodock_policies.pss import violations
from neurodock_policies.support import POD_SPEC_PATHS, UNKNOWN, describe, dig, known, pod_spec, stack_policy

NAME = "pod-security-restricted"
DEFAULT_NODE_AGENT_NAMESPACES = ["nvidia-device-plugin", "nvidia-dcgm-exporter",
                                 "monitoring/kps-prometheus-node-exporter"]
CONFIG_SCHEMA = PolicyConfigSchema(properties={
    "nodeAgentNamespaces": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_NODE_AGENT_NAMESPACES}})


def check(resources, config) -> list[tuple[str, str]]:
    agents = set(config["nodeAgentNamespaces"])
    privileged: set[str] = set()
    undecided: set[str] = set()  # namespaces whose level is not known yet
    unnamed = False  # a namespace whose name is not known yet may be any of them
    for r in resources:
        if r.resource_type != "kubernetes:core/v1:Namespace":
            continue
        namespace = dig(r.props, "metadata", "name")
        enforce = dig(r.props, "metadata", "labels", "pod-security.kubernetes.io/enforce")
        if not known(namespace):
            unnamed = True
        elif enforce == UNKNOWN:
            undecided.add(namespace)
        elif enforce == "privileged":
            privileged.add(namespace)
    out = []
    for r in resources:
        if r.resource_type not in POD_SPEC_PATHS:
            continue
        pod = pod_spec(r.resource_type, r.props)
        if pod is None:
            continue
        namespace, name = dig(r.props, "metadata", "namespace"), dig(r.props, "metadata", "name")
        if r.resource_type == "kubernetes:apps/v1:DaemonSet":
            agent = namespace in agents or f"{namespace}/{name}" in agents or (
                not known(name) and any(a.startswith(f"{namespace}/") for a in agents))
            if not known(namespace) or (agent and (namespace in privileged or namespace in undecided or unnamed)):
                continue  # exempt, or maybe exempt: judged once its namespace and level are known
        for problem in violations(dict(pod), "restricted"):
            out.append((r.urn, f"{describe(r.resource_type, r.props, r.name)} breaks Pod Security 'restricted' "
                               f"({problem}); fix its security context, or, for a node agent, run it as a "
                               f"DaemonSet in a namespace labelled privileged and listed in nodeAgentNamespaces."))
    return out


POLICY = stack_policy(
    NAME,
    "Workloads meet Pod Security 'restricted'; only allow-listed node agents in privileged namespaces are exempt.",
    check,
    config_schema=CONFIG_SCHEMA,
)

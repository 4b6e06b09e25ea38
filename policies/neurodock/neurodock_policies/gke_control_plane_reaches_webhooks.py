"""gke-control-plane-reaches-webhooks: on a GKE cluster with private nodes, the API server can reach
every pod port it calls. GKE's own firewall rule lets the control plane reach nodes on 443 and 10250
only; an admission webhook or aggregated API on any other port (KEDA's metrics server, Envoy
Gateway's webhook) times out, and every object it guards fails to apply.

The ports are derived from the objects the stack installs, NeuroDock's and the rendered charts'
(webhook and APIService Services resolved to their pods' ports), so a chart bump that moves a port is
caught here. Only ``neurodock check`` renders the charts; under ``pulumi preview`` this sees none."""

from __future__ import annotations

import ipaddress

from components.cluster.gke import GKE_CONTROL_PLANE_TO_NODE_PORTS
from neurodock_policies import wiring
from neurodock_policies.support import all_known, describe, dig, entries, known, stack_policy

NAME = "gke-control-plane-reaches-webhooks"


def _opened(firewall, master_cidr: str) -> set[int]:
    props = firewall.props
    if not all_known([props.get("direction"), props.get("disabled"), props.get("sourceRanges")]):
        return set(range(1, 65536))  # a rule not known yet may open any port: judged once known
    if props.get("direction", "INGRESS") != "INGRESS" or props.get("disabled") is True:
        return set()
    sources = [s for s in (props.get("sourceRanges") if isinstance(props.get("sourceRanges"), list) else [])
               if known(s)]
    master = ipaddress.ip_network(master_cidr)
    if not any(master.subnet_of(ipaddress.ip_network(s)) for s in sources):
        return set()
    if not all_known(props.get("allows")):
        return set(range(1, 65536))  # rules not known yet may open any port: judged once known
    ports: set[int] = set()
    for rule in entries(props.get("allows")):
        if rule.get("protocol") not in ("tcp", "all"):
            continue
        if rule.get("protocol") == "all" or not rule.get("ports"):
            return set(range(1, 65536))
        for spec in rule["ports"]:
            low, _, high = str(spec).partition("-")
            ports.update(range(int(low), int(high or low) + 1))
    return ports


def check(resources, config) -> list[tuple[str, str]]:
    clusters = [r for r in resources if r.resource_type == "gcp:container/cluster:Cluster"
                and dig(r.props, "privateClusterConfig", "enablePrivateNodes") is True]
    if not clusters:
        return []
    callbacks = wiring.control_plane_callbacks(resources)
    out = []
    for cluster in clusters:
        master = dig(cluster.props, "privateClusterConfig", "masterIpv4CidrBlock")
        if not known(master):
            continue
        opened = set(GKE_CONTROL_PLANE_TO_NODE_PORTS)
        for firewall in (r for r in resources if r.resource_type == "gcp:compute/firewall:Firewall"):
            opened |= _opened(firewall, master)
        for urn, what, port in callbacks:
            if port is not None and port not in opened:
                out.append((urn, f"{what} is served on pod port {port}, which the control plane of "
                                 f"{describe(cluster.resource_type, cluster.props, cluster.name)} cannot reach: "
                                 f"its firewall allows {sorted(opened)} from {master}. Add {port} to the "
                                 "cluster's control-plane firewall rule (GkeClusterArgs.control_plane_ports, "
                                 "from the component's CONTROL_PLANE_PORTS)."))
    return out


POLICY = stack_policy(
    NAME,
    "GKE private clusters: the control plane can reach every webhook and aggregated-API port the stack installs.",
    check,
)

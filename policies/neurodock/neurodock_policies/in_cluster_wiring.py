"""in-cluster-wiring: the stack's parts find each other once installed. Prometheus selects every
monitor and rule NeuroDock creates; Grafana loads every dashboard; every in-cluster URL the stack
configures names a Service and port that exist; nothing scrapes a control plane pods cannot reach; on
GKE, every namespace running critical-priority pods outside kube-system has the quota GKE requires.

Judged on the objects the Helm releases install, which only ``neurodock check`` renders; under
``pulumi preview`` it sees none and reports nothing (see ``wiring``)."""

from __future__ import annotations

from neurodock_policies import wiring
from neurodock_policies.support import stack_policy

NAME = "in-cluster-wiring"


def check(resources, config) -> list[tuple[str, str]]:
    return [*wiring.unselected_monitors(resources), *wiring.unloaded_dashboards(resources),
            *wiring.dangling_urls(resources), *wiring.managed_control_plane_scrapes(resources),
            *wiring.unadmitted_critical_pods(resources)]


POLICY = stack_policy(
    NAME,
    "Prometheus selects every monitor and rule, Grafana loads every dashboard, in-cluster URLs name real Services "
    "and ports, no scrape targets a control plane pods cannot reach, and GKE admits every critical-priority pod.",
    check,
)

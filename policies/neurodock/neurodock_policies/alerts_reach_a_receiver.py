"""alerts-reach-a-receiver: Alertmanager routes every NeuroDock alert to a receiver that notifies
someone (kube-prometheus-stack's default route ends at the receiver ``null``).

Advisory until the stack config can name receivers (the observability work); judged on the
Alertmanager configuration the monitoring release installs, which only ``neurodock check`` renders."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel

from neurodock_policies import wiring
from neurodock_policies.support import stack_policy

NAME = "alerts-reach-a-receiver"


def check(resources, config) -> list[tuple[str, str]]:
    return wiring.unrouted_alerts(resources)


POLICY = stack_policy(
    NAME,
    "Every NeuroDock alert is routed to an Alertmanager receiver that notifies someone.",
    check,
    level=EnforcementLevel.ADVISORY,
)

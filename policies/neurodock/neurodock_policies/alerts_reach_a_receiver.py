"""alerts-reach-a-receiver: in production, Alertmanager routes every NeuroDock alert to a receiver
that notifies someone (kube-prometheus-stack's default route ends at the receiver ``null``, and so
does a stack with no ``monitoring.alerting.receivers``). Other environments get a plan warning.

Judged on the Alertmanager configuration the monitoring chart renders (``neurodock check``), else on
the release's values (``pulumi preview``)."""

from __future__ import annotations

from neurodock_policies import wiring
from neurodock_policies.support import PRODUCTION_SCHEMA, stack_policy

NAME = "alerts-reach-a-receiver"


def check(resources, config) -> list[tuple[str, str]]:
    stack = next((r for r in resources if r.resource_type == "pulumi:pulumi:Stack"), None)
    environment = stack.props.get("environment") if stack is not None else None
    # Fails closed: a stack that does not say its environment is judged as production.
    if isinstance(environment, str) and environment not in set(config["productionEnvironments"]):
        return []
    return wiring.unrouted_alerts(resources)


POLICY = stack_policy(
    NAME,
    "In production, every NeuroDock alert is routed to an Alertmanager receiver that notifies someone.",
    check,
    config_schema=PRODUCTION_SCHEMA,
)

"""alerts-reach-a-receiver: in production, Alertmanager routes every NeuroDock alert to a receiver
that notifies someone (kube-prometheus-stack's default route ends at the receiver ``null``, and so
does a stack with no ``monitoring.alerting.receivers``), and routes the chart's always-firing ``Watchdog``
to a heartbeat (``monitoring.alerting.heartbeat``) often enough for it to notice the silence when
Prometheus, Alertmanager or the cluster die: a receiver alone cannot report its own death. Other
environments get a plan warning.

Judged on the Alertmanager configuration the monitoring chart renders (``neurodock check``), else on
the release's values (``pulumi preview``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from neurodock_policies import wiring
from neurodock_policies.support import PRODUCTION_SCHEMA, stack_policy

NAME = "alerts-reach-a-receiver"
WATCHDOG = {"alertname": "Watchdog", "severity": "none"}
"""kube-prometheus-stack's dead man's switch alert (82.6.0 ``general.rules.yaml:55-88``)."""
MAX_HEARTBEAT_S = 3600
"""The longest a heartbeat may wait between two Watchdogs: beyond it, an outage goes unnoticed for hours."""
ALERTMANAGER_DEFAULTS = {"group_interval": "5m", "repeat_interval": "4h"}
"""A route's timers when neither it nor a parent sets them (Alertmanager v0.31.1 docs/configuration.md:249,264)."""
_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: Any) -> float | None:
    """An Alertmanager duration (``1m``, ``4h``, ``1h30m``) in seconds; None when it is not one."""
    text = str(duration)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def _watchdog_route(route: Mapping[str, Any], inherited: dict[str, Any]) -> dict[str, Any]:
    """The route the Watchdog ends at, with the timers and receiver it inherits (``receivers_for``'s walk;
    the first matching child takes it, which is all a heartbeat needs)."""
    here = {**inherited, **{k: route[k] for k in ("receiver", "group_interval", "repeat_interval") if k in route}}
    for child in route.get("routes") or []:
        if wiring._route_matches(child, WATCHDOG):
            return _watchdog_route(child, here)
    return here


def unheard_watchdog(resources) -> list[tuple[str, str]]:
    """The Watchdog reaches no receiver that notifies, or reaches one too seldom to be a heartbeat."""
    found = wiring.alertmanager_config(resources)
    if found is None:
        return []
    holder, config = found
    receivers = {r.get("name"): r for r in config.get("receivers") or []}
    route = _watchdog_route(config.get("route") or {}, dict(ALERTMANAGER_DEFAULTS))
    receiver = route.get("receiver")
    if not any(k.endswith("_configs") and v for k, v in (receivers.get(receiver) or {}).items()):
        return [(holder.urn, f"Alertmanager routes the always-firing Watchdog to receiver '{receiver}', which "
                             "notifies nobody, so nothing outside the cluster notices when Prometheus or Alertmanager "
                             "stop; set monitoring.alerting.heartbeat (a ping URL of healthchecks.io, Dead Man's "
                             "Snitch or the like, in neurodock:alertReceiverSecrets).")]
    group, repeat = seconds(route.get("group_interval")), seconds(route.get("repeat_interval"))
    if group is None or repeat is None:
        return [(holder.urn, f"The Watchdog's route to '{receiver}' has timers Alertmanager cannot read "
                             f"(group_interval {route.get('group_interval')!r}, repeat_interval "
                             f"{route.get('repeat_interval')!r}); set monitoring.alerting.heartbeat.interval.")]
    # The repeat is checked at each group interval: the Watchdog goes out every repeat, rounded up to a
    # multiple of the group interval (docs/configuration.md:264).
    period = -(-repeat // group) * group
    if period > MAX_HEARTBEAT_S:
        return [(holder.urn, f"Alertmanager sends the Watchdog to '{receiver}' only every {period / 60:g} minutes "
                             f"(group_interval {route['group_interval']}, repeat_interval {route['repeat_interval']}), "
                             f"so an outage could go unnoticed that long; route it with intervals of at most "
                             f"{MAX_HEARTBEAT_S // 60} minutes (monitoring.alerting.heartbeat.interval).")]
    return []


def check(resources, config) -> list[tuple[str, str]]:
    stack = next((r for r in resources if r.resource_type == "pulumi:pulumi:Stack"), None)
    environment = stack.props.get("environment") if stack is not None else None
    # Fails closed: a stack that does not say its environment is judged as production.
    if isinstance(environment, str) and environment not in set(config["productionEnvironments"]):
        return []
    return wiring.unrouted_alerts(resources) + unheard_watchdog(resources)


POLICY = stack_policy(
    NAME,
    "In production, every NeuroDock alert is routed to an Alertmanager receiver that notifies someone, and the "
    "Watchdog to a heartbeat that hears it at least hourly.",
    check,
    config_schema=PRODUCTION_SCHEMA,
)

"""Who hears about alerts: Alertmanager's receivers and routing tree, as the monitoring chart's
``alertmanager.config`` value.

No credential is ever in the configuration: each receiver reads its webhook URL, integration key or
SMTP password from a file, one key of the Secret ``SECRET_NAME`` that Alertmanager mounts under
``SECRETS_DIR``, and Alertmanager reads the file each time it sends (docs/upstream.md). The rendered
configuration is checked with ``amtool check-config`` and ``amtool config routes test``
(tests/test_alertmanager.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

NULL_RECEIVER = "null"
"""The chart's receiver that notifies nobody (``values.yaml`` ``alertmanager.config``)."""
SECRET_NAME = "neurodock-alert-receivers"
"""The Secret holding one credential per receiver, keyed by receiver name."""
SECRETS_DIR = f"/etc/alertmanager/secrets/{SECRET_NAME}"
"""Where the Prometheus Operator mounts a Secret listed in ``alertmanagerSpec.secrets``."""
WATCHDOG = "Watchdog"
"""kube-prometheus-stack's always-firing alert (``expr: vector(1)``, severity ``none``; 82.6.0
``templates/prometheus/rules-1.14/general.rules.yaml:55-88``): while Prometheus evaluates rules and Alertmanager
sends, it arrives; a dead man's switch outside the cluster alerts when it stops."""
SILENT_ALERTS = (WATCHDOG, "InfoInhibitor")
"""The chart's own alerts that are meant to notify nobody (the Watchdog, unless a heartbeat hears it):
InfoInhibitor only mutes info alerts."""
GROUP_BY = ("alertname", "namespace", "model", "hostname")
"""One notification per alert, namespace, model and GPU node: a page about one model or node never
hides another."""
INHIBIT_EQUAL = ("namespace", "alertname", "model")
"""What a firing alert must share with a lower-severity one to mute it. The chart's rules compare
namespace and alert name only; NeuroDock's model alerts share both, so one model's page would mute
another model's ticket."""


@dataclass(frozen=True, kw_only=True)
class Receiver:
    name: str
    kind: Literal["slack", "pagerduty", "webhook", "email"]
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Non-secret settings: ``channel`` (slack); ``url`` (webhook); ``to``, ``from``, ``smarthost``,
    ``auth_username``, ``require_tls`` (email)."""
    send_resolved: bool
    """Also notify when an alert resolves."""
    has_secret: bool = True
    """Whether the receiver's credential is in the Secret (email without SMTP auth has none)."""


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    """A dead man's switch: Alertmanager posts the Watchdog to a URL every ``interval``; the service behind it
    (a healthchecks.io check, a Dead Man's Snitch, a Better Stack heartbeat...) alerts its own receivers when the
    posts stop, so a dead Prometheus, Alertmanager or cluster is noticed."""

    name: str
    """The receiver's name, and its key in the receivers' Secret, which holds the URL."""
    interval: str
    """How often the Watchdog is sent (e.g. ``1m``): the route's ``group_interval`` and ``repeat_interval``."""


@dataclass(frozen=True, kw_only=True)
class AlertRoute:
    receiver: str
    severities: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    continue_: bool
    """Go on matching the routes after this one (Alertmanager's ``continue``)."""


def _any_of(values: Sequence[str]) -> str:
    """An RE2 alternation matching exactly these strings; a ``.`` becomes ``[.]``, the only
    metacharacter model names and severities may hold, so no backslash needs quoting."""
    return "|".join(v.replace(".", "[.]") for v in values)


def _receiver(r: Receiver) -> dict[str, Any]:
    secret = f"{SECRETS_DIR}/{r.name}"
    if r.kind == "slack":
        body = {"api_url_file": secret, "channel": r.settings["channel"],
                "title": '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}',
                "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.description }}\n"
                        "Runbook: {{ .Annotations.runbook_url }}\n{{ end }}"}
    elif r.kind == "pagerduty":
        # Alertmanager's default description: never empty, unlike a summary grouped alerts do not share.
        body = {"routing_key_file": secret}
    elif r.kind == "webhook":
        body = {"url": r.settings["url"]}
        if r.has_secret:
            body["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": secret}}
    else:
        body = {"to": ", ".join(r.settings["to"]), "from": r.settings["from"],
                "smarthost": r.settings["smarthost"], "require_tls": r.settings.get("require_tls", True)}
        if r.has_secret:
            body |= {"auth_username": r.settings["auth_username"], "auth_password_file": secret}
    return {"name": r.name, f"{r.kind}_configs": [{"send_resolved": r.send_resolved, **body}]}


def _heartbeat(heartbeat: Heartbeat) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Watchdog's route and the heartbeat's receiver.

    Alertmanager resends a group still firing once ``repeat_interval`` has passed, checked at each
    ``group_interval`` ("it should be a multiple of the group_interval", v0.31.1 ``docs/configuration.md:264``;
    the root's are 5m and ``repeatInterval``): both are the heartbeat's interval, so the Watchdog arrives
    every interval and not every 4 hours. The URL is the secret (a ping URL holds its check's key), read from
    the receivers' Secret with ``url_file`` (Alertmanager 0.26+, ``config/notifiers.go:637-670`` at v0.31.1, the
    version the chart runs); nothing is sent when it resolves, as a heartbeat has nothing to resolve."""
    route = {"receiver": heartbeat.name, "matchers": [f'alertname = "{WATCHDOG}"'],
             "group_wait": "0s", "group_interval": heartbeat.interval, "repeat_interval": heartbeat.interval}
    receiver = {"name": heartbeat.name,
                "webhook_configs": [{"send_resolved": False, "url_file": f"{SECRETS_DIR}/{heartbeat.name}"}]}
    return route, receiver


def alertmanager_config(receivers: Sequence[Receiver], routes: Sequence[AlertRoute], default_receiver: str | None,
                        repeat_interval: str, heartbeat: Heartbeat | None = None,
                        canary_rollback: CanaryRollback | None = None) -> dict[str, Any]:
    """The ``inhibit_rules``, ``route`` and ``receivers`` of Alertmanager's configuration. With no
    receiver every alert goes to ``null``, as the chart's own default does; the program warns about it.
    With a heartbeat, the Watchdog goes there, and nowhere else. With ``canary_rollback``, rollback requests
    go first to its relay (``_canary_rollback``)."""
    silent = [name for name in SILENT_ALERTS if heartbeat is None or name != WATCHDOG]
    children: list[dict[str, Any]] = [
        {"receiver": NULL_RECEIVER, "matchers": [f'alertname = "{name}"']} for name in silent]
    extra_receivers = []
    if heartbeat is not None:
        route, receiver = _heartbeat(heartbeat)
        children.insert(0, route)
        extra_receivers.append(receiver)
    if canary_rollback is not None:
        route, receiver = _canary_rollback(canary_rollback)
        children.insert(0, route)
        extra_receivers.append(receiver)
    for route in routes:
        matchers = []
        if route.severities:
            matchers.append(f'severity =~ "{_any_of(route.severities)}"')
        if route.models:
            matchers.append(f'model =~ "{_any_of(route.models)}"')
        children.append({"receiver": route.receiver, "matchers": matchers, "continue": route.continue_})
    root = default_receiver or (receivers[0].name if receivers else NULL_RECEIVER)
    if routes or canary_rollback is not None:
        # Alertmanager uses the root's receiver only when no child matched (v0.31.1 ``dispatch/route.go:147-170``):
        # an alert a `continue` route took reaches the default receiver through this last, catch-all child.
        children.append({"receiver": root})
    return {
        "inhibit_rules": [
            {"source_matchers": ['severity = "critical"'], "target_matchers": ['severity =~ "warning|info"'],
             "equal": list(INHIBIT_EQUAL)},
            {"source_matchers": ['severity = "warning"'], "target_matchers": ['severity = "info"'],
             "equal": list(INHIBIT_EQUAL)},
            # The chart's InfoInhibitor mutes info alerts of a namespace where nothing worse fires.
            {"source_matchers": ['alertname = "InfoInhibitor"'], "target_matchers": ['severity = "info"'],
             "equal": ["namespace"]},
            {"target_matchers": ['alertname = "InfoInhibitor"']},
        ],
        "route": {
            "receiver": root,
            "group_by": list(GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": repeat_interval,
            "routes": children,
        },
        "receivers": [{"name": NULL_RECEIVER}, *(_receiver(r) for r in receivers), *extra_receivers],
    }


@dataclass(frozen=True, kw_only=True)
class CanaryRollback:
    """Where an alert asking for a canary's rollback (``alerts.ROLLBACK_LABEL``) is sent: the rollback relay,
    which turns Alertmanager's webhook message into GitHub's ``repository_dispatch`` (docs/rollouts.md)."""

    receiver: str
    """The receiver's name."""
    url: str
    """The relay's in-cluster URL; it holds no credential (the relay reads the GitHub token itself). Alertmanager
    authenticates to it with the receivers' Secret's key of the receiver's name, which the stack generates."""
    label: tuple[str, str]
    """The alert label and value that ask for a rollback (``alerts.ROLLBACK_LABEL``)."""


ROLLBACK_RECEIVER = "canary-rollback"
"""The receiver of rollback requests, the relay (``components.monitoring.rollback_relay_deploy``)."""
ROLLBACK_GROUP_BY = ("alertname", "model")
"""One rollback request per model: each model's canary is rolled back on its own."""


def _canary_rollback(rollback: CanaryRollback) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first route, sending rollback requests to the relay at once (``group_wait: 0s``), then on to the
    routes below it (``continue``), so people still hear of the breach; and the relay's receiver.

    Alertmanager's webhook posts its own message (v0.31.1 ``notify/webhook/webhook.go`` ``Message``: version,
    groupKey, status, receiver, groupLabels, commonLabels, alerts...); ``webhook_config`` has no body template
    (``config/notifiers.go:637-654``: url/url_file, http_config, max_alerts, timeout). GitHub's dispatch endpoint
    needs ``{"event_type": ...}`` (docs.github.com REST "Create a repository dispatch event"), hence the relay.
    ``repeat_interval`` resends while the canary still burns: a dispatch lost on the way is retried, and the
    rollback is idempotent (weight 0 stays 0)."""
    key, value = rollback.label
    return ({"receiver": rollback.receiver, "matchers": [f'{key} = "{value}"'], "group_by": list(ROLLBACK_GROUP_BY),
             "group_wait": "0s", "group_interval": "1m", "repeat_interval": "10m", "continue": True},
            {"name": rollback.receiver, "webhook_configs": [{
                "send_resolved": False, "url": rollback.url, "max_alerts": 0,
                # The relay hears only this secret (the receivers' Secret's key of the receiver's name).
                "http_config": {"authorization": {"type": "Bearer",
                                                  "credentials_file": f"{SECRETS_DIR}/{rollback.receiver}"}}}]})

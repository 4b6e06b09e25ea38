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
SILENT_ALERTS = ("Watchdog", "InfoInhibitor")
"""The chart's own alerts that are meant to notify nobody: Watchdog always fires (a dead man's switch
for an external checker), InfoInhibitor only mutes info alerts."""
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


def alertmanager_config(receivers: Sequence[Receiver], routes: Sequence[AlertRoute], default_receiver: str | None,
                        repeat_interval: str) -> dict[str, Any]:
    """The ``inhibit_rules``, ``route`` and ``receivers`` of Alertmanager's configuration. With no
    receiver every alert goes to ``null``, as the chart's own default does; the program warns about it."""
    children: list[dict[str, Any]] = [
        {"receiver": NULL_RECEIVER, "matchers": [f'alertname = "{name}"']} for name in SILENT_ALERTS]
    for route in routes:
        matchers = []
        if route.severities:
            matchers.append(f'severity =~ "{_any_of(route.severities)}"')
        if route.models:
            matchers.append(f'model =~ "{_any_of(route.models)}"')
        children.append({"receiver": route.receiver, "matchers": matchers, "continue": route.continue_})
    root = default_receiver or (receivers[0].name if receivers else NULL_RECEIVER)
    if routes:
        # Alertmanager uses the root's receiver only when no child matched: an alert a `continue`
        # route took reaches the default receiver through this last, catch-all child.
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
        "receivers": [{"name": NULL_RECEIVER}, *(_receiver(r) for r in receivers)],
    }

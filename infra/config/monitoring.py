"""Monitoring: Prometheus, Grafana and the GPU alerts' thresholds, and who hears about alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field

from components.monitoring.alertmanager import ROLLBACK_RECEIVER
from infra.config.base import CONFIG_NAMESPACE, Duration, Fraction, Model, Name, Problem, decode, key_path, pattern

if TYPE_CHECKING:
    from infra.config.stack import StackConfig


class AlertThresholds(Model):
    """Cluster-wide alert thresholds: the GPU alerts', and the SLO burn-rate alerts' traffic guard."""

    gpu_memory_usage: Fraction = 0.95
    """Alert when a GPU's framebuffer is fuller than this fraction for 10 minutes (default 0.95)."""
    gpu_idle_utilisation_percent: float = Field(default=5, gt=0, le=100)
    """A GPU below this utilisation (percent) counts as idle (default 5)."""
    gpu_idle_minutes: int = Field(default=30, gt=0, le=1440)
    """Alert when a model's GPUs are idle this long while it runs above its minimum replicas (default 30)."""
    slo_min_requests: int = Field(default=100, ge=1, le=10_000_000)
    """Requests the long window of a burn-rate alert must have seen before the alert may fire, so that a
    handful of requests, one of them failed, cannot page (default 100)."""


Severity = Literal["critical", "warning", "info"]


class Receiver(Model):
    """Where Alertmanager sends notifications. Its credential (webhook URL, routing key, SMTP
    password) is never in the stack file: it is the receiver's entry in the secret
    ``neurodock:alertReceiverSecrets``."""

    name: Name
    """Receiver name, used by ``routes`` and ``defaultReceiver``."""
    send_resolved: bool = True
    """Also notify when the alert resolves (default true)."""

    def needs_secret(self) -> bool:
        return True


SlackChannel = pattern(r"^[#@]?[A-Za-z0-9][-_.A-Za-z0-9]{0,79}$", "a Slack channel or user without spaces",
                       "#ml-alerts")


class SlackReceiver(Receiver):
    """A Slack channel, through an incoming webhook (its URL is the secret)."""

    type: Literal["slack"]
    channel: SlackChannel
    """Channel, for example ``#ml-alerts``."""


class PagerDutyReceiver(Receiver):
    """A PagerDuty service, through Events API v2 (its integration key is the secret)."""

    type: Literal["pagerduty"]


HttpUrl = pattern(r"^https?://[^\s]+$", "an http or https URL", "https://hooks.example.com/alerts")


class WebhookReceiver(Receiver):
    """Any HTTP endpoint that takes Alertmanager's webhook payload."""

    type: Literal["webhook"]
    url: HttpUrl
    """Where to POST; keep tokens out of it and use ``bearerToken``."""
    bearer_token: bool = False
    """Send the receiver's secret as an ``Authorization: Bearer`` header (default false: no secret)."""

    def needs_secret(self) -> bool:
        return self.bearer_token


Email = pattern(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an e-mail address", "oncall@example.com")


SmtpHost = pattern(r"^[A-Za-z0-9][-.A-Za-z0-9]*:[0-9]{1,5}$", "host:port", "smtp.example.com:587")


class EmailReceiver(Receiver):
    """E-mail through an SMTP relay; with ``authUsername``, its password is the secret."""

    type: Literal["email"]
    to: list[Email] = Field(min_length=1)
    """Recipients."""
    from_: Email = Field(alias="from")
    """Sender address."""
    smarthost: SmtpHost
    """SMTP relay as host:port, for example smtp.example.com:587."""
    auth_username: str | None = None
    """SMTP user (default none: no authentication, and no secret)."""
    require_tls: bool = True
    """Refuse to send without STARTTLS (default true)."""

    def needs_secret(self) -> bool:
        return self.auth_username is not None


AnyReceiver = Annotated[Union[SlackReceiver, PagerDutyReceiver, WebhookReceiver, EmailReceiver],  # noqa: UP007
                        Field(discriminator="type")]


class AlertRoute(Model):
    """Alerts matching every condition given go to ``receiver``; routes are tried in order."""

    receiver: Name
    """The receiver's name."""
    severities: list[Severity] = []
    """Only alerts of these severities (default any)."""
    models: list[str] = []
    """Only alerts about these models, by served name (default any)."""
    continue_: bool = Field(default=False, alias="continue")
    """Go on to the next routes after this one matches (default false: stop here)."""


AlertInterval = pattern(r"^[1-9][0-9]*(m|h|d|w)$", "a whole number of minutes (m), hours (h), days (d) or weeks (w)",
                        "4h")
HeartbeatInterval = pattern(r"^([1-9]|[1-5][0-9]|60)m$", "a whole number of minutes from 1 to 60, as 1m", "1m")


class Heartbeat(Model):
    """A dead man's switch: Alertmanager posts kube-prometheus-stack's always-firing ``Watchdog`` to a URL
    every ``interval``, and the service behind the URL (a healthchecks.io check, Dead Man's Snitch, a Better
    Stack heartbeat...) alerts you when the posts stop: a dead Prometheus, Alertmanager or cluster cannot
    report itself. The URL holds the check's key, so it is the secret: the heartbeat's entry (``name``) in
    ``neurodock:alertReceiverSecrets``."""

    name: Name = "heartbeat"
    """The heartbeat's name: its key in ``alertReceiverSecrets``, and its receiver's name (default heartbeat)."""
    interval: HeartbeatInterval = "1m"
    """How often the Watchdog is sent (default 1m); give the check a period of this and a grace of a few more."""


GitHubRepository = pattern(r"^[A-Za-z0-9](-?[A-Za-z0-9]){0,38}/[-_.A-Za-z0-9]{1,100}$",
                           "a GitHub repository as owner/name", "acme/neurodock-stacks")
"""GitHub's limits: an owner of at most 39 letters, digits and single hyphens, not starting or ending with one; a
repository name of at most 100 letters, digits, '-', '_' and '.'."""


class AlertingCanaryRollback(Model):
    """Automatic rollback: a canary breaching its SLOs (the alert ``NeuroDockCanaryBudgetBurn``) is routed by
    Alertmanager to a small in-cluster relay, which starts ``.github/workflows/rollout-rollback.yaml`` in
    ``repository`` by a ``repository_dispatch`` (docs/rollouts.md). The relay's GitHub token is an entry of the
    secret ``neurodock:alertReceiverSecrets``, like the receivers' credentials."""

    repository: GitHubRepository
    """The repository holding this stack file and the rollback workflow, as owner/name."""
    token_key: Name
    """The entry of ``alertReceiverSecrets`` holding a GitHub token allowed to create repository dispatch events
    on ``repository`` (a fine-grained token with Contents: read and write)."""


class Alerting(Model):
    """Who hears about alerts (Alertmanager's receivers and routing tree)."""

    receivers: list[AnyReceiver] = []
    """Receivers (default none: alerts reach nobody, which `neurodock plan` warns about and the
    policy alerts-reach-a-receiver refuses in production)."""
    routes: list[AlertRoute] = []
    """Routes, tried in order (default none: everything goes to ``defaultReceiver``)."""
    default_receiver: Name | None = None
    """Receiver of alerts no route takes (default: the first receiver)."""
    repeat_interval: AlertInterval = "4h"
    """How often a still-firing alert is sent again (default 4h)."""
    heartbeat: Heartbeat | None = None
    """The dead man's switch that must hear the Watchdog (default none; the policy alerts-reach-a-receiver
    requires one in production)."""
    canary_rollback: AlertingCanaryRollback | None = None
    """Roll a breaching canary back without a person: the relay and Alertmanager's route to it (default none: a
    canary's burn-rate alert reaches people only)."""

    def credentialed(self) -> list[str]:
        """Names of the receivers (the heartbeat, the rollback relay's token) that need an entry in
        ``alertReceiverSecrets``, sorted."""
        names = [r.name for r in self.receivers if r.needs_secret()]
        names += [self.heartbeat.name] if self.heartbeat else []
        names += [self.canary_rollback.token_key] if self.canary_rollback else []
        return sorted(names)


class Monitoring(Model):
    """Prometheus and Grafana (kube-prometheus-stack)."""

    enabled: bool = True
    """Install the monitoring stack (default true)."""
    retention: Duration = "15d"
    """Prometheus retention, for example 15d (default 15d)."""
    storage_gib: int = Field(default=50, ge=1, le=65536)
    """Prometheus persistent volume size in GiB (default 50)."""
    grafana: bool = True
    """Install Grafana (default true); it is never exposed outside the cluster."""
    alerts: AlertThresholds = AlertThresholds()
    """Thresholds of the cluster-wide GPU alerts."""
    alerting: Alerting = Alerting()
    """Receivers and routes of the alerts (default: none, see ``receivers``)."""


GPU_MEMORY_ALERT_HEADROOM = 0.05
"""How far below ``monitoring.alerts.gpuMemoryUsage`` vLLM's ``gpuMemoryUtilization`` must stay: vLLM
takes its fraction of each GPU's memory at start and holds it, and the alert's ratio, used / (used +
free), reads higher: DCGM leaves the reserved framebuffer out of both (446 of 23034 MiB on an L4, about
2%), and the CUDA context sits outside vLLM's share. Without headroom the alert would fire for as long
as the model runs."""


def alerting_problems(config: StackConfig) -> list[Problem]:
    alerting = config.monitoring.alerting
    out: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(("monitoring", "alerting", *loc)), message))

    names: dict[str, int] = {}
    for i, receiver in enumerate(alerting.receivers):
        if receiver.name in names:
            add(("receivers", i, "name"), f"receivers[{names[receiver.name]}] is also named {receiver.name!r}")
        names.setdefault(receiver.name, i)
    if alerting.heartbeat is not None and alerting.heartbeat.name in names:
        add(("heartbeat", "name"), f"receivers[{names[alerting.heartbeat.name]}] is also named "
            f"{alerting.heartbeat.name!r}; give the heartbeat a name of its own")
    out += _canary_rollback_problems(config, names)
    known = ", ".join(names) or "none"
    if not alerting.receivers:
        if alerting.routes or alerting.default_receiver:
            add(("receivers",), "routes and defaultReceiver name receivers; define them here")
        return out
    if alerting.default_receiver is not None and alerting.default_receiver not in names:
        add(("defaultReceiver",), f"no receiver named {alerting.default_receiver!r}; receivers: {known}")
    served = {m.model_name for m in config.models}
    for i, route in enumerate(alerting.routes):
        if route.receiver not in names:
            add(("routes", i, "receiver"), f"no receiver named {route.receiver!r}; receivers: {known}")
        for j, model in enumerate(route.models):
            if model not in served:
                add(("routes", i, "models", j), f"no model serves {model!r}; models: "
                    f"{', '.join(sorted(served)) or 'none'} (use the served name, as clients send it)")
    return out


def _canary_rollback_problems(config: StackConfig, receivers: dict[str, int]) -> list[Problem]:
    rollback = config.monitoring.alerting.canary_rollback
    if rollback is None:
        return []
    key = key_path(("monitoring", "alerting", "canaryRollback"))
    out = []
    if not config.monitoring.enabled:
        out.append(Problem(key, "needs the monitoring stack: the canary's burn-rate alert and Alertmanager, which "
                                "sends it to the rollback relay, come with it, and monitoring.enabled is false; set "
                                "monitoring.enabled to true, or remove canaryRollback"))
    if not config.monitoring.alerting.receivers:
        out.append(Problem(key, "needs monitoring.alerting.receivers: a canary rolled back by the relay must also "
                                "reach people, who learn of the breach and the rollback from the same alert; add a "
                                "receiver, or remove canaryRollback"))
    if rollback.token_key == ROLLBACK_RECEIVER or rollback.token_key in receivers:
        taken = (f"the name of receivers[{receivers[rollback.token_key]}]" if rollback.token_key in receivers
                 else "the rollback relay's own receiver")
        out.append(Problem(f"{key}.tokenKey", f"{rollback.token_key!r} is {taken}, whose alertReceiverSecrets entry is "
                                              "another credential; give the GitHub token an entry of its own, e.g. "
                                              "'github-rollback'"))
    heartbeat = config.monitoring.alerting.heartbeat
    if heartbeat is not None and heartbeat.name == rollback.token_key:
        out.append(Problem(f"{key}.tokenKey", f"{rollback.token_key!r} is the heartbeat's entry (its ping URL); give "
                                              "the GitHub token an entry of its own, e.g. 'github-rollback'"))
    if ROLLBACK_RECEIVER in receivers:
        out.append(Problem(key_path(("monitoring", "alerting", "receivers", receivers[ROLLBACK_RECEIVER], "name")),
                           f"{ROLLBACK_RECEIVER!r} is the name of the rollback relay's receiver, which canaryRollback "
                           "adds; rename this receiver"))
    return out


def alerting_warnings(config: StackConfig) -> list[Problem]:
    """A rollback relay with no canary to roll back is harmless between rollouts, but worth saying."""
    if config.monitoring.alerting.canary_rollback is None or any(m.canary for m in config.models):
        return []
    return [Problem(key_path(("monitoring", "alerting", "canaryRollback")),
                    "is set but no model has a canary: the relay runs and waits, and rolls back nothing until a "
                    "model gets a canary")]


def missing_receiver_credentials(config: StackConfig) -> Problem:
    """The problem of receivers whose credentials are not set."""
    key = f"{CONFIG_NAMESPACE}:alertReceiverSecrets"
    needed = config.monitoring.alerting.credentialed()
    example = ", ".join(f'"{name}": "..."' for name in needed)
    return Problem(key, f"receivers {', '.join(needed)} need their credentials here, and it is not set; set it with "
                        f"`pulumi config set --secret {key} '{{{example}}}'`")


def receiver_secret_problems(config: StackConfig, raw: Any) -> list[Problem]:
    """``neurodock:alertReceiverSecrets`` against the receivers that need one, when the program can
    read it (``raw``: its plaintext; None when it is unset or cannot be decrypted, as in an offline
    plan). Never quotes the values. A missing secret is the program's to report (``missing_receiver_credentials``)."""
    key = f"{CONFIG_NAMESPACE}:alertReceiverSecrets"
    needed = set(config.monitoring.alerting.credentialed())
    if raw is None:
        return []
    secrets = decode(raw)
    if not isinstance(secrets, dict) or not all(isinstance(v, str) and v for v in secrets.values()):
        return [Problem(key, 'must be a JSON object of receiver name to its credential, e.g. {"oncall": "<key>"}')]
    out = [Problem(key, f"has no entry for receiver {name!r}, which needs its credential")
           for name in sorted(needed - set(secrets))]
    out += [Problem(key, f"has an entry {name!r} that no receiver needs; receivers needing one: "
                         f"{', '.join(sorted(needed)) or 'none'}") for name in sorted(set(secrets) - needed)]
    return out


__all__ = [
    "GPU_MEMORY_ALERT_HEADROOM",
    "AlertInterval",
    "AlertRoute",
    "AlertThresholds",
    "Alerting",
    "AlertingCanaryRollback",
    "AnyReceiver",
    "Email",
    "EmailReceiver",
    "GitHubRepository",
    "Heartbeat",
    "HeartbeatInterval",
    "HttpUrl",
    "Monitoring",
    "PagerDutyReceiver",
    "Receiver",
    "Severity",
    "SlackChannel",
    "SlackReceiver",
    "SmtpHost",
    "WebhookReceiver",
    "alerting_problems",
    "alerting_warnings",
    "missing_receiver_credentials",
    "receiver_secret_problems"
]

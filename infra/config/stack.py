"""A stack's whole configuration: the model of every ``neurodock:*`` key together, reading it from what
Pulumi hands the program, and the checks that span several concerns."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from neurodock_policies.secret_shapes import secret_args, secret_shape
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER
from pydantic import Field, PrivateAttr, ValidationError

from components.gateway.keys import api_keys_problem
from infra.config.base import (
    CONFIG_NAMESPACE,
    ConfigError,
    Model,
    Name,
    Problem,
    decode,
    is_secure,
    key_path,
    pattern,
)
from infra.config.budgets import budget_problems
from infra.config.capacity import capacity
from infra.config.cloud import Cloud, KindCloud, cloud_problems, cloud_warnings
from infra.config.coherence import coherence_problems, coherence_warnings
from infra.config.cost import Budget
from infra.config.deploy import Deploy, deploy_problems
from infra.config.engine import engine_problems
from infra.config.gateway import Gateway, gateway_problems
from infra.config.messages import structural_problems
from infra.config.monitoring import Monitoring, alerting_problems, alerting_warnings, receiver_secret_problems
from infra.config.pools import NodePool, pool_problems, pool_warnings
from infra.config.providers import provider_credential_problems
from infra.config.serving import ModelSpec, Readiness, model_problems, model_warnings

SECRET_KEYS: dict[str, str] = {
    "hfToken": "Hugging Face access token, for gated models (optional)",
    "grafanaAdminPassword": "Grafana admin password (optional: generated when absent)",
    "gatewayApiKeys": ('API keys of the gateway, a JSON object of client id to key, e.g. {"team-a": "sk-..."} '
                       "(optional: no authentication when absent)"),
    "gatewayTlsCert": "PEM certificate chain of the gateway (with gateway.tls)",
    "gatewayTlsKey": "PEM private key of the gateway (with gateway.tls)",
    "alertReceiverSecrets": ('credentials of the alert receivers, a JSON object of receiver name to its Slack or '
                             'webhook URL, PagerDuty integration key or SMTP password, e.g. {"oncall": "<key>"} '
                             "(with monitoring.alerting.receivers)"),
}
"""Keys that hold secrets. They must be set with ``pulumi config set --secret`` and never appear
in the models: the program reads them as secret Outputs (see :mod:`infra.secrets`)."""


ChartMirror = pattern(r"^(https?://[^\s/]+(/\S*)?|oci://[^\s/]+(/[^\s/]+)*)$",
                      "an http:// or https:// chart repository URL, or an oci:// registry path",
                      "oci://registry.example.com/neurodock-charts")


WeightsBucket = pattern(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]|gs://[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9])$",
                        "s3://BUCKET or gs://BUCKET, a bucket name without a path",
                        "gs://neurodock-state-4821-weights")


class StackConfig(Model):
    """All of a stack's ``neurodock:*`` configuration."""

    environment: Name
    """Environment name (dev, staging, prod...), used in resource names and tags."""
    cloud: Cloud
    """Where the cluster runs; ``provider`` selects kind, eks or gke."""
    node_pools: list[NodePool] = Field(min_length=1)
    """Node pools; at least one with ``role: system``."""
    monitoring: Monitoring = Monitoring()
    """Monitoring stack settings."""
    models: list[ModelSpec] = []
    """The model catalog (default empty)."""
    readiness: Readiness = Readiness()
    """Readiness budgets of every model, and what their estimate assumes (default: from the estimate)."""
    gateway: Gateway = Gateway()
    """The OpenAI-compatible entry point."""
    tags: dict[str, str] = {}
    """Tags or labels put on every cloud resource that takes them (default none)."""
    deploy: Deploy = Deploy()
    """Where the stack's `pulumi up` runs (default a GitHub-hosted runner)."""
    weights_bucket: WeightsBucket | None = None
    """Where Hugging Face weights are mirrored and read from: an existing bucket, ``s3://NAME`` on EKS or
    ``gs://NAME`` on GKE, such as the state-backend project's retained, replicated weights bucket (its
    ``weightsUrl`` output). A stack re-created from its config, or its DR copy in another region, then finds
    its models' weights there and needs neither Hugging Face nor its token (default: a bucket of the stack's
    own, a cache destroyed with it)."""
    budget: Budget | None = None
    """What the stack may cost a month, enforced by the policy pack against the plan's estimate (default none)."""
    chart_mirror: ChartMirror | None = None
    """An HTTP(S) chart repository or ``oci://`` registry path holding every pinned chart under its own name
    and version, from which every Helm release fetches its chart instead of the chart's own repository: for
    clusters deployed without internet access (default none)."""
    _secrets_set: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def secrets_set(self) -> frozenset[str]:
        """The secret keys (``SECRET_KEYS``) the stack sets, fully qualified: their values never enter the model,
        but whether they are set decides what other keys mean (TLS certificates without ``gateway.tls``)."""
        return self._secrets_set

    @property
    def cluster_name(self) -> str:
        if isinstance(self.cloud, KindCloud) and self.cloud.cluster_name:
            return self.cloud.cluster_name
        return f"neurodock-{self.environment}"

    def pool(self, name: str) -> NodePool | None:
        return next((p for p in self.node_pools if p.name == name), None)


def parse_config(
    values: Mapping[str, Any], secret_keys: Iterable[str] = ()
) -> StackConfig:
    """Validate ``neurodock:*`` values into a :class:`StackConfig`, or raise :class:`ConfigError`.

    ``values`` maps full keys (``neurodock:nodePools``) to values, either as Pulumi hands them to a
    program (structured values JSON-encoded as strings) or already decoded. Keys of other
    namespaces (``aws:``, ``pulumi:``...) are ignored. ``secret_keys`` names the keys that were set
    as secrets.
    """
    secret_keys = set(secret_keys)
    data: dict[str, Any] = {}
    problems: list[Problem] = provider_credential_problems(values, secret_keys)
    for full_key, value in values.items():
        namespace, _, key = full_key.partition(":")
        if namespace != CONFIG_NAMESPACE and difflib.get_close_matches(namespace, [CONFIG_NAMESPACE], cutoff=0.75):
            problems.append(Problem(full_key, f"is in no namespace NeuroDock reads; did you mean "
                                              f"{CONFIG_NAMESPACE}:{key}?"))
        if namespace != CONFIG_NAMESPACE or not key:
            continue
        if key in SECRET_KEYS:
            if full_key not in secret_keys:
                problems.append(Problem(full_key, (
                    "holds a secret but is stored in plaintext; remove it from the stack file and set "
                    f"it with `pulumi config set --secret {full_key}`")))
            continue
        data[key] = decode(value)

    problems.extend(plaintext_secret_problems(data))
    try:
        config = StackConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(structural_problems(exc, data))
        raise ConfigError(problems) from None
    present = {k.partition(":")[2] for k in values if k.startswith(CONFIG_NAMESPACE + ":")}
    config._secrets_set = frozenset(f"{CONFIG_NAMESPACE}:{k}" for k in present if k in SECRET_KEYS)
    problems.extend(_semantic_problems(config))
    key = f"{CONFIG_NAMESPACE}:alertReceiverSecrets"
    # In plain text it is refused above; its entries are checked once Pulumi can decrypt it.
    raw = values.get(key) if key in secret_keys else None
    problems.extend(receiver_secret_problems(config, None if raw == UNKNOWN_MARKER else raw))
    problems.extend(secret_value_problems(values, secret_keys))
    if config.gateway.tls:
        for key in ("gatewayTlsCert", "gatewayTlsKey"):
            if key not in present:
                problems.append(Problem(key_path(("gateway", "tls")), (
                    f"TLS needs the secret {CONFIG_NAMESPACE}:{key}; set it with "
                    f"`pulumi config set --secret {CONFIG_NAMESPACE}:{key} < FILE` or set gateway.tls to false")))
    if problems:
        raise ConfigError(problems)
    return config


def secret_value_problems(values: Mapping[str, Any], secret_keys: Iterable[str]) -> list[Problem]:
    """Each secret's shape, checked when the program starts, before any resource: `pulumi up` and
    `pulumi preview` hand the program every secret decrypted (an offline plan cannot decrypt them: they are
    the unknown marker then, and left for the deploy). A malformed value found later, inside an ``apply``,
    would fail the update half-way, after what comes before it was created. Never quotes a value."""
    out = []
    for name in SECRET_KEYS:
        key = f"{CONFIG_NAMESPACE}:{name}"
        raw = values.get(key) if key in secret_keys else None
        if raw is None or raw == UNKNOWN_MARKER or is_secure(raw):
            continue
        text = raw if isinstance(raw, str) else json.dumps(raw)
        if name == "gatewayApiKeys" and (problem := api_keys_problem(text)) is not None:
            out.append(Problem(key, problem))
        elif name == "gatewayTlsCert" and "-----BEGIN CERTIFICATE-----" not in text:
            out.append(Problem(key, "must be a PEM certificate chain (-----BEGIN CERTIFICATE-----, the server's "
                                    "certificate first); set it with `pulumi config set --secret "
                                    f"{key} < tls.crt`"))
        elif name == "gatewayTlsKey" and not re.search(r"-----BEGIN (RSA |EC )?PRIVATE KEY-----", text):
            out.append(Problem(key, "must be a PEM private key (-----BEGIN PRIVATE KEY-----, unencrypted); set it "
                                    f"with `pulumi config set --secret {key} < tls.key`"))
        elif name in ("hfToken", "grafanaAdminPassword") and (not text.strip() or text != text.strip()):
            out.append(Problem(key, "is empty or starts or ends with whitespace (a pasted newline?); set it again "
                                    f"with `pulumi config set --secret {key}`"))
    return out


SECRET_HOMES = {
    "a Hugging Face token": "hfToken",
    "the value of --hf-token": "hfToken",
    "the value of --api-key": "gatewayApiKeys",
    "an OpenAI API key": "gatewayApiKeys",
    "a Slack webhook URL": "alertReceiverSecrets",
    "a private key": "gatewayTlsKey",
}
"""The secret key where a credential of each kind belongs."""


def plaintext_secret_problems(data: Any) -> list[Problem]:
    """A value anywhere in the stack's plain config that holds a credential: an engine flag's, a tag's, a
    label's, a URL's. It would sit in git, and in every plan, Deployment and cloud console, in clear."""
    found: list[tuple[tuple[str | int, ...], str]] = []

    def walk(node: Any, loc: tuple[str | int, ...]) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if (what := secret_shape(str(key))) is not None:
                    found.append(((*loc, key), what))
                if key == "extraArgs" and isinstance(value, list):
                    found.extend(((*loc, key, i), what) for i, what in secret_args([str(a) for a in value]))
                else:
                    walk(value, (*loc, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, (*loc, i))
        elif isinstance(node, str) and (what := secret_shape(node)) is not None:
            found.append((loc, what))

    walk(data, ())
    out = []
    for loc, what in found:
        home = SECRET_HOMES.get(what)
        fix = (f"set it with `pulumi config set --secret {CONFIG_NAMESPACE}:{home}`" if home else
               f"keep credentials in the secret keys ({', '.join(SECRET_KEYS)}), set with `pulumi config set "
               "--secret`")
        out.append(Problem(key_path(loc), f"holds {what} in plain text, which would sit in git and in every plan "
                           f"and cloud console; remove it, revoke it, and {fix} (docs/configuration.md, \"Secrets\")"))
    return out


def _weights_bucket_problems(config: StackConfig) -> list[Problem]:
    bucket = config.weights_bucket
    want = {"eks": "s3://", "gke": "gs://"}.get(config.cloud.provider)
    if bucket is None or (want and bucket.startswith(want)):
        return []
    fix = f"a {want} bucket" if want else "remove it: kind reads weights from where they are published"
    return [Problem(key_path(("weightsBucket",)), f"{bucket} cannot hold the mirrored weights of a "
                    f"{config.cloud.provider} stack, whose models read them with its workload identity; use {fix}")]


def _semantic_problems(config: StackConfig) -> list[Problem]:
    """Facts across keys, concern by concern."""
    return [*_weights_bucket_problems(config), *cloud_problems(config), *deploy_problems(config),
            *pool_problems(config), *gateway_problems(config), *model_problems(config), *engine_problems(config),
            *budget_problems(config), *capacity(config)[0], *alerting_problems(config),
            *coherence_problems(config, config.secrets_set)]


def config_warnings(config: StackConfig) -> list[Problem]:
    """What a valid configuration may not mean: settings that change nothing, and limits it runs into only
    at its peak. `pulumi preview` and `neurodock plan` show them; `pulumi up` goes on."""
    return [*capacity(config)[1], *cloud_warnings(config), *pool_warnings(config), *model_warnings(config),
            *alerting_warnings(config), *coherence_warnings(config, config.secrets_set)]


__all__ = [
    "SECRET_HOMES", "SECRET_KEYS", "StackConfig", "config_warnings", "parse_config", "plaintext_secret_problems"
]

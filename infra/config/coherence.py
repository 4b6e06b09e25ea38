"""Settings that contradict another setting, which the program would otherwise drop without a word: receivers of a
monitoring stack that is off, gateway settings of a gateway that is off or private, TLS secrets of a gateway serving
HTTP, a shared weights volume of a storage class that cannot exist.

Each is an error where dropping it loses something the user relies on (alerts reaching the on-call, the deploy's
smoke test, HTTPS, a model that starts), and a warning where nothing is lost but the setting's effect."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from infra.config.base import CONFIG_NAMESPACE, Problem, key_path

if TYPE_CHECKING:
    from infra.config.stack import StackConfig

TLS_SECRETS = ("gatewayTlsCert", "gatewayTlsKey")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A StorageClass's name is a DNS subdomain (RFC 1123: at most 253 lowercase letters, digits, '-' and '.'), as the
API server validates every object name of that kind (kubernetes apimachinery ``IsDNS1123Subdomain``)."""
KIND_STORAGE = "rancher's local-path provisioner (class 'standard')"
"""kind's only storage class. It provisions node-local volumes: "NodePath only supports ReadWriteOnce and
ReadWriteOncePod access modes" (rancher/local-path-provisioner provisioner.go), so a ReadWriteMany claim stays
Pending and the model never starts."""


def _secrets(secrets_set: Iterable[str], names: Iterable[str]) -> list[str]:
    present = set(secrets_set)
    return [f"{CONFIG_NAMESPACE}:{n}" for n in names if f"{CONFIG_NAMESPACE}:{n}" in present]


def coherence_problems(config: StackConfig, secrets_set: Iterable[str]) -> list[Problem]:
    out: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(loc), message))

    monitoring, gateway = config.monitoring, config.gateway
    if not monitoring.enabled and monitoring.alerting.receivers:
        add(("monitoring", "alerting", "receivers"), "would hear nothing: Alertmanager and the alert rules come with "
            "the monitoring stack, and monitoring.enabled is false, so no alert would fire and nobody would be told "
            "of an outage; set monitoring.enabled to true, or remove monitoring.alerting")
    if not gateway.enabled and "smoke_test" in gateway.model_fields_set and gateway.smoke_test:
        add(("gateway", "smokeTest"), "cannot run: the smoke test asks every model through the gateway, and "
            "gateway.enabled is false, so `pulumi up` would no longer fail when a model does not answer; set "
            "gateway.enabled to true, or set smokeTest to false")
    tls = _secrets(secrets_set, TLS_SECRETS)
    if tls and gateway.enabled and not gateway.tls and "tls" not in gateway.model_fields_set:
        add(("gateway", "tls"), f"is false (its default) while {' and '.join(tls)} hold a certificate, so the gateway "
            "would serve plain HTTP; set gateway.tls to true, or remove the secrets (`pulumi config rm "
            f"{tls[0]}`)")
    for i, model in enumerate(config.models):
        storage_class = model.cache.shared_storage_class
        if storage_class is None:
            continue
        where = ("models", i, "cache", "sharedStorageClass")
        if len(storage_class) > 253 or not DNS_SUBDOMAIN.fullmatch(storage_class):
            add(where, f"{storage_class!r} is not a storage class name: at most 253 lowercase letters, digits, '-' "
                "and '.', starting and ending with a letter or digit, e.g. 'efs-sc'")
        elif config.cloud.provider == "kind":
            add(where, f"kind has no ReadWriteMany storage class: its volumes come from {KIND_STORAGE}, which makes "
                "node-local ReadWriteOnce volumes only, so the shared volume would stay Pending and the model never "
                "start; remove sharedStorageClass on kind")
    return out


def coherence_warnings(config: StackConfig, secrets_set: Iterable[str]) -> list[Problem]:
    out: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(loc), message))

    monitoring, gateway = config.monitoring, config.gateway
    if not monitoring.enabled:
        for key in sorted(monitoring.model_fields_set - {"enabled"}):
            field = type(monitoring).model_fields[key]
            if key == "alerting" and monitoring.alerting.receivers:
                continue  # an error
            add(("monitoring", field.alias or key), "is unused: monitoring.enabled is false, so no monitoring stack "
                "is installed")
    grafana = _secrets(secrets_set, ["grafanaAdminPassword"])
    if grafana and not (monitoring.enabled and monitoring.grafana):
        off = "monitoring.enabled" if not monitoring.enabled else "monitoring.grafana"
        add(("grafanaAdminPassword",), f"is unused: {off} is false, so no Grafana is installed")
    if not gateway.enabled:
        for key in ("public", "allowedCidrs", "tls"):
            if _snake(key) in gateway.model_fields_set:
                add(("gateway", key), "is unused: gateway.enabled is false, so no gateway is installed")
        for name in _secrets(secrets_set, ["gatewayApiKeys", *TLS_SECRETS]):
            add((name.partition(":")[2],), "is unused: gateway.enabled is false, so no gateway is installed")
    elif not gateway.public and gateway.allowed_cidrs:
        add(("gateway", "allowedCidrs"), "is unused: it admits sources to a public gateway, and gateway.public is "
            "false (the gateway is reached inside the cluster only)")
    tls = _secrets(secrets_set, TLS_SECRETS)
    if tls and gateway.enabled and not gateway.tls and "tls" in gateway.model_fields_set:
        add(("gateway", "tls"), f"is false, so {' and '.join(tls)} are unused and the gateway serves plain HTTP")
    return out


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


__all__ = ["DNS_SUBDOMAIN", "KIND_STORAGE", "TLS_SECRETS", "coherence_problems", "coherence_warnings"]

"""The canary rollback relay in the cluster: its script (``rollback_relay.py``) from a ConfigMap, run by the pinned
Python image, one replica (Alertmanager retries a failed webhook, and a rollback is idempotent), reading the GitHub
token from the alert receivers' Secret at each request; a Service Alertmanager posts to; a NetworkPolicy that admits
Alertmanager's pods only and lets the relay reach DNS and HTTPS (GitHub's API) only.

The Service's name is fixed: Alertmanager's configuration (a chart value, not an Output) names its URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.errors import InputProblems
from components.k8s import (
    PART_OF_VALUE,
    SCRIPT_UID,
    restricted_container_security_context,
    restricted_pod_security_context,
)
from components.versions import ROLLBACK_RELAY_IMAGE

SCRIPT = Path(__file__).with_name("rollback_relay.py")
SCRIPT_DIR = "/relay"
TOKEN_DIR = "/var/run/secrets/github"
TOKEN_FILE = "token"
CALLER_FILE = "caller"
PORT = 8080
"""The relay's port (its ``PORT`` environment variable)."""
HEALTH_PATH = "/healthz"
"""Answered 200 by the relay's ``do_GET``."""
SERVICE_NAME = "neurodock-rollback-relay"
NAME_VALUE = "rollback-relay"
HTTPS = 443
DNS = 53


def relay_url(namespace: str) -> str:
    """The relay's in-cluster URL, which Alertmanager's rollback receiver posts to (a plain string: it goes into
    the chart's values, so the Service's name is fixed)."""
    return f"http://{SERVICE_NAME}.{namespace}.svc.cluster.local:{PORT}/"


@dataclass(frozen=True, kw_only=True)
class RollbackRelayArgs:
    namespace: pulumi.Input[str]
    """The monitoring namespace, where Alertmanager and the receivers' Secret are."""
    repository: str
    """The GitHub repository (owner/name) whose rollback workflow the relay starts."""
    stack: str
    """The stack's name, sent in the dispatch's payload: the workflow edits ``stacks/Pulumi.<stack>.yaml``."""
    token_secret: pulumi.Input[str]
    """The Secret holding the GitHub token (the alert receivers')."""
    token_key: str
    """The token's key in ``token_secret``."""
    caller_key: str
    """The key in ``token_secret`` of the secret Alertmanager authenticates with (its rollback receiver's)."""
    alertmanager_pod_labels: dict[str, str]
    """Labels of Alertmanager's pods, the only ones admitted."""


class RollbackRelay(pulumi.ComponentResource):
    """The relay's ConfigMap, Deployment, Service and NetworkPolicy; Alertmanager posts to ``relay_url``."""

    def __init__(self, name: str, args: RollbackRelayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:monitoring:RollbackRelay", name, None, opts)
        problems = InputProblems()
        if "/" not in args.repository:
            problems.add("repository", f"RollbackRelayArgs.repository must be owner/name (got {args.repository!r})")
        if not args.token_key:
            problems.add("token_key", "RollbackRelayArgs.token_key must name the token's key in token_secret")
        if not args.alertmanager_pod_labels:
            problems.add("alertmanager_pod_labels", "RollbackRelayArgs.alertmanager_pod_labels must select "
                         "Alertmanager's pods: an empty selector would admit every pod of the namespace")
        problems.raise_any()
        pod_labels = {labels.NAME: NAME_VALUE, labels.INSTANCE: name}
        object_labels = {**pod_labels, labels.PART_OF: PART_OF_VALUE, labels.COMPONENT: "monitoring"}
        child = pulumi.ResourceOptions(parent=self)
        # Auto-named: a changed script is a new ConfigMap, and the Deployment that names it rolls out.
        script = k8s.core.v1.ConfigMap(
            f"{name}-script",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=object_labels),
            data={SCRIPT.name: SCRIPT.read_text()},
            opts=child,
        )
        probe = k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=HEALTH_PATH, port=PORT), period_seconds=10)
        k8s.apps.v1.Deployment(
            f"{name}-relay",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=object_labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pod_labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        security_context=restricted_pod_security_context(SCRIPT_UID),
                        containers=[k8s.core.v1.ContainerArgs(
                            name="relay",
                            image=ROLLBACK_RELAY_IMAGE,
                            command=["python", f"{SCRIPT_DIR}/{SCRIPT.name}"],
                            env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in (
                                ("GITHUB_REPOSITORY", args.repository), ("NEURODOCK_STACK", args.stack),
                                ("TOKEN_FILE", f"{TOKEN_DIR}/{TOKEN_FILE}"),
                                ("CALLER_FILE", f"{TOKEN_DIR}/{CALLER_FILE}"), ("PORT", str(PORT)),
                                ("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1"))],
                            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT)],
                            readiness_probe=probe,
                            liveness_probe=k8s.core.v1.ProbeArgs(
                                http_get=probe.http_get, period_seconds=30, failure_threshold=3),
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "10m", "memory": "32Mi"}, limits={"memory": "64Mi"}),
                            security_context=restricted_container_security_context(),
                            volume_mounts=[
                                k8s.core.v1.VolumeMountArgs(name="script", mount_path=SCRIPT_DIR, read_only=True),
                                k8s.core.v1.VolumeMountArgs(name="token", mount_path=TOKEN_DIR, read_only=True),
                            ],
                        )],
                        volumes=[
                            k8s.core.v1.VolumeArgs(name="script", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                name=script.metadata.name)),
                            # Only the token's key is projected: the receivers' other credentials stay out of
                            # the relay. Read by the pod's group (fsGroup), never by others.
                            k8s.core.v1.VolumeArgs(name="token", secret=k8s.core.v1.SecretVolumeSourceArgs(
                                secret_name=args.token_secret, default_mode=0o440,
                                items=[k8s.core.v1.KeyToPathArgs(key=args.token_key, path=TOKEN_FILE),
                                       k8s.core.v1.KeyToPathArgs(key=args.caller_key, path=CALLER_FILE)])),
                        ],
                    ),
                ),
            ),
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=SERVICE_NAME, namespace=args.namespace, labels=object_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP", selector=pod_labels,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http", protocol="TCP")]),
            opts=child,
        )
        peer = k8s.networking.v1.NetworkPolicyPeerArgs
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=object_labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pod_labels),
                policy_types=["Ingress", "Egress"],
                # Alertmanager's pods only (same namespace: a podSelector alone). The kubelet's probes are not
                # subject to NetworkPolicy.
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[peer(pod_selector=k8s.meta.v1.LabelSelectorArgs(
                        match_labels=args.alertmanager_pod_labels))],
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=PORT, protocol="TCP")])],
                egress=[
                    # Cluster DNS, wherever it runs.
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[peer(namespace_selector=k8s.meta.v1.LabelSelectorArgs())],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=DNS, protocol=p) for p in ("UDP", "TCP")]),
                    # GitHub's API publishes no fixed addresses to narrow this to: HTTPS to anywhere.
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[peer(ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr)) for cidr in ("0.0.0.0/0", "::/0")],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=HTTPS, protocol="TCP")]),
                ],
            ),
            opts=child,
        )
        self.register_outputs({})

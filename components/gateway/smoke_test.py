"""The post-deployment smoke test: a Job that sends a real chat completion to every model through
the gateway. Pulumi awaits a Job until it completes and fails the update when it fails, so
``pulumi up`` fails when a model does not answer.

The Job's name carries a revision (a hash of what is served and how it is routed): any change to
it replaces the Job, so the test runs again after each deployment that changes serving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.errors import InputProblems
from components.gateway.gateway import GATEWAY_LABELS, GATEWAY_NAMESPACE
from components.k8s import restricted_container_security_context, script_job
from components.versions import SMOKE_TEST_IMAGE

SCRIPT = Path(__file__).with_name("smoke_check.py")
SCRIPT_DIR = "/smoke"
CA_DIR = "/tls"


@dataclass(frozen=True, kw_only=True)
class SmokeTestArgs:
    gateway_url: pulumi.Input[str]
    """The gateway's in-cluster base URL (``.../v1``)."""
    served_names: tuple[str, ...]
    """Models to ask."""
    revision: str
    """Changes whenever serving changes; part of the Job's name."""
    node_selector: dict[str, str]
    """Where the Job runs: the system pool."""
    api_key_secret: pulumi.Input[str] | None = None
    """Secret whose ``key`` holds the smoke test's API key (default: no key)."""
    ca_secret: pulumi.Input[str] | None = None
    """TLS Secret whose ``tls.crt`` the gateway's certificate is checked against (default: HTTP)."""
    deadline_s: int = 600
    """How long the models have to answer (default 600 s); a model woken from zero gets its wake on top."""
    wake_s: dict[str, int] = field(default_factory=dict)
    """Served names of models scaled to zero, and the longest the gateway holds a request while one
    wakes (default none)."""


class SmokeTest(pulumi.ComponentResource):
    """The script as a ConfigMap and the Job that runs it."""

    job_name: pulumi.Output[str]

    def __init__(self, name: str, args: SmokeTestArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:gateway:SmokeTest", name, None, opts)
        problems = InputProblems()
        if not args.served_names:
            problems.add("served_names", "SmokeTestArgs.served_names must not be empty")
        problems.raise_any()
        object_labels = {labels.NAME: "smoke-test", labels.INSTANCE: name, **GATEWAY_LABELS}
        deadline_s = args.deadline_s + max(args.wake_s.values(), default=0)
        script = k8s.core.v1.ConfigMap(
            f"{name}-script",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=GATEWAY_NAMESPACE, labels=object_labels),
            data={"smoke_check.py": SCRIPT.read_text()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        env = [
            k8s.core.v1.EnvVarArgs(name="GATEWAY_URL", value=args.gateway_url),
            k8s.core.v1.EnvVarArgs(name="MODELS", value=json.dumps(list(args.served_names))),
            k8s.core.v1.EnvVarArgs(name="DEADLINE_SECONDS", value=str(deadline_s)),
            k8s.core.v1.EnvVarArgs(name="WAKE_SECONDS", value=json.dumps(args.wake_s, sort_keys=True)),
            k8s.core.v1.EnvVarArgs(name="PYTHONDONTWRITEBYTECODE", value="1"),
        ]
        if args.api_key_secret is not None:
            env.append(k8s.core.v1.EnvVarArgs(name="API_KEY", value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=args.api_key_secret, key="key"))))
        mounts = [k8s.core.v1.VolumeMountArgs(name="script", mount_path=SCRIPT_DIR, read_only=True)]
        volumes = [k8s.core.v1.VolumeArgs(name="script", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
            name=script.metadata.name))]
        if args.ca_secret is not None:
            env.append(k8s.core.v1.EnvVarArgs(name="CA_FILE", value=f"{CA_DIR}/tls.crt"))
            mounts.append(k8s.core.v1.VolumeMountArgs(name="ca", mount_path=CA_DIR, read_only=True))
            volumes.append(k8s.core.v1.VolumeArgs(name="ca", secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=args.ca_secret, items=[k8s.core.v1.KeyToPathArgs(key="tls.crt", path="tls.crt")])))
        active_s = deadline_s + 120
        job = script_job(
            f"{name}-job", name=f"smoke-test-{args.revision[:10]}", namespace=GATEWAY_NAMESPACE,
            object_labels=object_labels, revision=args.revision, active_s=active_s,
            node_selector=args.node_selector, parent=self, volumes=volumes,
            container=k8s.core.v1.ContainerArgs(
                name="smoke-test",
                image=SMOKE_TEST_IMAGE,
                command=["python", f"{SCRIPT_DIR}/smoke_check.py"],
                env=env,
                volume_mounts=mounts,
                resources=k8s.core.v1.ResourceRequirementsArgs(
                    requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"}),
                security_context=restricted_container_security_context(),
            ),
        )
        self.job_name = job.metadata.name
        self.register_outputs({"jobName": self.job_name})

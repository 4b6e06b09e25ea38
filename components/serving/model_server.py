"""One model behind an OpenAI-compatible server: vLLM on GPUs, llama.cpp on CPUs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.k8s import (
    PART_OF_VALUE,
    restricted_container_security_context,
    restricted_pod_security_context,
)
from components.monitoring.resources import service_monitor
from components.versions import LLAMACPP_IMAGE, VLLM_IMAGE

PORT = 8000
"""The port every engine serves the OpenAI API (and its metrics) on."""


@dataclass(frozen=True, kw_only=True)
class ReadinessBudgets:
    """How long becoming ready may take, in seconds. They set the startup probe (model load), the
    rollout's progress deadline and Pulumi's await timeout (all three plus a margin), so a model is
    never reported healthy before it answers, and a slow GPU scale-up does not fail `pulumi up`."""

    node_scale_up_s: int = 600
    image_pull_s: int = 600
    model_load_s: int = 900

    @property
    def total_s(self) -> int:
        return self.node_scale_up_s + self.image_pull_s + self.model_load_s + AWAIT_MARGIN_S


AWAIT_MARGIN_S = 120
STARTUP_PROBE_PERIOD_S = 10


class Engine(StrEnum):
    VLLM = "vllm"
    LLAMACPP = "llamacpp"


@dataclass(frozen=True, kw_only=True)
class ModelServerArgs:
    namespace: pulumi.Input[str]
    """Namespace of the workload."""
    served_name: str
    """The OpenAI ``model`` value that selects this model."""
    source: str
    """Weights: ``hf://ORG/MODEL`` (``s3://`` and ``gs://`` arrive with the weight cache)."""
    engine: Engine = Engine.VLLM
    """Serving engine (default vLLM)."""
    gpus: int = 1
    """GPUs per replica; vLLM's tensor-parallel size (default 1; 0 for CPU engines)."""
    replicas: int = 1
    """Replicas at creation; the autoscaler owns the count afterwards (default 1)."""
    node_selector: dict[str, str] = field(default_factory=dict)
    """Labels of the pool the replicas run on (default none)."""
    tolerate_gpu_taint: bool = False
    """Tolerate the GPU pools' taint (default false)."""
    hf_token_secret: pulumi.Input[str] | None = None
    """Name of a Secret whose ``token`` key holds a Hugging Face token (default none)."""
    image: str | None = None
    """Override the engine's pinned image (default: the engine's pin in ``versions.py``)."""
    readiness: ReadinessBudgets = ReadinessBudgets()
    """Readiness budgets (defaults: 600 s scale-up, 600 s image pull, 900 s model load)."""
    crds: pulumi.Resource | None = None
    """The monitoring release providing the ServiceMonitor CRD; no ServiceMonitor without it."""


class ModelServer(pulumi.ComponentResource):
    """A Deployment and a ClusterIP Service serving one model."""

    service_name: pulumi.Output[str]
    deployment_name: pulumi.Output[str]
    url: pulumi.Output[str]
    """In-cluster base URL of the OpenAI API (``.../v1``)."""

    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:ModelServer", name, None, opts)
        _validate(args)
        match_labels = {labels.NAME: "model-server", labels.INSTANCE: name}
        pod_labels = {**match_labels, labels.PART_OF: PART_OF_VALUE, labels.COMPONENT: "serving",
                      "neurodock.io/model": args.served_name.replace("/", "_")[:63]}
        deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=pod_labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                # Longer than the startup window, so a slow but healthy start is not a failed rollout.
                progress_deadline_seconds=args.readiness.total_s,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels),
                    spec=_pod_spec(args),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=pulumi.CustomTimeouts(
                create=f"{args.readiness.total_s}s", update=f"{args.readiness.total_s}s")),
        )
        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=pod_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=match_labels,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http")],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )
        if args.crds is not None:
            service_monitor(f"{name}-monitor", namespace=args.namespace, match_labels=match_labels, port="http",
                            parent=self, crds=args.crds)
        self.service_name = service.metadata.name
        self.deployment_name = deployment.metadata.name
        self.url = pulumi.Output.format(
            "http://{0}.{1}.svc.cluster.local:{2}/v1", service.metadata.name, service.metadata.namespace, PORT
        )
        self.register_outputs({"serviceName": self.service_name, "url": self.url})


def _validate(args: ModelServerArgs) -> None:
    if args.engine is Engine.VLLM and args.gpus < 1:
        raise ValueError("ModelServerArgs.gpus must be at least 1 for vLLM")
    if args.engine is Engine.LLAMACPP and args.gpus != 0:
        raise ValueError("ModelServerArgs.gpus must be 0 for the llama.cpp CPU engine")
    if not args.source.startswith("hf://"):
        raise ValueError("ModelServerArgs.source: only hf:// sources are served until the weight cache lands")


def _pod_spec(args: ModelServerArgs) -> k8s.core.v1.PodSpecArgs:
    repo = args.source.removeprefix("hf://")
    env = [
        k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
        k8s.core.v1.EnvVarArgs(name="HF_HOME", value="/cache/huggingface"),
    ]
    if args.hf_token_secret is not None:
        env.append(k8s.core.v1.EnvVarArgs(
            name="HF_TOKEN",
            value_from=k8s.core.v1.EnvVarSourceArgs(secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                name=args.hf_token_secret, key="token")),
        ))
    if args.engine is Engine.VLLM:
        image = args.image or VLLM_IMAGE
        command = ["vllm", "serve", repo]
        engine_args = ["--served-model-name", args.served_name, "--host", "0.0.0.0", "--port", str(PORT),
                       "--tensor-parallel-size", str(args.gpus)]
        resources = k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": str(4 * args.gpus), "memory": f"{24 * args.gpus}Gi", "nvidia.com/gpu": str(args.gpus)},
            limits={"memory": f"{24 * args.gpus}Gi", "nvidia.com/gpu": str(args.gpus)},
        )
        health = "/health"
    else:
        image = args.image or LLAMACPP_IMAGE
        command = ["/app/llama-server"]
        engine_args = ["--hf-repo", repo, "--alias", args.served_name, "--host", "0.0.0.0", "--port", str(PORT),
                       "--metrics"]
        env.append(k8s.core.v1.EnvVarArgs(name="LLAMA_CACHE", value="/cache/llama"))
        resources = k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "2", "memory": "4Gi"}, limits={"cpu": "4", "memory": "4Gi"},
        )
        health = "/health"

    tolerations = []
    if args.tolerate_gpu_taint:
        tolerations.append(k8s.core.v1.TolerationArgs(
            key=labels.GPU_TAINT_KEY, operator="Exists", effect=labels.GPU_TAINT_EFFECT))
    return k8s.core.v1.PodSpecArgs(
        automount_service_account_token=False,
        security_context=restricted_pod_security_context(),
        node_selector=args.node_selector or None,
        tolerations=tolerations or None,
        containers=[k8s.core.v1.ContainerArgs(
            name="server",
            image=image,
            command=command,
            args=engine_args,
            env=env,
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT)],
            resources=resources,
            security_context=restricted_container_security_context(),
            # Until the model is loaded only the startup probe runs; it allows the model-load budget.
            startup_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path=health, port="http"),
                period_seconds=STARTUP_PROBE_PERIOD_S,
                failure_threshold=-(-args.readiness.model_load_s // STARTUP_PROBE_PERIOD_S),
            ),
            readiness_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path=health, port="http"), period_seconds=10,
            ),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                k8s.core.v1.VolumeMountArgs(name="cache", mount_path="/cache"),
                k8s.core.v1.VolumeMountArgs(name="dshm", mount_path="/dev/shm"),
            ],
        )],
        volumes=[
            k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
            k8s.core.v1.VolumeArgs(name="cache", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="200Gi")),
            # NCCL and PyTorch workers exchange tensors through shared memory.
            k8s.core.v1.VolumeArgs(name="dshm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                medium="Memory", size_limit="8Gi")),
        ],
    )

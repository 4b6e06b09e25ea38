"""One model behind an OpenAI-compatible server: vLLM on GPUs, llama.cpp on CPUs.

Per version of a model: a dedicated ServiceAccount (the only identity allowed to read its weights
bucket), a hardened Deployment whose engine streams the weights from a bucket or reads them from a
volume filled before it starts, a Service, a PodDisruptionBudget, a NetworkPolicy, a ServiceMonitor
and a KEDA ScaledObject.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from enum import StrEnum

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.errors import InputProblems
from components.k8s import (
    PART_OF_VALUE,
    restricted_container_security_context,
    restricted_pod_security_context,
)
from components.monitoring.resources import pod_label, service_monitor
from components.serving.weights_mirror import COMPLETE_MARKER, hf_download
from components.versions import AWS_CLI_IMAGE, GCLOUD_IMAGE, LLAMACPP_IMAGE, VLLM_IMAGE

PORT = 8000
"""The port every engine serves the OpenAI API (and its metrics) on."""
MODELS_DIR = "/models"
BUCKET_SCHEMES = ("s3://", "gs://")
STREAMER_CONCURRENCY = 16
"""Concurrent reads of the Run:ai Model Streamer (its default for object stores is 8; its published
S3 benchmark loads an 8B model 1.7x faster at 16)."""
STREAMER_BUFFER_GIB = 4
"""Host memory the streamer may buffer (its default is 40 GB, more than a replica's memory limit)."""
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True, kw_only=True)
class ReadinessBudgets:
    """How long becoming ready may take, in seconds. They set the startup probe (model load), the
    rollout's progress deadline and Pulumi's await timeout (all three plus a margin), so a model is
    never reported healthy before it answers, and a slow GPU scale-up does not fail `pulumi up`."""

    node_scale_up_s: int
    image_pull_s: int
    model_load_s: int

    @property
    def total_s(self) -> int:
        return self.node_scale_up_s + self.image_pull_s + self.model_load_s + AWAIT_MARGIN_S


AWAIT_MARGIN_S = 120
IDLE_BEFORE_ZERO_S = 600
"""How long a model at ``minReplicas: 0`` must see no request, running, queued or held, before KEDA
stops its last replica: a wake costs minutes, so a short lull must not cost one."""
BUSY_THRESHOLD = 1_000_000
"""The activity trigger's target per replica: never reached, so it never asks for a second replica."""
STARTUP_PROBE_PERIOD_S = 10
DEREGISTRATION_S = 10
"""How long a stopping replica keeps serving before it is told to stop: the time the gateway takes
to drop it from its endpoints, so no new request reaches a server that would refuse it."""
TERMINATION_MARGIN_S = 15
VLLM_UID = 2000
"""The vLLM image's own non-root user ``vllm`` (uid 2000, home /home/vllm; docker/Dockerfile of the
pinned version): it has a passwd entry, so ``getpass.getuser()`` (PyTorch's cache directories)
resolves. The image runs as root unless told otherwise."""
LLAMACPP_UID = 1000


class Engine(StrEnum):
    VLLM = "vllm"
    LLAMACPP = "llamacpp"


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """Engine flags NeuroDock derives from config."""

    max_model_len: int
    gpu_memory_utilization: float
    dtype: str
    quantization: str | None
    kv_cache_dtype: str
    max_num_seqs: int
    extra_args: tuple[str, ...]
    gguf_file: str | None = None
    """llama.cpp: the GGUF file within the source."""


@dataclass(frozen=True, kw_only=True)
class Autoscaling:
    """KEDA scaling on the model's queue: LLM signals, not CPU."""

    min_replicas: int
    max_replicas: int
    prometheus_url: pulumi.Input[str]
    query: str
    """PromQL giving the model's waiting requests."""
    target_per_replica: int
    """Waiting requests per replica above which KEDA adds replicas."""
    busy_query: str | None = None
    """At ``min_replicas`` 0: PromQL of every request the model has, running ones included. KEDA keeps a
    model active while its triggers read above zero, and the queue alone is empty while a replica
    serves without a backlog: this keeps the last replica up until the model is idle (default none)."""


@dataclass(frozen=True, kw_only=True)
class ModelServerArgs:
    namespace: pulumi.Input[str]
    """Namespace of the workload."""
    served_name: str
    """The OpenAI ``model`` value that selects this model."""
    source: str
    """Weights: ``hf://ORG/MODEL``, ``s3://BUCKET/PREFIX`` or ``gs://BUCKET/PREFIX``. vLLM streams a
    bucket's safetensors into GPU memory (Run:ai Model Streamer); the rest is downloaded to a volume."""
    revision: str | None
    """Hugging Face commit of an ``hf://`` source; None: the default branch (on kind, where each
    replica downloads its own copy)."""
    wait_for: tuple[pulumi.Resource, ...] = ()
    """What must exist before replicas start: the weights' mirror Job, the bucket grants of their
    identity (default none)."""
    aws_region: str | None = None
    """The region of an ``s3://`` source's bucket, for the S3 clients (default none)."""
    engine: Engine
    """Serving engine."""
    settings: EngineSettings
    """Engine flags."""
    gpus: int
    """GPUs per replica; vLLM's tensor-parallel size (0 for CPU engines)."""
    cpu: str
    """CPU request per replica."""
    memory_gib: int
    """Memory request and limit per replica, shared memory included."""
    shm_gib: int
    """Size of /dev/shm, where NCCL and PyTorch workers exchange tensors."""
    replicas: int
    """Replicas at creation; with ``autoscaling`` KEDA owns the count afterwards."""
    node_selector: dict[str, str]
    """Labels of the pool the replicas run on."""
    tolerate_gpu_taint: bool
    """Tolerate the GPU pools' taint."""
    priority_class: pulumi.Input[str] | None = None
    """PriorityClass of the serving pods (default none)."""
    hf_token_secret: pulumi.Input[str] | None = None
    """Name of a Secret whose ``token`` key holds a Hugging Face token (default none)."""
    service_account_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    """Cloud identity of the weights reader: IRSA role or Workload Identity account (default none)."""
    storage_class: str
    """Storage class of the per-replica weights volume."""
    cache_gib: int
    """Size of the weights volume."""
    shared_cache_claim: pulumi.Input[str] | None = None
    """A ReadWriteMany claim shared by all replicas instead of one volume each (default none)."""
    readiness: ReadinessBudgets
    """Readiness budgets."""
    drain_s: int
    """Time in-flight requests get to finish when a replica stops."""
    max_surge: int
    """Rollout surge."""
    max_unavailable: int
    """Rollout unavailability."""
    allowed_namespaces: tuple[str, ...]
    """Namespaces allowed to reach the server (gateway, monitoring)."""
    allowed_pods: tuple[dict[str, str], ...] = ()
    """Labels of pods in the server's namespace allowed to reach it: its endpoint picker, which reads
    its ``/metrics`` (default none)."""
    crds: pulumi.Resource | None = None
    """The monitoring release (ServiceMonitor CRD); no ServiceMonitor without it."""
    autoscaling: Autoscaling | None = None
    """KEDA scaling (default: a fixed replica count)."""
    keda: pulumi.Resource | None = None
    """The KEDA release (ScaledObject CRD); required with ``autoscaling``."""
    image: str | None = None
    """Override the engine's pinned image (default: the engine's pin in ``versions.py``)."""
    gpu_memory_need_gib: float | None = None
    """Estimated memory per GPU (weights share + KV cache + runtime), stated for policy checks."""
    variant: str
    """Which version of the model this is: ``stable``, ``canary`` or ``shadow``."""
    route: str | None = None
    """The model whose route may answer from these pods (``labels.ROUTE_LABEL``): the stable and canary
    versions' model name; None for a shadow."""


class ModelServer(pulumi.ComponentResource):
    """Everything that serves one model."""

    service_name: pulumi.Output[str]
    deployment_name: pulumi.Output[str]
    url: pulumi.Output[str]
    """In-cluster base URL of the OpenAI API (``.../v1``)."""

    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:ModelServer", name, None, opts)
        _validate(args)
        self._name = name
        match_labels = pod_match_labels(name)
        object_labels = {**match_labels, labels.PART_OF: PART_OF_VALUE, labels.COMPONENT: "serving",
                         labels.MODEL_LABEL: labels.model_label_value(args.served_name),
                         labels.VARIANT_LABEL: args.variant,
                         **({labels.ROUTE_LABEL: args.route} if args.route else {})}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            # A fixed name: the cloud identity that may read the weights names it.
            metadata=k8s.meta.v1.ObjectMetaArgs(name=service_account_name(name), namespace=args.namespace,
                                                labels=object_labels,
                                                annotations=args.service_account_annotations or None),
            automount_service_account_token=False,
            opts=self._child(),
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                namespace=args.namespace, labels=object_labels,
                annotations={"neurodock.io/gpu-memory-need-gib": f"{args.gpu_memory_need_gib:.1f}"}
                if args.gpu_memory_need_gib is not None else None),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge=args.max_surge, max_unavailable=args.max_unavailable),
                ),
                # Longer than the startup window, so a slow but healthy start is not a failed rollout.
                progress_deadline_seconds=args.readiness.total_s,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                    spec=_pod_spec(name, args, account.metadata.name, match_labels),
                ),
            ),
            opts=self._child(
                # A rollout replaces the replicas a surge at a time, each waiting for its GPUs and
                # load, and each old one draining.
                custom_timeouts=pulumi.CustomTimeouts(create=f"{args.readiness.total_s}s",
                                                      update=f"{args.readiness.total_s * _rollout_waves(args)}s"),
                # Once KEDA scales, the count is its own: the provider sends the live count while it
                # still owns the field, and leaves it out once KEDA's scaler does, so `pulumi up`
                # neither conflicts with the autoscaler nor resets its count (pulumi-kubernetes
                # ignoreChanges under server-side apply; omitting the field would reset it to 1).
                ignore_changes=["spec.replicas"] if args.autoscaling else None,
                depends_on=list(args.wait_for) or None),
        )
        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=object_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=match_labels,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http")],
            ),
            opts=self._child(),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=object_labels),
            # One replica at a time may go for a node drain or upgrade: never blocks the drain, never
            # takes the whole model down when it has more than one replica.
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels)),
            opts=self._child(),
        )
        self._network_policy(args, object_labels, match_labels)
        if args.crds is not None:
            # Canary and shadow serve the same model name as the stable version: the pod's variant label
            # becomes a metric label, so SLOs judge the stable version and dashboards split by variant.
            service_monitor(f"{name}-monitor", namespace=args.namespace, match_labels=match_labels, port="http",
                            parent=self, crds=args.crds, relabelings=[
                                {"sourceLabels": [pod_label(labels.VARIANT_LABEL)],
                                 "targetLabel": "variant"}])
        if args.autoscaling is not None:
            self._scaled_object(args, deployment, object_labels)
        self.service_name = service.metadata.name
        self.deployment_name = deployment.metadata.name
        self.url = pulumi.Output.format(
            "http://{0}.{1}.svc.cluster.local:{2}/v1", service.metadata.name, service.metadata.namespace, PORT
        )
        self.register_outputs({"serviceName": self.service_name, "url": self.url})

    def _child(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _network_policy(self, args: ModelServerArgs, object_labels: dict, match_labels: dict) -> None:
        """Only the gateway and monitoring reach the server; egress stays open for weight downloads."""
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=object_labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels),
                policy_types=["Ingress"],
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": ns}))
                        for ns in args.allowed_namespaces] + [
                        k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels=pods)) for pods in args.allowed_pods],
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=PORT, protocol="TCP")],
                )] if args.allowed_namespaces or args.allowed_pods else [],
            ),
            opts=self._child(),
        )

    def _scaled_object(self, args: ModelServerArgs, deployment: k8s.apps.v1.Deployment, object_labels: dict) -> None:
        scaling = args.autoscaling
        assert scaling is not None
        k8s.apiextensions.CustomResource(
            f"{self._name}-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=object_labels),
            spec={
                "scaleTargetRef": {"name": deployment.metadata.name},
                "minReplicaCount": scaling.min_replicas,
                "maxReplicaCount": scaling.max_replicas,
                "pollingInterval": 15,
                # KEDA reads cooldownPeriod only when scaling to zero; between 1 and N the HPA's
                # behaviour below decides (keda v2.17 scale_scaledobjects.go).
                **({"cooldownPeriod": IDLE_BEFORE_ZERO_S} if scaling.min_replicas == 0 else {}),
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": 600,
                                  "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]},
                }}},
                "triggers": [{
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": scaling.prometheus_url,
                        "query": scaling.query,
                        "threshold": str(scaling.target_per_replica),
                        "activationThreshold": "0",
                    },
                }] + ([{
                    "type": "prometheus",
                    "name": "busy",
                    # Activity only: a threshold no model reaches asks for one replica at most.
                    "metadata": {"serverAddress": scaling.prometheus_url, "query": scaling.busy_query,
                                 "threshold": str(BUSY_THRESHOLD), "activationThreshold": "0"},
                }] if scaling.busy_query else []),
            },
            opts=self._child(depends_on=[args.keda] if args.keda else None),
        )


MODEL_SERVER = "model-server"
"""Every model server pod's ``app.kubernetes.io/name``."""


def pod_match_labels(name: str) -> dict[str, str]:
    """The labels that select exactly the pods of server ``name`` (a model version): its Deployment's,
    Service's and InferencePool's selector."""
    return {labels.NAME: MODEL_SERVER, labels.INSTANCE: name}


def service_account_name(model: str) -> str:
    """The ServiceAccount of a model's pods."""
    return f"{model}-model"


def _validate(args: ModelServerArgs) -> None:
    problems = InputProblems()
    if args.engine is Engine.VLLM and args.gpus < 1:
        problems.add("gpus", "ModelServerArgs.gpus must be at least 1 for vLLM")
    if args.engine is Engine.LLAMACPP and args.gpus != 0:
        problems.add("gpus", "ModelServerArgs.gpus must be 0 for the llama.cpp CPU engine")
    if args.engine is Engine.LLAMACPP and not args.settings.gguf_file:
        problems.add(("settings", "gguf_file"), "ModelServerArgs.settings.gguf_file is required for llama.cpp")
    if not args.source.startswith(("hf://", "s3://", "gs://")):
        problems.add("source", "ModelServerArgs.source must be an hf://, s3:// or gs:// URI")
    if args.autoscaling is not None and args.keda is None:
        problems.add("keda", "ModelServerArgs.keda is required with autoscaling")
    if args.max_surge == 0 and args.max_unavailable == 0:
        problems.add("max_surge", "ModelServerArgs.max_surge and max_unavailable cannot both be 0")
    problems.raise_any()


def _rollout_waves(args: ModelServerArgs) -> int:
    most = args.autoscaling.max_replicas if args.autoscaling else args.replicas
    return max(1, -(-most // max(args.max_surge, 1)))


def _pre_stop_s(args: ModelServerArgs) -> int:
    if args.engine is Engine.VLLM:
        return min(DEREGISTRATION_S, args.drain_s) if args.drain_s else 0
    return args.drain_s


def _stop_s(args: ModelServerArgs) -> int:
    """From the stop signal to the last in-flight request: the pre-stop wait, then the engine's drain."""
    return _pre_stop_s(args) + (args.drain_s if args.engine is Engine.VLLM else 0)


def _weights_dir(name: str) -> str:
    return f"{MODELS_DIR}/{name}"


def streams(args: ModelServerArgs) -> bool:
    """vLLM loads a bucket's weights straight into GPU memory: no volume, no download step."""
    return args.engine is Engine.VLLM and args.source.startswith(BUCKET_SCHEMES)


def download_step(name: str, args: ModelServerArgs) -> tuple[str, list[str]] | None:
    """The init container's (image, command) that fills the cache, or None when the engine fetches
    the weights itself (llama.cpp from Hugging Face, into its own cache on the same volume; vLLM
    streaming from a bucket).

    The cache is keyed by source and revision: the marker, written last, names them, and a step
    whose marker names anything else downloads again. With a shared volume, one replica downloads
    while the others wait for the marker.
    """
    if streams(args) or (args.engine is Engine.LLAMACPP and args.source.startswith("hf://")):
        return None
    target = _weights_dir(name)
    marker = f"{target}/{COMPLETE_MARKER}"
    key = f"{args.source}@{args.revision or 'default'}"
    uri = args.source
    if uri.startswith("hf://"):
        fetch = shlex.join(hf_download(uri.removeprefix("hf://"), args.revision, target))
        image = args.image or VLLM_IMAGE
    elif uri.startswith("s3://"):
        fetch = f"aws s3 sync --no-progress {shlex.quote(uri)} {shlex.quote(target)}"
        image = AWS_CLI_IMAGE
    else:
        fetch = f"gcloud storage rsync --recursive {shlex.quote(uri)} {shlex.quote(target)}"
        image = GCLOUD_IMAGE
    lock = f"{target}.lock"
    q = shlex.quote
    script = (f"set -eu; key={q(key)}; "
              f"cached() {{ [ -f {marker} ] && [ \"$(cat {marker})\" = \"$key\" ]; }}; "
              f"if cached; then echo 'weights already cached'; exit 0; fi; "
              # mkdir is atomic, on NFS too: one replica downloads, the others wait for its marker.
              f"until mkdir {lock} 2>/dev/null; do "
              f"if cached; then exit 0; fi; echo 'another replica is downloading'; sleep 10; done; "
              f"trap 'rmdir {lock}' EXIT; if cached; then exit 0; fi; "
              f"rm -rf {target}; mkdir -p {target}; {fetch}; printf '%s' \"$key\" > {marker}")
    return image, ["/bin/sh", "-c", script]


def engine_command(name: str, args: ModelServerArgs) -> tuple[str, list[str]]:
    """The engine container's (image, command + flags)."""
    s = args.settings
    if args.engine is Engine.VLLM:
        command = [
            "vllm", "serve", args.source if streams(args) else _weights_dir(name),
            "--served-model-name", args.served_name,
            "--host", "0.0.0.0", "--port", str(PORT),
            "--tensor-parallel-size", str(args.gpus),
            "--max-model-len", str(s.max_model_len),
            "--gpu-memory-utilization", str(s.gpu_memory_utilization),
            "--dtype", s.dtype,
            "--kv-cache-dtype", s.kv_cache_dtype,
            "--max-num-seqs", str(s.max_num_seqs),
            # On SIGTERM, finish running requests for up to the drain time (the default 0 aborts them).
            "--shutdown-timeout", str(args.drain_s),
        ]
        if streams(args):
            # Config and tokenizer go to vLLM's assets cache (under XDG_CACHE_HOME); the streamer
            # reads the safetensors with 16 concurrent requests and buffers at most STREAMER_BUFFER_GIB.
            # With tensor parallelism each rank reads its share and they exchange the rest over NCCL;
            # without "distributed" every rank would read the whole model.
            loader = {"concurrency": STREAMER_CONCURRENCY, "memory_limit": STREAMER_BUFFER_GIB * 2**30}
            if args.gpus > 1:
                loader["distributed"] = True
            command += ["--load-format", "runai_streamer", "--model-loader-extra-config", json.dumps(loader)]
        if s.quantization:
            command += ["--quantization", s.quantization]
        return args.image or VLLM_IMAGE, command + list(s.extra_args)
    command = ["/app/llama-server", "--host", "0.0.0.0", "--port", str(PORT), "--alias", args.served_name,
               "--ctx-size", str(s.max_model_len * s.max_num_seqs), "--parallel", str(s.max_num_seqs),
               "--metrics"]
    if args.source.startswith("hf://"):
        command += ["--hf-repo", args.source.removeprefix("hf://"), "--hf-file", str(s.gguf_file)]
    else:
        command += ["-m", f"{_weights_dir(name)}/{s.gguf_file}"]
    return args.image or LLAMACPP_IMAGE, command + list(s.extra_args)


def _pod_spec(name: str, args: ModelServerArgs, service_account: pulumi.Input[str],
              match_labels: dict[str, str]) -> k8s.core.v1.PodSpecArgs:
    env = [
        # The root filesystem is read-only: home and caches live on /tmp. USER spares PyTorch a passwd
        # lookup whatever the uid.
        k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
        k8s.core.v1.EnvVarArgs(name="USER", value="vllm" if args.engine is Engine.VLLM else "llama"),
        k8s.core.v1.EnvVarArgs(name="XDG_CACHE_HOME", value="/tmp/.cache"),
        k8s.core.v1.EnvVarArgs(name="HF_HOME", value=f"{MODELS_DIR}/.huggingface"),
        k8s.core.v1.EnvVarArgs(name="LLAMA_CACHE", value=f"{MODELS_DIR}/.llama"),
        k8s.core.v1.EnvVarArgs(name="CLOUDSDK_CONFIG", value="/tmp/gcloud"),
    ]
    if args.aws_region:
        env.append(k8s.core.v1.EnvVarArgs(name="AWS_REGION", value=args.aws_region))
    if args.hf_token_secret is not None:
        env.append(k8s.core.v1.EnvVarArgs(
            name="HF_TOKEN",
            value_from=k8s.core.v1.EnvVarSourceArgs(secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                name=args.hf_token_secret, key="token")),
        ))
    mounts = [k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")]
    if not streams(args):
        mounts.append(k8s.core.v1.VolumeMountArgs(name="weights", mount_path=MODELS_DIR))
    gpu = {"nvidia.com/gpu": str(args.gpus)} if args.gpus else {}
    resources = k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": args.cpu, "memory": f"{args.memory_gib}Gi", **gpu},
        limits={"memory": f"{args.memory_gib}Gi", **gpu},
    )
    image, command = engine_command(name, args)
    health = k8s.core.v1.HTTPGetActionArgs(path="/health", port="http")
    init = []
    step = download_step(name, args)
    if step is not None:
        init.append(k8s.core.v1.ContainerArgs(
            name="fetch-weights",
            image=step[0],
            command=step[1],
            env=env,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "4Gi"}),
            security_context=restricted_container_security_context(),
            volume_mounts=mounts,
        ))
    tolerations = []
    if args.tolerate_gpu_taint:
        tolerations.append(k8s.core.v1.TolerationArgs(
            key=labels.GPU_TAINT_KEY, operator="Exists", effect=labels.GPU_TAINT_EFFECT))
    if streams(args):
        weights = None
    elif args.shared_cache_claim is not None:
        weights = k8s.core.v1.VolumeArgs(name="weights", persistent_volume_claim=(
            k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=args.shared_cache_claim)))
    else:
        # One volume per replica, created and deleted with its pod.
        weights = k8s.core.v1.VolumeArgs(name="weights", ephemeral=k8s.core.v1.EphemeralVolumeSourceArgs(
            volume_claim_template=k8s.core.v1.PersistentVolumeClaimTemplateArgs(
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    access_modes=["ReadWriteOnce"],
                    storage_class_name=args.storage_class,
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                        requests={"storage": f"{args.cache_gib}Gi"}),
                ),
            ),
        ))
    return k8s.core.v1.PodSpecArgs(
        service_account_name=service_account,
        automount_service_account_token=False,
        security_context=restricted_pod_security_context(VLLM_UID if args.engine is Engine.VLLM else LLAMACPP_UID),
        priority_class_name=args.priority_class,
        node_selector=args.node_selector or None,
        tolerations=tolerations or None,
        topology_spread_constraints=[k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1, topology_key=ZONE_LABEL, when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels))],
        termination_grace_period_seconds=_stop_s(args) + TERMINATION_MARGIN_S,
        init_containers=init or None,
        containers=[k8s.core.v1.ContainerArgs(
            name="server",
            image=image,
            command=command,
            env=env,
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT)],
            resources=resources,
            security_context=restricted_container_security_context(),
            # Until the model is loaded only the startup probe runs; it allows the model-load budget.
            startup_probe=k8s.core.v1.ProbeArgs(
                http_get=health, period_seconds=STARTUP_PROBE_PERIOD_S,
                failure_threshold=-(-args.readiness.model_load_s // STARTUP_PROBE_PERIOD_S)),
            readiness_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=10, failure_threshold=3),
            liveness_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=15, failure_threshold=4,
                                                 timeout_seconds=5),
            # Leave the gateway's endpoints first; then vLLM drains on SIGTERM (--shutdown-timeout),
            # while llama.cpp, which stops at once, gets the whole drain time here.
            lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                sleep=k8s.core.v1.SleepActionArgs(seconds=_pre_stop_s(args)))) if _pre_stop_s(args) else None,
            volume_mounts=[*mounts, k8s.core.v1.VolumeMountArgs(name="dshm", mount_path="/dev/shm")],
        )],
        volumes=[v for v in (
            k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="10Gi")),
            weights,
            k8s.core.v1.VolumeArgs(name="dshm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                medium="Memory", size_limit=f"{args.shm_gib}Gi")),
        ) if v is not None],
    )

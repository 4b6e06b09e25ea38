"""Typed models of the stack configuration: every ``neurodock:*`` key of ``stacks/Pulumi.<env>.yaml``.

Pydantic lives here, at the edge. The rest of the program receives validated, frozen models and
turns them into component ``Args``; no ``Output`` ever enters a model.

Validation happens in two passes, both before any resource exists:

1. structure: types, ranges, allowed values and unknown keys (a typo is the commonest config bug,
   so every model forbids extra keys);
2. semantics: facts that span several keys (a model's pool exists, min <= max, a GPU type is known).

Every problem becomes one :class:`Problem` whose ``path`` names the key as a user writes it, for
example ``neurodock:nodePools[1].gpu.count``; :class:`ConfigError` carries all of them at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from neurodock_policies.secret_shapes import secret_args, secret_shape
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from components.cluster import machine_types
from components.cluster.base import EKS_SUBNET_PREFIX
from components.gpu.catalog import (
    EKS_INSTANCE_TYPES,
    GKE_ATTACHABLE,
    GKE_MACHINE_TYPES,
    GPU_MODELS,
    MIG_PROFILES,
    GpuMachine,
    devices_per_gpu,
    machine_gpus,
)
from components.monitoring.metrics import VLLM_TTFT_BUCKETS
from components.serving.architectures import CUDA_CONTEXT_GIB, Architecture, ReplicaSize, lookup
from components.serving.architectures import replica_size as architectures_replica_size
from components.versions import CLUSTER_AUTOSCALER_IMAGE_TAGS, KIND_NODE_IMAGES

NAMESPACE = "neurodock"
"""The Pulumi config namespace of every key modelled here."""

VARIANTS = ("canary", "shadow")
"""Versions a model may run beside its stable one (``models[].canary``, ``models[].shadow``)."""

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


# --------------------------------------------------------------------------------------------
# Scalar types
# --------------------------------------------------------------------------------------------

PATTERN_HINTS: dict[str, str] = {}
"""What a value of each string pattern must look like, as a sentence with an example: a value that does
not match is told this, never the regular expression."""


def pattern(regex: str, what: str, example: str) -> Any:
    """A string type matching ``regex``, described to users as ``what`` with ``example``."""
    hint = f"must be {what}, e.g. {example!r}"
    assert PATTERN_HINTS.setdefault(regex, hint) == hint, f"two descriptions of {regex}"
    return Annotated[str, StringConstraints(pattern=regex), Field(description=what, examples=[example])]


Name = pattern(r"^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$",
               "a name of at most 24 lowercase letters, digits and '-', starting with a letter and not ending "
               "with '-'", "gpu-l4")
"""Names end up in cloud resource names (EKS node groups, GKE pools) and Kubernetes labels, with a
prefix added; 24 characters leaves room for the prefix within every provider's limit."""

KubernetesVersion = pattern(r"^1\.(2[89]|3[0-9])$", "a Kubernetes minor version from 1.28, in quotes", "1.33")

AWS_REGION_PATTERN = r"^(?:us-gov|us-iso[bf]?|eu-isoe|eusc-de|[a-z]{2})-[a-z]+-[1-9][0-9]*$"
"""AWS region names (``us-west-2``, ``us-gov-west-1``): every partition's ``regionRegex`` in botocore's
partitions.json, in one pattern."""
GCP_REGION_PATTERN = r"^[a-z]+-[a-z]+[0-9]+$"
"""Google Cloud region names: ``<location>-<direction><number>`` (``europe-west4``, ``us-central1``)."""
AwsRegion = pattern(AWS_REGION_PATTERN, "an AWS region name", "us-west-2")
GcpRegion = pattern(GCP_REGION_PATTERN, "a Google Cloud region name", "europe-west4")
Cidr = pattern(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$", "an IPv4 range in CIDR notation", "10.0.0.0/16")
Duration = pattern(r"^[1-9][0-9]*(h|d|w|y)$", "a whole number of hours (h), days (d), weeks (w) or years (y)",
                   "15d")
WeightsUri = pattern(r"^(hf://[A-Za-z0-9][-\w.]{0,95}/[A-Za-z0-9][-\w.]{0,95}"
                     r"|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?|gs://[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9](/\S*)?)$",
                     "hf://ORG/MODEL (a Hugging Face repository), or s3://BUCKET/PREFIX or gs://BUCKET/PREFIX "
                     "(a bucket name is 3 to 63 lowercase letters, digits, '-' and '.')",
                     "hf://meta-llama/Llama-3.1-8B-Instruct")
Timestamp = pattern(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", "an RFC 3339 time in UTC", "2026-01-03T01:00:00Z")
Token = pattern(r"^\S+$", "one flag or one value, without spaces (a flag and its value are two items, or one "
                "joined by '=')", "--enable-prefix-caching")
GcpProject = pattern(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$",
                     "a Google Cloud project id: 6 to 30 lowercase letters, digits and '-', starting with a letter",
                     "ml-platform-prod")


class Model(BaseModel):
    """Base of every config model: strict keys, camelCase aliases, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        frozen=True,
        validate_default=True,
    )


# --------------------------------------------------------------------------------------------
# Cloud targets
# --------------------------------------------------------------------------------------------


class EndpointAccess(Model):
    """Who may reach the Kubernetes API server."""

    public: bool = False
    """Expose the API endpoint's IP on the internet (default false: private endpoint only)."""
    allowed_cidrs: list[Cidr] = []
    """CIDRs allowed to reach a public endpoint; required when ``public`` is true."""


class GkeEndpointAccess(EndpointAccess):
    """Who may reach GKE's API server, and how."""

    dns: bool = True
    """Serve the API on GKE's DNS-based endpoint: reachable from any network, every request
    authorised by IAM (``container.clusters.connect``) before it reaches the cluster; the kubeconfig
    uses it. With false, the deploy must reach the IP endpoint (default true)."""


Recurrence = pattern(r"^FREQ=(DAILY|WEEKLY|MONTHLY)(;[A-Z]+=[A-Z0-9,+-]+)*$",
                     "an RFC 5545 recurrence rule, daily, weekly or monthly", "FREQ=WEEKLY;BYDAY=SA,SU")


class MaintenanceWindow(Model):
    """When GKE may upgrade the control plane and the nodes (a recurring window)."""

    start_time: Timestamp = "2026-01-03T01:00:00Z"
    """First window's start, RFC 3339 UTC (default a Saturday, 01:00 UTC)."""
    end_time: Timestamp = "2026-01-03T09:00:00Z"
    """First window's end, RFC 3339 UTC (default 09:00 UTC the same day: eight hours, so any 32 days hold at
    least GKE's minimum 48 hours)."""
    recurrence: Recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
    """RFC 5545 RRULE repeating the window (default every Saturday and Sunday)."""


class Deploy(Model):
    """Where `pulumi up` and `pulumi preview` of this stack run: ``neurodock check`` proves that place can
    reach the API server, and the workflows run there."""

    runs_on: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default=["ubuntu-24.04"], min_length=1)
    """GitHub Actions runner labels of the stack's deploy and preview jobs (default ``[ubuntu-24.04]``,
    a GitHub-hosted runner: any egress address, no way into a VPC)."""
    in_vpc: bool = False
    """The runner sits in the cluster's network (or one routed to it) and reaches a private endpoint
    (default false)."""
    egress_cidrs: list[Cidr] = []
    """The runner's fixed public egress addresses (a self-hosted runner behind NAT, a larger runner with
    static IPs), to be allow-listed on a public endpoint (default none)."""


class KindCloud(Model):
    """A local kind cluster: for laptops and CI, no cloud account."""

    provider: Literal["kind"]
    kubernetes_version: KubernetesVersion = "1.33"
    """Kubernetes minor version of the kind node image (default 1.33)."""
    cluster_name: Name | None = None
    """kind cluster name (default ``neurodock-<environment>``)."""
    existing_context: str | None = None
    """Use this kubeconfig context instead of creating a cluster (default: create one)."""


VpcId = pattern(r"^vpc-[0-9a-f]{8,17}$", "a VPC id", "vpc-0a1b2c3d4e5f67890")
SubnetId = pattern(r"^subnet-[0-9a-f]{8,17}$", "a subnet id", "subnet-0a1b2c3d4e5f67890")


class ExistingVpc(Model):
    """A VPC the stack uses instead of creating one."""

    vpc_id: VpcId
    """The VPC id."""
    private_subnet_ids: list[SubnetId] = Field(min_length=2)
    """Private subnets (with a route to a NAT) in at least two zones, for the cluster and nodes."""


RoleArn = pattern(r"^arn:aws[-a-z]*:iam::[0-9]{12}:role/.+$", "an IAM role ARN",
                  "arn:aws:iam::123456789012:role/platform-admins")


class EksCloud(Model):
    """Amazon EKS."""

    provider: Literal["eks"]
    region: AwsRegion
    """AWS region, for example ``us-west-2``."""
    zones: list[str] = Field(min_length=2)
    """Availability zones for subnets and node groups: at least two, all in ``region``."""
    kubernetes_version: KubernetesVersion = "1.34"
    """EKS Kubernetes version, one in EKS standard support (default 1.34; see README, "Kubernetes versions")."""
    support_type: Literal["STANDARD", "EXTENDED"] = "STANDARD"
    """At the end of standard support, ``STANDARD`` lets EKS upgrade the control plane; ``EXTENDED`` keeps the
    version for up to 12 more months at an extra hourly charge (default STANDARD)."""
    vpc_cidr: Cidr = "10.0.0.0/16"
    """CIDR of the VPC the stack creates (default 10.0.0.0/16)."""
    existing_vpc: ExistingVpc | None = None
    """Use this VPC and its private subnets instead of creating a VPC (default: create one)."""
    endpoint: EndpointAccess = EndpointAccess()
    """API server access (default: private only)."""
    admin_role_arns: list[RoleArn] = []
    """IAM roles granted cluster-admin through EKS access entries (default none)."""


class GkeCloud(Model):
    """Google Kubernetes Engine (Standard)."""

    provider: Literal["gke"]
    project: GcpProject
    """GCP project id."""
    region: GcpRegion
    """GCP region, for example ``europe-west4``; the cluster is regional."""
    zones: list[str] = Field(min_length=1)
    """Zones for node pools, all in ``region``."""
    kubernetes_version: KubernetesVersion | None = None
    """Minimum GKE master version; it must still be offered by the release channel (default: the
    channel's default version, which GKE then keeps in support)."""
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    """GKE release channel (default REGULAR)."""
    subnet_cidr: Cidr = "10.10.0.0/20"
    """Primary range of the nodes' subnet (default 10.10.0.0/20)."""
    pods_cidr: Cidr = "10.16.0.0/14"
    """Secondary range for pods (default 10.16.0.0/14)."""
    services_cidr: Cidr = "10.20.0.0/20"
    """Secondary range for services (default 10.20.0.0/20)."""
    master_cidr: Cidr = "172.16.0.0/28"
    """/28 range of the private control plane (default 172.16.0.0/28)."""
    endpoint: GkeEndpointAccess = GkeEndpointAccess()
    """API server access (default: the IAM-gated DNS endpoint, and a private IP endpoint)."""
    deletion_protection: bool = True
    """GKE refuses to delete the cluster, so `pulumi destroy` stops at it; set false (and `pulumi up`)
    before a planned destroy such as a DR drill's teardown (default true)."""
    maintenance_window: MaintenanceWindow = MaintenanceWindow()
    """When GKE may upgrade the cluster and its pools (default weekends, 01:00-09:00 UTC)."""


Cloud = Annotated[Union[KindCloud, EksCloud, GkeCloud], Field(discriminator="provider")]  # noqa: UP007


# --------------------------------------------------------------------------------------------
# Node pools
# --------------------------------------------------------------------------------------------


class GpuSharing(Model):
    """Several pods on one GPU."""

    strategy: Literal["timeSharing", "mig"]
    """``timeSharing`` (any GPU; no memory isolation) or ``mig`` (GKE, A100/H100/H200: isolated slices)."""
    max_shared_clients: int = Field(default=2, ge=2, le=48)
    """timeSharing: pods per GPU (default 2)."""
    partition_size: str | None = None
    """mig: the slice size, for example ``1g.10gb``; required with ``mig``."""


class GpuSpec(Model):
    """The GPUs of each node of a pool."""

    type: str
    """GPU model, one of the GPU catalog's names (for example ``nvidia-l4``)."""
    count: int = Field(default=1, ge=1, le=16)
    """GPUs per node (default 1)."""
    sharing: GpuSharing | None = None
    """Share each GPU between pods (default: one pod per GPU)."""


class NodePool(Model):
    """A group of identical nodes."""

    name: Name
    role: Literal["system", "cpu", "gpu"]
    """``system`` runs cluster add-ons; ``cpu`` and ``gpu`` run workloads. GPU pools are tainted."""
    instance_types: list[str] = []
    """EKS: EC2 instance types (several allowed, for spot capacity); GKE: exactly one machine type;
    kind: unused. Required on EKS and GKE."""
    min_nodes: int = Field(default=1, ge=0, le=1000)
    """Smallest node count; 0 lets the autoscaler scale the pool to zero (default 1)."""
    max_nodes: int = Field(default=1, ge=1, le=1000)
    """Largest node count (default 1)."""
    capacity: Literal["onDemand", "spot"] = "onDemand"
    """Capacity type (default onDemand)."""
    disk_size_gib: int = Field(default=100, ge=20, le=16384)
    """Root volume size in GiB; GPU images are large (default 100)."""
    gpu: GpuSpec | None = None
    """GPUs per node; required for, and only for, ``role: gpu``."""
    labels: dict[str, str] = {}
    """Extra node labels (default none)."""


# --------------------------------------------------------------------------------------------
# Monitoring and models
# --------------------------------------------------------------------------------------------


Fraction = Annotated[float, Field(gt=0, le=1)]


class AlertThresholds(Model):
    """Cluster-wide GPU alert thresholds."""

    gpu_memory_usage: Fraction = 0.95
    """Alert when a GPU's framebuffer is fuller than this fraction for 10 minutes (default 0.95)."""
    gpu_idle_utilisation_percent: float = Field(default=5, gt=0, le=100)
    """A GPU below this utilisation (percent) counts as idle (default 5)."""
    gpu_idle_minutes: int = Field(default=30, gt=0, le=1440)
    """Alert when a model's GPUs are idle this long while it runs above its minimum replicas (default 30)."""


class Slo(Model):
    """A model's service-level objectives over 30 days; each one becomes multi-window burn-rate alerts."""

    ttft_p95_seconds: float = Field(default=2.5, gt=0, le=600)
    """95% of requests get their first token within this many seconds: a bucket bound of vLLM's TTFT
    histogram (default 2.5)."""
    availability: float = Field(default=0.99, ge=0.95, le=0.9999)
    """Share of requests the gateway answers without a 5xx (default 0.99)."""
    queue_depth: int = Field(default=10, gt=0, le=100000)
    """Requests waiting per model above which it is overloaded (default 10)."""
    kv_cache_usage: Fraction = 0.9
    """KV-cache usage fraction above which requests start to be preempted (default 0.9)."""


class Throughput(Model):
    """What the time-to-ready estimate assumes; each default's source is in docs/upstream.md."""

    node_start_seconds: int = Field(default=300, gt=0, le=7200)
    """A new GPU node joins and advertises its GPUs (default 300: 4-6 minutes reported on EKS)."""
    image_pull_mb_per_second: float = Field(default=50, gt=0, le=100000)
    """Image pull and unpack on a node (default 50: 15-20 GB images take 4-6 minutes, AWS)."""
    hugging_face_mb_per_second: float = Field(default=100, gt=0, le=100000)
    """Download from the Hugging Face Hub (default 100: about 40 per file, 300+ across files)."""
    bucket_mb_per_second: float = Field(default=1000, gt=0, le=100000)
    """Reads from a bucket in the cluster's region, streamed or copied (default 1000: the Run:ai streamer
    read 15 GB from S3 in 4.9-8.5 s in its benchmark)."""
    volume_mb_per_second: float = Field(default=125, gt=0, le=100000)
    """Reads from a weights volume (default 125: an EBS gp3 volume's baseline)."""
    engine_start_seconds: int = Field(default=120, gt=0, le=7200)
    """vLLM's work after loading: profiling, compilation and CUDA graphs (default 120)."""
    margin: float = Field(default=2.0, ge=1, le=10)
    """Budgets are the estimate times this (default 2)."""


class Readiness(Model):
    """Time budgets of a model becoming ready; they set await timeouts, startup probes and rollout
    deadlines. Each defaults to the time-to-ready estimate (``neurodock plan`` shows it) times
    ``throughput.margin``."""

    node_scale_up_seconds: int | None = Field(default=None, gt=0, le=7200)
    """A GPU node joining and its GPUs being advertised."""
    image_pull_seconds: int | None = Field(default=None, gt=0, le=7200)
    """Pulling the engine image."""
    model_load_seconds: int | None = Field(default=None, gt=0, le=14400)
    """Fetching and loading the weights until the engine answers health checks (the first replica's)."""
    throughput: Throughput = Throughput()
    """What the estimate assumes."""


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


class Route(Model):
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


class Alerting(Model):
    """Who hears about alerts (Alertmanager's receivers and routing tree)."""

    receivers: list[AnyReceiver] = []
    """Receivers (default none: alerts reach nobody, which `neurodock plan` warns about and the
    policy alerts-reach-a-receiver refuses in production)."""
    routes: list[Route] = []
    """Routes, tried in order (default none: everything goes to ``defaultReceiver``)."""
    default_receiver: Name | None = None
    """Receiver of alerts no route takes (default: the first receiver)."""
    repeat_interval: AlertInterval = "4h"
    """How often a still-firing alert is sent again (default 4h)."""

    def credentialed(self) -> list[str]:
        """Names of the receivers that need a credential in ``alertReceiverSecrets``, sorted."""
        return sorted(r.name for r in self.receivers if r.needs_secret())


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


class ModelArchitecture(Model):
    """The size of a model that is not in the built-in catalogue (see its config.json)."""

    parameters_billions: float = Field(gt=0, le=10000)
    layers: int = Field(gt=0, le=1000)
    attention_heads: int = Field(gt=0, le=1024)
    kv_heads: int = Field(gt=0, le=1024)
    head_dim: int = Field(gt=0, le=1024)
    max_context: int = Field(default=131072, gt=0)


MANAGED_ENGINE_FLAGS = frozenset({
    "--model", "--served-model-name", "--host", "--port", "--tensor-parallel-size", "-tp", "--max-model-len",
    "--gpu-memory-utilization", "--dtype", "--quantization", "--kv-cache-dtype", "--max-num-seqs",
    "--download-dir", "-m", "--hf-repo", "-hfr", "--hf-file", "-hff", "--alias", "--ctx-size", "-c",
    "--parallel", "-np", "--metrics",
})
"""Flags NeuroDock sets from config; ``extraArgs`` may not set them again."""


class EngineArgs(Model):
    """Engine settings; NeuroDock turns them into the engine's flags."""

    max_model_len: int = Field(default=8192, ge=256, le=1048576)
    """Context length in tokens (default 8192)."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0.1, le=0.98)
    """vLLM: fraction of each GPU's memory it may use (default 0.9)."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """vLLM: weights dtype (default auto: the checkpoint's, bf16 for current models)."""
    quantization: Literal["fp8", "awq", "gptq"] | None = None
    """vLLM: quantisation of the checkpoint or on the fly (fp8) (default none)."""
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    """vLLM: KV-cache dtype (default auto)."""
    max_num_seqs: int = Field(default=64, ge=1, le=4096)
    """Sequences batched at once (vLLM --max-num-seqs; llama.cpp --parallel) (default 64)."""
    extra_args: list[Token] = []
    """More engine flags, one token per item (default none); flags NeuroDock manages are refused."""


class Rollout(Model):
    """How a new version replaces the old under GPU scarcity."""

    max_surge: int = Field(default=1, ge=0, le=100)
    """Extra replicas during a rollout; each needs free GPUs (default 1)."""
    max_unavailable: int = Field(default=0, ge=0, le=100)
    """Replicas that may be down during a rollout (default 0: never lose capacity)."""


class WeightsCache(Model):
    """The volume model weights are downloaded to before the engine starts."""

    size_gib: int | None = Field(default=None, ge=1, le=65536)
    """Volume size (default: 1.2 x the weights plus 10 GiB)."""
    shared_storage_class: str | None = None
    """A ReadWriteMany storage class (EFS, Filestore): one volume filled once and shared by every
    replica (default: a volume per replica, filled when the replica starts)."""


Revision = pattern(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,99}$", "a Hugging Face commit, branch or tag",
                   "0e9e39f249a16976918f6564b8830bc894c89659")


class Variant(Model):
    """Another version of a model served beside the stable one: a different image, weights
    revision or engine flags. Promotion and rollback are config changes: no image is rebuilt."""

    image: str | None = None
    """Engine image (default: the stable version's)."""
    source: WeightsUri | None = None
    """Weights (default: the stable version's)."""
    revision: Revision | None = None
    """Hugging Face commit of the weights (default: the stable version's)."""
    extra_args: list[Token] | None = None
    """Engine flags beyond the managed ones (default: the stable version's)."""
    replicas: int = Field(default=1, ge=1, le=100)
    """Replicas of the variant (default 1)."""


class Canary(Variant):
    """A canary: takes ``weight`` percent of the model's requests."""

    weight: int = Field(ge=0, le=100)
    """Percent of the model's traffic sent to the canary (0-100)."""


class Shadow(Variant):
    """A shadow: receives a copy of the model's requests; its answers are discarded."""

    percent: int = Field(default=100, ge=1, le=100)
    """Percent of requests mirrored to the shadow (default 100)."""


class Gateway(Model):
    """The single OpenAI-compatible entry point for every model."""

    enabled: bool = True
    """Install the gateway (default true)."""
    public: bool = False
    """Expose it through a cloud load balancer (default false: in-cluster only)."""
    allowed_cidrs: list[Cidr] = []
    """Sources allowed to a public gateway; required when ``public`` is true."""
    tls: bool = False
    """Serve HTTPS with the certificate in the secrets ``gatewayTlsCert``/``gatewayTlsKey`` (default false)."""
    smoke_test: bool = True
    """After each deployment, send a chat completion to every model; `pulumi up` fails if one does
    not answer (default true)."""


MAX_DEFAULT_DRAIN_S = 575
"""The Cluster Autoscaler gives an evicted pod at most 600 s (``--max-graceful-termination-sec``), less
the 10 s pre-stop wait and 15 s margin of a model server's grace period."""


ServedName = pattern(r"^[A-Za-z0-9][-A-Za-z0-9_./:]{0,127}$", "a model name of at most 128 letters, digits and -_./:",
                     "meta-llama/Llama-3.1-8B-Instruct")


GgufFile = pattern(r"^[^/\s][^\s]*\.gguf$", "a .gguf file's path within the source, without spaces",
                   "qwen2.5-0.5b-instruct-q4_k_m.gguf")


class ModelSpec(Model):
    """One entry of the model catalog: a model served behind the stack's endpoint."""

    name: Name
    """Id of the deployment (Kubernetes-safe)."""
    served_name: ServedName | None = None
    """Value of the OpenAI ``model`` field that selects this model (default: ``name``)."""
    source: WeightsUri
    """Where the weights come from."""
    revision: Revision | None = None
    """Hugging Face sources: the commit every replica serves; required where the weights are mirrored
    (``mirrored``), else the main branch when a replica downloads (default none)."""
    engine: Literal["vllm", "llamacpp"] = "vllm"
    """``vllm`` on GPU pools; ``llamacpp`` serves small GGUF models on CPU (default vllm)."""
    pool: Name
    """Node pool the replicas run on."""
    gpus_per_replica: int = Field(default=1, ge=0, le=16)
    """GPUs per replica, the tensor-parallel size for vLLM; 0 for CPU engines (default 1)."""
    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest replicas (default 1); at least 1 until a request can wake a model at zero."""
    max_replicas: int = Field(default=1, ge=1, le=1000)
    """Most replicas (default 1)."""
    file: GgufFile | None = None
    """llamacpp: the GGUF file to serve, within ``source`` (required for llamacpp)."""
    architecture: ModelArchitecture | None = None
    """The model's size, for the capacity check; required for models not in the built-in catalogue."""
    engine_args: EngineArgs = EngineArgs()
    """Engine settings."""
    concurrency: int | None = Field(default=None, ge=1, le=4096)
    """Full-length sequences (``maxModelLen`` tokens each) the KV cache must hold at once, for the
    capacity check (default: ``engineArgs.maxNumSeqs``, every sequence vLLM batches at its longest)."""
    rollout: Rollout = Rollout()
    """Rollout surge and unavailability (defaults: surge 1, unavailable 0)."""
    request_timeout_seconds: int = Field(default=600, ge=10, le=3600)
    """Longest request the gateway lets run, streaming included (default 600)."""
    drain_seconds: int | None = Field(default=None, ge=0, le=3600)
    """Time in-flight requests get to finish when a replica stops (default: requestTimeoutSeconds, so
    no generation the gateway allows is cut, at most 575 s: with the pre-stop wait and margin, the
    10 minutes the Cluster Autoscaler waits for a pod it evicts)."""
    cache: WeightsCache = WeightsCache()
    """Where the weights are cached (default: a volume per replica on the cluster's storage class)."""
    slo: Slo = Slo()
    """Service-level objectives, alerted on (defaults: TTFT p95 2 s, queue 10, KV cache 0.9)."""
    canary: Canary | None = None
    """A canary version taking a share of the traffic (default none)."""
    shadow: Shadow | None = None
    """A shadow version receiving mirrored traffic (default none)."""
    readiness: Readiness | None = None
    """Readiness budgets for this model (default: the stack's ``readiness``)."""

    @property
    def sequences(self) -> int:
        """Full-length sequences the KV cache must hold."""
        return self.engine_args.max_num_seqs if self.concurrency is None else self.concurrency

    @property
    def drain(self) -> int:
        """Seconds a stopping replica gives in-flight requests."""
        return min(self.request_timeout_seconds, MAX_DEFAULT_DRAIN_S) if self.drain_seconds is None \
            else self.drain_seconds

    @property
    def model_name(self) -> str:
        """The OpenAI ``model`` value clients send."""
        return self.served_name or self.name

    def variant_name(self, key: str) -> str:
        """Resource-name prefix of the model's ``canary`` or ``shadow``."""
        return f"{self.name}-{key}"

    def versions(self) -> list[ModelVersion]:
        """The stable version, then the canary and shadow that are configured, with the weights each
        serves (a variant's own, else the model's)."""
        out = [ModelVersion(key="stable", name=self.name, variant=None, source=self.source, revision=self.revision)]
        for key in VARIANTS:
            if (variant := getattr(self, key)) is not None:
                out.append(ModelVersion(key=key, name=self.variant_name(key), variant=variant,
                                        source=variant.source or self.source,
                                        revision=variant.revision or self.revision))
        return out


@dataclass(frozen=True, kw_only=True)
class ModelVersion:
    """One version of a model: ``stable``, ``canary`` or ``shadow``."""

    key: str
    name: str
    """Resource-name prefix."""
    variant: Variant | None
    """The canary's or shadow's config; None for the stable version."""
    source: str
    revision: str | None


def mirrored(provider: str, model: ModelSpec, source: str) -> bool:
    """Hugging Face weights of a vLLM model on a cloud are mirrored once into the stack's bucket and
    streamed from there by every replica; a shared volume, where configured, is filled instead."""
    return (source.startswith("hf://") and model.engine == "vllm" and provider in ("eks", "gke")
            and model.cache.shared_storage_class is None)


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

    @property
    def cluster_name(self) -> str:
        if isinstance(self.cloud, KindCloud) and self.cloud.cluster_name:
            return self.cloud.cluster_name
        return f"neurodock-{self.environment}"

    def pool(self, name: str) -> NodePool | None:
        return next((p for p in self.node_pools if p.name == name), None)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a stack's configuration."""

    path: str
    """The key, as written in the stack file: ``neurodock:nodePools[1].gpu.count``."""
    message: str
    """What is wrong and what is allowed."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


PLAIN_KEY = re.compile(r'[^.\[\]"]+')
"""A key that Pulumi's ``--path`` syntax writes after a dot; others are written ``["a.b"]``."""


def key_path(loc: Iterable[str | int], namespace: str = NAMESPACE) -> str:
    """``("nodePools", 1, "gpu")`` -> ``neurodock:nodePools[1].gpu``, as ``pulumi config set --path`` takes it
    (``neurodock:tags["cost.center"]``)."""
    out = namespace + ":"
    first = True
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not PLAIN_KEY.fullmatch(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += part if first else f".{part}"
        first = False
    return out


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


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
    problems: list[Problem] = []
    for full_key, value in values.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE and difflib.get_close_matches(namespace, [NAMESPACE], cutoff=0.75):
            problems.append(Problem(full_key, f"is in no namespace NeuroDock reads; did you mean {NAMESPACE}:{key}?"))
        if namespace != NAMESPACE or not key:
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
    problems.extend(_semantic_problems(config))
    present = {k.partition(":")[2] for k in values if k.startswith(NAMESPACE + ":")}
    key = f"{NAMESPACE}:alertReceiverSecrets"
    # In plain text it is refused above; its entries are checked once Pulumi can decrypt it.
    raw = values.get(key) if key in secret_keys else None
    problems.extend(receiver_secret_problems(config, None if raw == UNKNOWN_MARKER else raw))
    if config.gateway.tls:
        for key in ("gatewayTlsCert", "gatewayTlsKey"):
            if key not in present:
                problems.append(Problem(key_path(("gateway", "tls")), (
                    f"TLS needs the secret {NAMESPACE}:{key}; set it with "
                    f"`pulumi config set --secret {NAMESPACE}:{key} < FILE` or set gateway.tls to false")))
    if problems:
        raise ConfigError(problems)
    return config


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
        fix = (f"set it with `pulumi config set --secret {NAMESPACE}:{home}`" if home else
               f"keep credentials in the secret keys ({', '.join(SECRET_KEYS)}), set with `pulumi config set "
               "--secret`")
        out.append(Problem(key_path(loc), f"holds {what} in plain text, which would sit in git and in every plan "
                           f"and cloud console; remove it, revoke it, and {fix} (README, \"Secrets\")"))
    return out


def decode(value: Any) -> Any:
    """Pulumi passes structured config values to programs as JSON text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# --------------------------------------------------------------------------------------------
# Structural problems: pydantic errors rewritten as key paths and plain sentences
# --------------------------------------------------------------------------------------------


def structural_problems(exc: ValidationError, data: Any, root: type[BaseModel] | None = None,
                        namespace: str = NAMESPACE) -> list[Problem]:
    """One problem per pydantic error, each naming the key as written (``namespace:a.b[1].c``).
    ``root`` is the model validated (default ``StackConfig``), for "did you mean" hints."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = _user_loc(error["loc"], data)
        kind = error["type"]
        value = error.get("input")
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            tag = error["ctx"]["discriminator"].strip("'")
            # pydantic lists the tags only when the one given is wrong, not when it is missing.
            allowed = ", ".join(repr(t) for t in _union_tags(loc, data, root or StackConfig, tag))
            got = error["ctx"].get("tag")
            loc = (*loc, tag)
            message = (f"must be one of {allowed} (got {got!r})" if got is not None
                       else f"is required: one of {allowed}")
        elif kind == "extra_forbidden":
            message = _unknown_key_message(loc, data, root or StackConfig)
        elif kind == "missing":
            message = "is required but missing"
        elif value is None or value == "null":
            message = "is empty; give it a value, or remove the key for its default"
        elif kind == "string_type" and isinstance(value, bool):
            message = (f"must be text, but YAML read the unquoted {str(value).lower()} as a boolean; put the value in "
                       f"quotes, e.g. \"{str(value).lower()}\"")
        elif kind == "string_type" and isinstance(value, (int, float)):
            # YAML has already turned 1.30 into 1.3: only an integer can be quoted back as written.
            quoted = value if isinstance(value, int) else _example(error, data, root or StackConfig) or value
            message = (f"must be text, but YAML read the unquoted {value!r} as a number"
                       + (" (1.30 reads as 1.3)" if isinstance(value, float) else "")
                       + f"; put the value in quotes, e.g. \"{quoted}\"")
        elif kind == "string_pattern_mismatch" and error["ctx"]["pattern"] in PATTERN_HINTS:
            message = f"{PATTERN_HINTS[error['ctx']['pattern']]} (got {value!r})"
        else:
            message = _sentence(error["msg"])
            if "input" in error and not isinstance(value, (dict, list)):
                message += f" (got {value!r})"
        problems.append(Problem(key_path(loc, namespace), message))
    return problems


def _user_loc(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """Drop the tags pydantic inserts into locations inside discriminated unions.

    For ``cloud: {provider: eks, zones: ...}`` pydantic reports ``("cloud", "eks", "zones")``; the
    user wrote ``cloud.zones``. A string that is not a key of the input mapping but is the value of
    one of its keys is such a tag.
    """
    out: list[str | int] = []
    node = data
    for part in loc:
        is_tag = (isinstance(node, Mapping) and isinstance(part, str) and part not in node
                  and part in {v for v in node.values() if isinstance(v, str)})
        if is_tag:
            continue
        out.append(part)
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def _unknown_key_message(loc: tuple[str | int, ...], data: Any, root: type[BaseModel]) -> str:
    allowed = _allowed_keys(loc[:-1], data, root)
    key = str(loc[-1])
    if not allowed:
        return "unknown key"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}allowed keys: {', '.join(allowed)}"


def _allowed_keys(loc: tuple[str | int, ...], data: Any, root: type[BaseModel]) -> list[str]:
    """The camelCase keys of the model found at ``loc``."""
    annotation = _resolve(*_annotation_at(loc, data, root))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sorted(f.alias or n for n, f in annotation.model_fields.items())
    return []


def _union_tags(loc: tuple[str | int, ...], data: Any, root: type[BaseModel], tag: str) -> list[str]:
    """The values the discriminator ``tag`` may take in the tagged union at ``loc``."""
    annotation, _ = _annotation_at(loc, data, root)
    while get_origin(annotation) is Annotated or _is_union(annotation):
        members = get_args(annotation)
        if get_origin(annotation) is Annotated or (len(members) == 2 and type(None) in members):
            annotation = next(m for m in members if m is not type(None))
            continue
        return [value for member in members if isinstance(member, type) and tag in member.model_fields
                for value in get_args(member.model_fields[tag].annotation)]
    return []


def _example(error: Any, data: Any, root: type[BaseModel]) -> str | None:
    """The documented example value of the field an error is about."""
    pending = [_annotation_at(_user_loc(error["loc"], data), data, root)[0]]
    while pending:
        annotation = pending.pop()
        if getattr(annotation, "examples", None):
            return str(annotation.examples[0])
        pending.extend(get_args(annotation))
    return None


def _annotation_at(loc: tuple[str | int, ...], data: Any, root: type[BaseModel]) -> tuple[Any, Any]:
    """The type annotation of the key at ``loc``, and the input there (walked alongside, to pick the
    member of a tagged union the input chose)."""
    annotation: Any = root
    node = data
    for part in loc:
        annotation = _resolve(annotation, node)
        if isinstance(part, int):
            args = get_args(annotation)
            annotation = args[0] if args else Any
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = next(
                (f for n, f in annotation.model_fields.items() if (f.alias or n) == part), None
            )
            if field is None:
                return Any, None
            annotation = field.annotation
            # Field metadata (the pattern's description and example) travels with the annotation.
            if field.metadata or field.examples:
                annotation = Annotated[annotation, *field.metadata, field]
        else:
            args = get_args(annotation)
            annotation = args[-1] if args else Any
        node = node.get(part) if isinstance(node, Mapping) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
        )
    return annotation, node


def _resolve(annotation: Any, node: Any) -> Any:
    """Unwrap ``Annotated`` and ``Optional``, and pick a union member by its ``provider`` tag."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    members = [a for a in get_args(annotation) if a is not type(None)] if _is_union(annotation) else []
    if not members:
        return annotation
    if len(members) == 1:
        return _resolve(members[0], node)
    for member in members:
        tag = member.model_fields.get("provider") if isinstance(member, type) else None
        if tag and isinstance(node, Mapping) and node.get("provider") in get_args(tag.annotation):
            return member
    return annotation


def _is_union(annotation: Any) -> bool:
    import types

    return get_origin(annotation) in (Union, types.UnionType)


def _sentence(msg: str) -> str:
    """Pydantic's 'Input should be a valid dictionary' becomes 'must be a mapping of keys to values'."""
    for pydantic_words, ours in (
        (r"^Input should be a valid dictionary or object to extract fields from", "must be a mapping of keys"),
        (r"^Input should be a valid dictionary", "must be a mapping of keys to values"),
        (r"^Input should be a valid list", "must be a list"),
        (r"^Input should be a valid string", "must be text"),
        (r"^Input should be a valid integer, got a number with a fractional part", "must be a whole number"),
        (r"^Input should be", "must be"),
        (r"^List should have at least (\d+) items? after validation, not 0", r"must have at least \1 (got none)"),
        (r"^List should have at least (\d+) items? after validation, not (\d+)", r"must have at least \1 (got \2)"),
        (r"^Value error, ", ""),
    ):
        msg = re.sub(pydantic_words, ours, msg)
    return msg[:1].lower() + msg[1:]


# --------------------------------------------------------------------------------------------
# Semantic problems: facts across keys
# --------------------------------------------------------------------------------------------


def _semantic_problems(config: StackConfig) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(key_path(loc), message))

    cloud = config.cloud
    provider = cloud.provider

    # Cloud-level facts.
    pinned = {"kind": KIND_NODE_IMAGES, "eks": CLUSTER_AUTOSCALER_IMAGE_TAGS}.get(provider)
    if pinned is not None and cloud.kubernetes_version not in pinned:
        what = "kind node image" if provider == "kind" else "Cluster Autoscaler image"
        add(("cloud", "kubernetesVersion"), f"no pinned {what} for {cloud.kubernetes_version!r}; "
            f"supported: {', '.join(sorted(pinned))} (components/versions.py)")
    if isinstance(cloud, (EksCloud, GkeCloud)):
        for i, zone in enumerate(cloud.zones):
            if (problem := _zone_problem(cloud, zone)) is not None:
                add(("cloud", "zones", i), problem)
        if len(set(cloud.zones)) != len(cloud.zones):
            add(("cloud", "zones"), "lists a zone twice")
        if cloud.endpoint.public and not cloud.endpoint.allowed_cidrs:
            add(("cloud", "endpoint", "allowedCidrs"),
                "a public API endpoint needs an allow-list; list the CIDRs allowed to reach it, "
                "or set endpoint.public to false")
        for i, cidr in enumerate(cloud.endpoint.allowed_cidrs):
            problem = _cidr_problem(cidr)
            if problem:
                add(("cloud", "endpoint", "allowedCidrs", i), problem)
            elif cidr.endswith("/0"):
                add(("cloud", "endpoint", "allowedCidrs", i),
                    "0.0.0.0/0 opens the API server to the internet; list your own CIDRs")
        problems.extend(_network_problems(config))
        if isinstance(cloud, GkeCloud):
            window = cloud.maintenance_window
            length = datetime.fromisoformat(window.end_time) - datetime.fromisoformat(window.start_time)
            hours = length.total_seconds() / 3600
            if hours < 4:
                add(("cloud", "maintenanceWindow", "endTime"),
                    f"must be at least 4 hours after startTime (got {hours:g} h): GKE counts only windows of 4 hours "
                    "or more towards the 48 hours it needs in any 32 days")
    problems.extend(_tag_problems(config))
    for i, cidr in enumerate(config.deploy.egress_cidrs):
        problem = _cidr_problem(cidr)
        if problem:
            add(("deploy", "egressCidrs", i), problem)

    # Node pools.
    seen: dict[str, int] = {}
    for i, pool in enumerate(config.node_pools):
        if pool.name in seen:
            add(("nodePools", i, "name"), f"pool name {pool.name!r} is already used by nodePools[{seen[pool.name]}]")
        seen.setdefault(pool.name, i)
        if pool.min_nodes > pool.max_nodes:
            add(("nodePools", i, "minNodes"), f"must be <= maxNodes ({pool.min_nodes} > {pool.max_nodes})")
        if pool.role == "gpu" and pool.gpu is None:
            add(("nodePools", i, "gpu"), "a pool with role 'gpu' needs gpu.type and gpu.count")
        if pool.role != "gpu" and pool.gpu is not None:
            add(("nodePools", i, "gpu"), f"only pools with role 'gpu' take GPUs (this one has role {pool.role!r})")
        if pool.role == "system" and pool.min_nodes < 1:
            add(("nodePools", i, "minNodes"), "the system pool needs at least 1 node to run cluster add-ons")
        if pool.gpu is not None:
            model = GPU_MODELS.get(pool.gpu.type)
            if model is None:
                add(("nodePools", i, "gpu", "type"),
                    f"unknown GPU type {pool.gpu.type!r}; known types: {', '.join(sorted(GPU_MODELS))}")
            elif provider == "gke" and model.gke_accelerator is None:
                offered = sorted(n for n, m in GPU_MODELS.items() if m.gke_accelerator)
                add(("nodePools", i, "gpu", "type"),
                    f"GKE does not offer {pool.gpu.type!r}; GKE GPU types: {', '.join(offered)}")
            elif provider == "eks" and not model.eks:
                offered = sorted(n for n, m in GPU_MODELS.items() if m.eks)
                add(("nodePools", i, "gpu", "type"),
                    f"EKS does not offer {pool.gpu.type!r}; EKS GPU types: {', '.join(offered)}")
        problems.extend(_machine_problems(provider, i, pool))
        problems.extend(_node_label_problems(i, pool, provider))
        if provider in ("eks", "gke") and not pool.instance_types:
            what = "EC2 instance types" if provider == "eks" else "a GCE machine type"
            add(("nodePools", i, "instanceTypes"), f"is required on {provider}: list {what}")
        if provider == "gke" and len(pool.instance_types) > 1:
            add(("nodePools", i, "instanceTypes"), "GKE node pools take exactly one machine type")
        if provider == "eks":
            for j, machine in enumerate(pool.instance_types[1:], start=1):
                first = pool.instance_types[0]
                if _ec2_shape(machine) != _ec2_shape(first):
                    add(("nodePools", i, "instanceTypes", j),
                        f"{machine} is not the same shape as {first}: the Cluster Autoscaler sizes a node group "
                        "by its first instance type and needs every type to have the same vCPUs and memory "
                        "(cluster-autoscaler cloudprovider/aws README); list types of one size and family class "
                        "(e.g. m7i.xlarge with m6i.xlarge), or make another pool")
    if not any(p.role == "system" for p in config.node_pools):
        add(("nodePools",), "needs a pool with role 'system' for cluster add-ons")
    subnets = cloud.existing_vpc.private_subnet_ids if isinstance(cloud, EksCloud) and cloud.existing_vpc else []
    if len(set(subnets)) != len(subnets):
        add(("cloud", "existingVpc", "privateSubnetIds"), "lists a subnet twice")

    # Gateway.
    if config.gateway.public and not config.gateway.allowed_cidrs:
        add(("gateway", "allowedCidrs"), "a public gateway needs an allow-list of source CIDRs, or set gateway.public "
            "to false")
    for j, cidr in enumerate(config.gateway.allowed_cidrs):
        problem = _cidr_problem(cidr)
        if problem or cidr.endswith("/0"):
            add(("gateway", "allowedCidrs", j), problem or "0.0.0.0/0 opens the models to the internet; list your "
                "own CIDRs")

    # Models.
    names: dict[str, int] = {}
    served: dict[str, int] = {}
    for i, model in enumerate(config.models):
        if model.name in names:
            add(("models", i, "name"), f"model name {model.name!r} is already used by models[{names[model.name]}]")
        names.setdefault(model.name, i)
        for key in VARIANTS:
            if getattr(model, key) is None:
                continue
            if not config.gateway.enabled:
                add(("models", i, key), f"a {key} is reached through the gateway; set gateway.enabled to true or "
                    f"remove the {key}")
            variant_name = model.variant_name(key)
            if variant_name in names:
                add(("models", i, key), f"its resources would be named {variant_name!r}, the name of "
                    f"models[{names[variant_name]}]; rename one of the models")
            names.setdefault(variant_name, i)
        if model.model_name in served:
            add(("models", i, "servedName"),
                f"served name {model.model_name!r} is already used by models[{served[model.model_name]}]")
        served.setdefault(model.model_name, i)
        # Scale from zero needs the gateway's endpoint picker to hold the first request (and Prometheus,
        # for KEDA to see it held: checked with every autoscaled model).
        if model.min_replicas == 0 and not config.gateway.enabled:
            add(("models", i, "minReplicas"), (
                "0 needs the gateway: its endpoint picker holds a request while the model wakes, and the held "
                "request is what wakes it; without the gateway nothing could, so set gateway.enabled to true or "
                "minReplicas to 1 or more"))
        if model.min_replicas > model.max_replicas:
            add(("models", i, "minReplicas"),
                f"must be <= maxReplicas ({model.min_replicas} > {model.max_replicas})")
        pool = config.pool(model.pool)
        if pool is None:
            add(("models", i, "pool"),
                f"no node pool named {model.pool!r}; pools: {', '.join(p.name for p in config.node_pools)}")
            continue
        if model.engine == "vllm":
            if pool.gpu is None:
                add(("models", i, "pool"), f"engine 'vllm' needs a GPU pool; {pool.name!r} has no GPUs "
                    "(use engine 'llamacpp' for CPU serving)")
            elif model.gpus_per_replica < 1:
                add(("models", i, "gpusPerReplica"), "engine 'vllm' needs at least 1 GPU per replica")
            elif model.gpus_per_replica > pool.gpu.count:
                add(("models", i, "gpusPerReplica"),
                    f"{model.gpus_per_replica} GPUs per replica do not fit pool {pool.name!r}, whose nodes have "
                    f"{pool.gpu.count}; a replica cannot span nodes")
        elif model.gpus_per_replica != 0:
            add(("models", i, "gpusPerReplica"), f"engine {model.engine!r} runs on CPU; set it to 0")
        problems.extend(_model_problems(i, model, pool, provider, config.monitoring))
        problems.extend(_cache_problems(i, model, pool, provider))
    problems.extend(_capacity(config)[0])
    problems.extend(_alerting_problems(config))
    return problems


def config_warnings(config: StackConfig) -> list[Problem]:
    """What a valid configuration may not mean: settings that change nothing, and limits it runs into only
    at its peak. `pulumi preview` and `neurodock plan` show them; `pulumi up` goes on."""
    cloud = config.cloud
    out = _capacity(config)[1]
    if isinstance(cloud, EksCloud) and cloud.existing_vpc is not None and "vpc_cidr" in cloud.model_fields_set:
        out.append(Problem(key_path(("cloud", "vpcCidr")), "is unused: existingVpc names the VPC"))
    for i, pool in enumerate(config.node_pools):
        if cloud.provider == "kind" and pool.instance_types:
            out.append(Problem(key_path(("nodePools", i, "instanceTypes")), "is unused on kind, whose nodes are "
                               "containers on this machine"))
    for i, model in enumerate(config.models):
        if model.cache.size_gib is not None and not any(
                on_volume(cloud.provider, model, v.source) for v in model.versions()):
            out.append(Problem(key_path(("models", i, "cache", "sizeGib")), f"is unused: model {_label(model)} "
                               "streams its weights from a bucket into GPU memory, with no volume"))
        if cloud.provider in ("eks", "gke") and model.drain > MAX_DEFAULT_DRAIN_S:
            out.append(Problem(key_path(("models", i, "drainSeconds")), (
                f"{model.drain} s is longer than the Cluster Autoscaler lets a pod it evicts take (600 s, less the "
                "model server's 10 s pre-stop wait and 15 s margin): scaling a node down cuts requests still "
                f"draining after {MAX_DEFAULT_DRAIN_S} s (rollouts and upgrades wait the whole drain)")))
    return out


def gpu_devices_per_node(pool: NodePool) -> int | None:
    """``nvidia.com/gpu`` devices a node of ``pool`` advertises: its GPUs, times the time-sharing clients or
    MIG partitions of each (None for a pool without GPUs or with an unknown MIG size, refused elsewhere)."""
    if pool.gpu is None:
        return None
    sharing = pool.gpu.sharing
    per_gpu = 1 if sharing is None else devices_per_gpu(pool.gpu.type, sharing.strategy, sharing.max_shared_clients,
                                                         sharing.partition_size)
    return pool.gpu.count * per_gpu if per_gpu else None


def _capacity(config: StackConfig) -> tuple[list[Problem], list[Problem]]:
    """Every model's replicas at their most, with its canary and shadow, fit its pool's GPUs, and so do all the
    models of a pool together: a replica the pool cannot hold stays Pending. Then the warnings: where, at that
    peak, a rollout's surge replica has no room (with ``maxUnavailable`` 0 it waits until a replica goes)."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for i, pool in enumerate(config.node_pools):
        per_node = gpu_devices_per_node(pool)
        if per_node is None:
            continue
        capacity = pool.max_nodes * per_node
        held = f"pool {pool.name!r} holds at most {_count(capacity, 'GPU')} ({_count(pool.max_nodes, 'node')} x " \
               f"{per_node})"
        peaks: list[tuple[int, ModelSpec, int]] = []
        for j, model in enumerate(config.models):
            gpus = model.gpus_per_replica
            if model.pool != pool.name or model.engine != "vllm" or not 0 < gpus <= per_node:
                continue  # another pool's, or reported on gpusPerReplica
            replicas = model.max_replicas + sum(v.replicas for v in (model.canary, model.shadow) if v)
            peaks.append((j, model, replicas * gpus))
            # A replica cannot span nodes: what is left of a node when its replicas are placed stays idle.
            room = min(capacity // gpus, pool.max_nodes * (per_node // gpus))
            parts = [f"maxReplicas {model.max_replicas}"]
            parts += [f"{key} {v.replicas}" for key in VARIANTS if (v := getattr(model, key))]
            where = key_path(("models", j, "maxReplicas"))
            if replicas > room:
                problems.append(Problem(where, (
                    f"model {_label(model)} needs up to {replicas} replicas of {_count(gpus, 'GPU')} each "
                    f"({', '.join(parts)}); {held}, room for {room} such replicas; lower maxReplicas or the canary's "
                    "or shadow's replicas, or raise the pool's maxNodes")))
            elif replicas + _surge(model) > room:
                warnings.append(Problem(where, (
                    f"at its peak of {replicas} replicas, model {_label(model)} leaves pool {pool.name!r} no room for "
                    f"a rollout's surge replica, so a rollout then waits until a replica is scaled away; raise the "
                    "pool's maxNodes, or set rollout.maxUnavailable to 1")))
        steady = sum(need for *_, need in peaks)
        surge = max((_surge(m) * m.gpus_per_replica for _, m, _ in peaks), default=0)
        reported = {p.path for p in problems}
        if len(peaks) < 2 or any(key_path(("models", j, "maxReplicas")) in reported for j, *_ in peaks):
            continue
        each = ", ".join(f"{_label(m)} {need}" for _, m, need in peaks)
        if steady > capacity:
            problems.append(Problem(key_path(("nodePools", i, "maxNodes")), (
                f"the models on pool {pool.name!r} need up to {steady} GPUs together at their maxReplicas with "
                f"canaries and shadows ({each}); {held}; raise maxNodes to {-(-steady // per_node)} or lower the "
                "models' maxReplicas")))
        elif steady + surge > capacity:
            warnings.append(Problem(key_path(("nodePools", i, "maxNodes")), (
                f"at their peak the models on pool {pool.name!r} take {steady} of its {capacity} GPUs ({each}), "
                f"leaving no room for a rollout's surge replica; raise maxNodes to "
                f"{-(-(steady + surge) // per_node)}, or set the models' rollout.maxUnavailable to 1")))
    return problems, warnings


def _surge(model: ModelSpec) -> int:
    """Replicas a rollout adds before it removes any: none once it may take one down first."""
    return model.rollout.max_surge if model.rollout.max_unavailable == 0 else 0


GPU_MEMORY_ALERT_HEADROOM = 0.05
"""How far below ``monitoring.alerts.gpuMemoryUsage`` vLLM's ``gpuMemoryUtilization`` must stay: vLLM
takes its fraction of each GPU's memory at start and holds it, and the alert's ratio, used / (used +
free), reads higher: DCGM leaves the reserved framebuffer out of both (446 of 23034 MiB on an L4, about
2%), and the CUDA context sits outside vLLM's share. Without headroom the alert would fire for as long
as the model runs."""


def _alerting_problems(config: StackConfig) -> list[Problem]:
    alerting = config.monitoring.alerting
    out: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(("monitoring", "alerting", *loc)), message))

    names: dict[str, int] = {}
    for i, receiver in enumerate(alerting.receivers):
        if receiver.name in names:
            add(("receivers", i, "name"), f"receivers[{names[receiver.name]}] is also named {receiver.name!r}")
        names.setdefault(receiver.name, i)
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


def missing_receiver_credentials(config: StackConfig) -> Problem:
    """The problem of receivers whose credentials are not set."""
    key = f"{NAMESPACE}:alertReceiverSecrets"
    needed = config.monitoring.alerting.credentialed()
    example = ", ".join(f'"{name}": "..."' for name in needed)
    return Problem(key, f"receivers {', '.join(needed)} need their credentials here, and it is not set; set it with "
                        f"`pulumi config set --secret {key} '{{{example}}}'`")


def receiver_secret_problems(config: StackConfig, raw: Any) -> list[Problem]:
    """``neurodock:alertReceiverSecrets`` against the receivers that need one, when the program can
    read it (``raw``: its plaintext; None when it is unset or cannot be decrypted, as in an offline
    plan). Never quotes the values. A missing secret is the program's to report (``missing_receiver_credentials``)."""
    key = f"{NAMESPACE}:alertReceiverSecrets"
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


def _ec2_shape(instance_type: str) -> tuple[str, bool, str]:
    """What fixes an EC2 type's vCPUs and memory: the family's class letters (m: 4 GiB per vCPU, c: 2,
    r: 8, g/p: per GPU model), its processor (Graviton families carry a ``g`` after the generation
    and need another AMI) and the size (``2xlarge``). Same shape means the autoscaler's first-type
    assumption holds."""
    family, _, size = instance_type.partition(".")
    match = re.fullmatch(r"(?P<cls>[a-z]+)(?P<gen>[0-9]+)(?P<attrs>[a-z-]*)", family)
    if match is None:
        return family, False, size
    return match["cls"], "g" in match["attrs"] and match["cls"] not in ("g", "p"), size


def _machine_problems(provider: str, i: int, pool: NodePool) -> list[Problem]:
    """Instance types agree with the pool's GPUs; GPU sharing fits the cloud and the GPU."""
    out: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(("nodePools", i, *loc)), message))

    if provider in ("eks", "gke"):
        known = sorted(EKS_INSTANCE_TYPES if provider == "eks" else
                       [*GKE_MACHINE_TYPES, *(f"{p}*" for p in GKE_ATTACHABLE)])
        wanted = GpuMachine(gpu_type=pool.gpu.type, count=pool.gpu.count) if pool.gpu else None
        for j, machine in enumerate(pool.instance_types):
            if not machine_types.exists(provider, machine):
                close = machine_types.did_you_mean(provider, machine)
                what = machine_types.SOURCES[provider]
                hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
                add(("instanceTypes", j), f"{machine!r} is not in {what}; {hint}(a type launched since is added to "
                    f"components/cluster/machine_types/{machine_types.LISTS[provider]})")
                continue
            gpus = machine_gpus(provider, machine, wanted)
            if pool.gpu is None:
                if gpus is not None and pool.role != "gpu":
                    add(("instanceTypes", j), f"{machine} has GPUs; put it in a pool with role 'gpu'")
                continue
            if gpus is None:
                add(("instanceTypes", j), f"{machine!r} is not a known {provider} GPU machine type for "
                    f"{pool.gpu.count} x {pool.gpu.type}; known: {', '.join(known)}")
            elif (gpus.gpu_type, gpus.count) != (pool.gpu.type, pool.gpu.count):
                add(("instanceTypes", j), f"{machine} has {gpus.count} x {gpus.gpu_type} but gpu says "
                    f"{pool.gpu.count} x {pool.gpu.type}; make them agree")
    sharing = pool.gpu.sharing if pool.gpu else None
    if sharing is not None and sharing.strategy == "mig":
        profiles = MIG_PROFILES.get(pool.gpu.type)
        if provider != "gke":
            add(("gpu", "sharing", "strategy"), f"mig partitions are supported on gke only (this stack is {provider});"
                " use timeSharing")
        elif profiles is None:
            add(("gpu", "sharing", "strategy"), f"{pool.gpu.type} does not support MIG; MIG GPUs: "
                f"{', '.join(sorted(MIG_PROFILES))}")
        elif sharing.partition_size not in profiles:
            add(("gpu", "sharing", "partitionSize"), f"must be one of {', '.join(sorted(profiles))} for "
                f"{pool.gpu.type} (got {sharing.partition_size!r})")
    if sharing is not None and sharing.strategy == "timeSharing" and sharing.partition_size is not None:
        add(("gpu", "sharing", "partitionSize"), "applies to mig only; remove it")
    return out


def _model_problems(i: int, model: ModelSpec, pool: NodePool, provider: str,
                    monitoring: Monitoring) -> list[Problem]:
    """Engine flags, rollout, and capacity: the model fits its pool's GPUs before anything exists."""
    out: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(("models", i, *loc)), message))

    for j, arg in enumerate(model.engine_args.extra_args):
        if arg.split("=", 1)[0] in MANAGED_ENGINE_FLAGS:
            add(("engineArgs", "extraArgs", j), f"{arg.split('=', 1)[0]} is set by NeuroDock from config; "
                "use the matching engineArgs key instead")
    cloud_for = {"s3": "eks", "gs": "gke"}.get(model.source.split("://", 1)[0])
    if cloud_for and cloud_for != provider:
        add(("source",), f"{model.source.split('://', 1)[0]}:// weights are read with {cloud_for} workload identity; "
            f"this stack runs on {provider}: use hf:// or a {provider} bucket")
    if model.engine == "vllm" and model.slo.ttft_p95_seconds not in VLLM_TTFT_BUCKETS:
        near = min(VLLM_TTFT_BUCKETS, key=lambda b: abs(b - model.slo.ttft_p95_seconds))
        add(("slo", "ttftP95Seconds"), (
            f"{model.slo.ttft_p95_seconds} is not a bucket bound of vLLM's time-to-first-token histogram, so "
            f"the share of requests meeting it cannot be counted; use {near:g} or another bound: "
            f"{', '.join(f'{b:g}' for b in VLLM_TTFT_BUCKETS)}"))
    threshold = monitoring.alerts.gpu_memory_usage
    if (monitoring.enabled and model.engine == "vllm"
            and model.engine_args.gpu_memory_utilization > round(threshold - GPU_MEMORY_ALERT_HEADROOM, 4)):
        add(("engineArgs", "gpuMemoryUtilization"), (
            f"vLLM holds {model.engine_args.gpu_memory_utilization} of each GPU's memory while it runs, so the alert "
            f"on GPU memory above monitoring.alerts.gpuMemoryUsage ({threshold}) would fire for as long as it does; "
            f"set it to at most {threshold - GPU_MEMORY_ALERT_HEADROOM:.2f} or raise gpuMemoryUsage"))
    if model.max_replicas > model.min_replicas and not monitoring.enabled:
        add(("maxReplicas",), "autoscaling between minReplicas and maxReplicas reads the queue from Prometheus; "
            "enable monitoring or set maxReplicas equal to minReplicas")
    if model.rollout.max_surge == 0 and model.rollout.max_unavailable == 0:
        add(("rollout",), "maxSurge and maxUnavailable cannot both be 0: the rollout could never progress")
    for key in VARIANTS:
        variant = getattr(model, key)
        if variant is not None and variant.source is not None:
            scheme, stable_scheme = variant.source.split("://", 1)[0], model.source.split("://", 1)[0]
            if scheme != stable_scheme:
                add((key, "source"), f"must come from the same kind of store as the model's source ({stable_scheme}://"
                    f"), whose identity the {key} reuses (got {scheme}://)")
    for version in model.versions():
        where = (version.key, "revision") if version.variant else ("revision",)
        own = version.variant.revision if version.variant else model.revision
        if own is not None and not version.source.startswith("hf://"):
            add(where, "applies to hf:// sources; a bucket prefix is its own version: point source at it")
        # A variant that takes the model's weights as they are shares its problem: reported once, on the model.
        inherits = version.variant is not None and not (version.variant.source or version.variant.revision)
        if not inherits and mirrored(provider, model, version.source) and not re.fullmatch(
                r"[0-9a-f]{40}", version.revision or ""):
            add(where, (
                f"Hugging Face weights are mirrored once into the stack's bucket and served from there, so "
                f"they need a commit: set revision to the 40-character commit of {version.source} to serve (the "
                "repository's \"Files and versions\" page lists them), e.g. "
                "revision: 0e9e39f249a16976918f6564b8830bc894c89659"))
    if model.engine == "llamacpp":
        if model.revision is not None:
            add(("revision",), "llama.cpp downloads the GGUF file from the repository's main branch itself; "
                "remove revision, or serve a bucket copy of the file")
        if model.file is None:
            add(("file",), "engine 'llamacpp' needs the GGUF file to serve, e.g. qwen2.5-0.5b-instruct-q4_k_m.gguf")
        return out
    if model.file is not None:
        add(("file",), "applies to engine 'llamacpp' only; vLLM serves the whole repository")
    if pool.gpu is None or model.gpus_per_replica < 1 or model.gpus_per_replica > pool.gpu.count:
        return out  # reported above
    arch = model_architecture(model)
    if arch is None:
        add(("architecture",), f"model {_label(model)} is not in the built-in catalogue "
            "(components/serving/architectures.py); state its size: parametersBillions, layers, attentionHeads, "
            "kvHeads, headDim")
        return out
    tp = model.gpus_per_replica
    if arch.attention_heads % tp:
        add(("gpusPerReplica",), f"tensor-parallel size {tp} does not divide the {arch.attention_heads} attention "
            f"heads of model {_label(model)}; use a divisor of {arch.attention_heads}")
        return out
    engine = model.engine_args
    if engine.max_model_len > arch.max_context:
        add(("engineArgs", "maxModelLen"), f"{engine.max_model_len} exceeds the {arch.max_context}-token context "
            f"of model {_label(model)}")
    gpu = GPU_MODELS.get(pool.gpu.type)
    memory_gib = device_memory_gib(pool)
    if gpu is None or memory_gib is None:
        return out
    sharing = pool.gpu.sharing
    if sharing is not None and tp > 1:
        add(("gpusPerReplica",), (
            f"pool {pool.name!r} shares its GPUs ({sharing.strategy}), so a replica cannot span several: a "
            f"process sees one MIG slice, and time-shared ranks may land on one GPU; use 1, or a pool of whole GPUs"))
        return out
    if sharing is not None and sharing.strategy == "timeSharing":
        # Each of the clients takes its fraction of the whole GPU at start, and its own CUDA context beside it.
        most = (gpu.memory_gib / sharing.max_shared_clients - CUDA_CONTEXT_GIB) / gpu.memory_gib
        if engine.gpu_memory_utilization > most:
            add(("engineArgs", "gpuMemoryUtilization"), (
                f"{engine.gpu_memory_utilization} of each {pool.gpu.type} for each of the "
                f"{sharing.max_shared_clients} replicas pool {pool.name!r} puts on one GPU does not fit it: the "
                f"second would find too little free memory and refuse to start; set at most {max(most, 0):.2f}"))
            return out
    size = replica_size(model, pool)
    assert size is not None and size.memory is not None
    need = size.memory
    have = memory_gib * engine.gpu_memory_utilization
    if need.per_gpu_gib > have:
        add(("concurrency",) if model.concurrency is None else ("gpusPerReplica",), (
            f"model {_label(model)} does not fit pool {pool.name!r}: each of its {tp} {pool.gpu.type} GPUs "
            f"needs {need.per_gpu_gib:.1f} GiB (weights {need.weights_gib:.1f} GiB / {tp}, KV cache "
            f"{need.kv_cache_gib:.1f} GiB for {model.sequences} x {engine.max_model_len} tokens, runtime "
            f"{need.overhead_gib:.1f} GiB) but may use {have:.1f} GiB ({memory_gib:g} GiB x "
            f"{engine.gpu_memory_utilization}); set concurrency to the full-length sequences it must hold (it "
            f"defaults to engineArgs.maxNumSeqs), or use more GPUs per replica, a larger GPU, quantization or a "
            "shorter maxModelLen"))
    if sharing is None and gpu.memory_gib * (1 - engine.gpu_memory_utilization) < CUDA_CONTEXT_GIB:
        add(("engineArgs", "gpuMemoryUtilization"), (
            f"{engine.gpu_memory_utilization} of a {gpu.memory_gib} GiB {pool.gpu.type} leaves "
            f"{gpu.memory_gib * (1 - engine.gpu_memory_utilization):.1f} GiB for the CUDA context, which vLLM "
            f"allocates outside that budget (about {CUDA_CONTEXT_GIB:.0f} GiB): it would refuse to start; lower it"))
    return out


def on_volume(provider: str, model: ModelSpec, source: str) -> bool:
    """The weights of ``source`` are copied to a volume before the engine starts; vLLM streams a bucket's,
    mirrored ones included, straight into GPU memory."""
    return not (model.engine == "vllm" and (source.startswith(("s3://", "gs://")) or mirrored(provider, model, source)))


def _cache_problems(i: int, model: ModelSpec, pool: NodePool, provider: str) -> list[Problem]:
    """``cache.sizeGib`` holds the weights, and sizes a volume that exists."""
    size_gib = model.cache.size_gib
    if size_gib is None or not any(on_volume(provider, model, v.source) for v in model.versions()):
        return []  # no volume: config_warnings says the key is unused
    if model_architecture(model) is None or (model.gpus_per_replica and pool.gpu is None):
        return []  # a size unknown (a GGUF file; a vLLM model is refused), or reported on the pool
    size = replica_size(model, pool)
    assert size is not None
    if size_gib >= size.weights_gib:
        return []
    return [Problem(key_path(("models", i, "cache", "sizeGib")), (
        f"{size_gib} GiB cannot hold the {size.weights_gib:.1f} GiB of weights of model {_label(model)}; remove it "
        f"for the default ({size.volume_gib} GiB: the weights, a fifth more and 10 GiB for the engine's files) or set "
        f"at least {math.ceil(size.weights_gib)}"))]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _label(model: ModelSpec) -> str:
    """A model as messages name it: its config ``name`` and its source."""
    return f"{model.name!r} ({model.source})"


def replica_size(model: ModelSpec, pool: NodePool) -> ReplicaSize | None:
    """What one replica of ``model`` on ``pool`` needs: the capacity check's numbers and the servers'
    resources (None for a vLLM model of unknown size, refused above)."""
    arch = model_architecture(model)
    if model.gpus_per_replica and arch is None:
        return None
    e = model.engine_args
    return architectures_replica_size(arch, gpus=model.gpus_per_replica, max_model_len=e.max_model_len,
                                      sequences=model.sequences, gpu_memory_gib=device_memory_gib(pool) or 0,
                                      dtype=e.dtype, quantization=e.quantization, kv_cache_dtype=e.kv_cache_dtype)


def device_memory_gib(pool: NodePool) -> float | None:
    """Memory of one GPU device a pod of ``pool`` gets: a whole GPU's, or its MIG slice's (the profile names
    its size in GB: ``3g.40gb``, NVIDIA MIG user guide). None without GPUs, or for an unknown GPU or slice."""
    gpu = GPU_MODELS.get(pool.gpu.type) if pool.gpu else None
    if gpu is None:
        return None
    sharing = pool.gpu.sharing
    if sharing is None or sharing.strategy != "mig":
        return gpu.memory_gib
    match = re.fullmatch(r"\d+g\.(\d+)gb", sharing.partition_size or "")
    return int(match[1]) * 1e9 / 2**30 if match else None


def model_architecture(model: ModelSpec) -> Architecture | None:
    """The model's size: stated in config, or from the built-in catalogue."""
    if model.architecture is not None:
        a = model.architecture
        return Architecture(parameters_b=a.parameters_billions, layers=a.layers, attention_heads=a.attention_heads,
                            kv_heads=a.kv_heads, head_dim=a.head_dim, max_context=a.max_context)
    return lookup(model.source)


def _zone_problem(cloud: EksCloud | GkeCloud, zone: str) -> str | None:
    """An AWS zone is its region and a letter (``us-west-2a``), a Google Cloud zone its region, '-' and a
    letter (``europe-west4-a``) (docs/upstream.md, "Names the clouds accept")."""
    region = cloud.region
    if isinstance(cloud, GkeCloud):
        # AI zones (us-central1-ai1a) hold accelerator capacity and take GKE Standard node pools.
        if re.fullmatch(re.escape(region) + r"-(ai[0-9]+)?[a-z]", zone):
            return None
        return f"zone {zone!r} is not a zone of region {region!r}; Google Cloud zones are the region, '-' and a " \
               f"letter, e.g. '{region}-b'"
    if re.fullmatch(re.escape(region) + r"[a-z]", zone):
        return None
    if re.fullmatch(r"[a-z]{3,5}[0-9]+-az[0-9]+", zone):
        return f"{zone!r} is a zone ID; give the zone's name, the region and a letter, e.g. '{region}a'"
    if zone.startswith(region + "-"):
        return f"{zone!r} is a Local or Wavelength Zone: EKS cannot put the cluster's network interfaces there, " \
               f"and the stack's subnets serve the cluster and its nodes alike; use the region's zones, e.g. " \
               f"'{region}a'"
    return f"zone {zone!r} is not a zone of region {region!r}; AWS zones are the region and a letter, e.g. " \
           f"'{region}a'"


MAX_USER_TAGS = 45
"""AWS and Google Cloud take 50 and 64 tags or labels per resource; the stack adds up to 5 of its own
(``Name``, ``neurodock:*``, the subnets' ``kubernetes.io/*`` tags)."""
RESERVED_TAGS = {"eks": ("aws:", "neurodock:", "kubernetes.io/", "k8s.io/"), "gke": ("neurodock-",)}
"""Tag keys (lowercased; on GKE as labels) AWS reserves (``aws:``) or the stack sets itself, with ``Name`` on
EKS."""
AWS_TAG_CHARACTERS = "_.:/=+-@ "
"""Besides letters and digits, what every tagged AWS service accepts (IAM's and CloudWatch Logs' pattern)."""


def gcp_label_key(tag: str) -> str:
    """A tag's key as a Google Cloud label's: lowercase, ':' as '-' (labels take neither); values are lowercased."""
    return tag.replace(":", "-").lower()


def gcp_labels(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags as Google Cloud labels."""
    return {gcp_label_key(k): v.lower() for k, v in tags.items()}


def _gcp_label_ok(text: str, *, key: bool) -> bool:
    """Google Cloud's label rule: at most 63 lowercase letters (international ones too), digits, '_' and '-';
    a key is not empty and starts with a letter."""
    if len(text) > 63 or (key and not text):
        return False
    letter = ("Ll", "Lo")
    return all(unicodedata.category(c) in letter or c.isdigit() or c in "_-" for c in text) and \
        (not key or unicodedata.category(text[0]) in letter)


def _tag_problems(config: StackConfig) -> list[Problem]:
    """``tags`` are valid AWS tags (EKS) or Google Cloud labels (GKE), and leave the stack's own alone."""
    provider = config.cloud.provider
    tags = config.tags
    out: list[Problem] = []

    def add(key: str | None, message: str) -> None:
        out.append(Problem(key_path(("tags", key) if key is not None else ("tags",)), message))

    if provider == "kind":
        return out
    if len(tags) > MAX_USER_TAGS:
        add(None, f"{len(tags)} tags; a cloud resource takes at most {MAX_USER_TAGS} besides the stack's own")
    seen: dict[str, str] = {}
    for key, value in tags.items():
        if not key.strip():
            add(None, f"has a tag with an empty key ({key!r}); give the tag a name")
            continue
        folded = key.lower() if provider == "eks" else gcp_label_key(key)
        if folded in seen:
            why = "IAM refuses tag keys that differ only in case" if provider == "eks" else \
                "both become the Google Cloud label " + repr(folded)
            add(key, f"collides with tag {seen[folded]!r}: {why}; keep one")
            continue
        seen[folded] = key
        if (provider == "eks" and key == "Name") or folded.startswith(RESERVED_TAGS[provider]):
            own = "Name, neurodock:* and kubernetes.io/*" if provider == "eks" else "neurodock-*"
            add(key, f"is a key {'AWS reserves or ' if provider == 'eks' else ''}the stack sets itself ({own}); "
                "choose another")
        elif provider == "eks":
            for what, text, limit in (("key", key, 127), ("value", value, 256)):
                bad = sorted({c for c in text if not (c.isalnum() or c in AWS_TAG_CHARACTERS)})
                if len(text) > limit or bad or (what == "value" and text.lower().startswith("aws:")):
                    add(key, f"the {what} {text!r} is not a valid AWS tag {what}: at most {limit} letters, digits, "
                        f"spaces and {AWS_TAG_CHARACTERS.strip()}" + (f" (not {''.join(bad)!r})" if bad else "")
                        + (", not starting with aws:" if what == "value" else ""))
        else:
            label_value = value.lower()
            if not _gcp_label_ok(folded, key=True):
                add(key, f"becomes the Google Cloud label key {folded!r}, which Google Cloud refuses: at most 63 "
                    "lowercase letters, digits, '_' and '-', starting with a letter, e.g. 'cost-center'")
            elif not _gcp_label_ok(label_value, key=False):
                add(key, f"the value {value!r} becomes the Google Cloud label value {label_value!r}, which Google "
                    "Cloud refuses: at most 63 lowercase letters, digits, '_' and '-', e.g. 'ml-platform'")
    return out


LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region"})
"""``kubernetes.io`` labels a kubelet may set on its own node, with any under ``kubelet.kubernetes.io`` and
``node.kubernetes.io`` (kubelet v0.35.7 ``pkg/apis/well_known_labels.go``)."""
MAX_EKS_POOL_LABELS = 30
"""An EKS pool's labels each become a node-template tag on its Auto Scaling group, which takes 50 tags with
EKS's own, the stack's labels, taint and GPU count."""


def _node_label_problems(i: int, pool: NodePool, provider: str) -> list[Problem]:
    """``labels`` of a pool: Kubernetes label syntax, within what the cloud accepts on a node pool (EKS: a whole
    key of 63 characters, a non-empty value; EKS and GKE: no ``kubernetes.io``/``k8s.io`` keys; kind: the
    kubelet's own rule), and not a key the stack sets."""
    out: list[Problem] = []
    eks = provider == "eks"
    if eks and len(pool.labels) > MAX_EKS_POOL_LABELS:
        out.append(Problem(key_path(("nodePools", i, "labels")), (
            f"{len(pool.labels)} labels; an EKS pool takes at most {MAX_EKS_POOL_LABELS} (each is also a tag of its "
            "Auto Scaling group, which holds 50)")))
    for key, value in pool.labels.items():
        loc = key_path(("nodePools", i, "labels", key))
        prefix, slash, name = key.rpartition("/")
        domain = prefix.lower()
        kubernetes = any(domain == d or domain.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))
        kubelet_may = key in KUBELET_LABELS or any(
            domain == d or domain.endswith("." + d) for d in ("kubelet.kubernetes.io", "node.kubernetes.io"))
        if not (LABEL_NAME.fullmatch(name) and len(name) <= 63 and (not eks or len(key) <= 63)
                and (not slash or (LABEL_PREFIX.fullmatch(prefix) and len(prefix) <= 253))):
            out.append(Problem(loc, "is not a node label key: an optional DNS prefix and '/', then at most 63 "
                                    "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                                    + (" (63 characters in all on EKS)" if eks else "") + ", e.g. 'example.com/team'"))
        elif domain == "neurodock.io" or domain.endswith(".neurodock.io"):
            out.append(Problem(loc, "neurodock.io/ keys are the stack's own (pool, role, GPU type and count), which "
                                    "workloads select on; choose another prefix"))
        elif (kubernetes and (provider != "kind" or not kubelet_may)) or (eks and "eks.amazonaws.com" in domain):
            who = "EKS and GKE refuse" if provider != "kind" else "the kubelet refuses all but a few of"
            out.append(Problem(loc, f"kubernetes.io and k8s.io keys are reserved: {who} them on a node"
                                    + (", and EKS eks.amazonaws.com ones" if eks else "") + "; choose another prefix"))
        if not ((LABEL_NAME.fullmatch(value) or (value == "" and not eks)) and len(value) <= 63):
            out.append(Problem(loc, f"the value {value!r} is not a node label value: at most 63 letters, digits, "
                                    "'-', '_' or '.', starting and ending with a letter or digit"
                                    + (" (EKS refuses an empty one)" if eks else "") + ", e.g. 'ml-platform'"))
    return out


RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
DOCKER_BRIDGE = ipaddress.IPv4Network("172.17.0.0/16")
"""GKE refuses a control-plane range inside it (its error: "reserved for the Docker bridge network")."""
GKE_POD_RANGE_PER_NODE_PREFIX = 24
"""GKE gives each node a /24 of the pods range at its default of 110 pods per node, which the stack keeps."""


def _network_problems(config: StackConfig) -> list[Problem]:
    """The ranges a stack creates are valid, large enough for what it carves out of them and disjoint."""
    cloud = config.cloud
    out: list[Problem] = []

    def add(key: str, message: str) -> None:
        out.append(Problem(key_path(("cloud", key)), message))

    keys = {"eks": ["vpcCidr"], "gke": ["subnetCidr", "podsCidr", "servicesCidr", "masterCidr"]}.get(cloud.provider, [])
    networks: dict[str, ipaddress.IPv4Network] = {}
    for key in keys:
        problem = _cidr_problem(getattr(cloud, _snake(key)))
        if problem:
            add(key, problem)
        else:
            networks[key] = ipaddress.IPv4Network(getattr(cloud, _snake(key)))
    for n, (key, network) in enumerate(networks.items()):
        for other, earlier in list(networks.items())[:n]:
            if network.overlaps(earlier):
                add(key, f"{network} overlaps {other} {earlier}; the ranges of a cluster must be disjoint")
    if isinstance(cloud, EksCloud) and "vpcCidr" in networks and cloud.existing_vpc is None:
        vpc = networks["vpcCidr"]
        if not 16 <= vpc.prefixlen <= 28:
            add("vpcCidr", f"AWS VPCs are /16 to /28 (got /{vpc.prefixlen}); use a /16 such as 10.0.0.0/16")
        else:
            subnets = 2 * len(cloud.zones)
            largest = EKS_SUBNET_PREFIX - (subnets - 1).bit_length()
            if vpc.prefixlen > largest:
                add("vpcCidr", f"{vpc} cannot hold the {subnets} /{EKS_SUBNET_PREFIX} subnets the stack makes (a "
                    f"private and a public one in each of {len(cloud.zones)} zones); use a /{largest} or larger, "
                    "e.g. 10.0.0.0/16")
    if isinstance(cloud, GkeCloud):
        master = networks.get("masterCidr")
        if master is not None and master.prefixlen != 28:
            add("masterCidr", f"must be a /28 range: GKE's private control plane takes exactly 16 addresses (got "
                f"/{master.prefixlen}), e.g. 172.16.0.0/28")
        elif master is not None and (not any(master.subnet_of(n) for n in RFC1918) or master.overlaps(DOCKER_BRIDGE)):
            add("masterCidr", f"{master} must be a private (RFC 1918) /28 outside {DOCKER_BRIDGE}, which GKE keeps "
                "for the Docker bridge, e.g. 172.16.0.0/28")
        # Every node at once, and the one more a surge upgrade adds.
        nodes = sum(p.max_nodes for p in config.node_pools) + 1
        if (pods := networks.get("podsCidr")) is not None:
            room = pods.num_addresses // 2 ** (32 - GKE_POD_RANGE_PER_NODE_PREFIX)
            if room < nodes:
                want = GKE_POD_RANGE_PER_NODE_PREFIX - (nodes - 1).bit_length()
                add("podsCidr", f"{pods} holds the pods of {room} nodes (GKE takes a /{GKE_POD_RANGE_PER_NODE_PREFIX} "
                    f"per node for its 110 pods); the node pools' maxNodes add up to {nodes - 1}, and an upgrade "
                    f"adds one: use a /{want} or larger")
        if (subnet := networks.get("subnetCidr")) is not None and subnet.num_addresses - 4 < nodes:
            add("subnetCidr", f"{subnet} has {subnet.num_addresses - 4} usable addresses (Google Cloud reserves 4), "
                f"fewer than the {nodes} nodes the pools may reach with an upgrade's surge node; use a "
                f"/{32 - (nodes + 3).bit_length()} or larger")
    return out


def _cidr_problem(cidr: str) -> str | None:
    try:
        ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        try:
            network = ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            return f"{cidr!r} is not a valid IPv4 range ({exc}), e.g. '10.0.0.0/16'"
        return f"{cidr!r} has bits set after its /{network.prefixlen}: the range that holds it is {network}"
    return None


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()

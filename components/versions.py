"""Every pinned version of software NeuroDock installs: one place to read, review and bump.

Images are pinned by tag, and by digest where we have verified one; charts by exact version. A tag NeuroDock
pins goes through ``pinned``/``pinned_tag``: the digest lock (``data/image-digests.json``, filled by
``python -m components.images lock`` where a registry is reachable) adds the tag's digest, so a registry that
moves the tag cannot change what runs. With an image absent from the lock the reference stays the tag alone.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from pathlib import Path

from components.charts import ChartRef, CrdBundle

IMAGE_LOCK_FILE = Path(__file__).parent / "data" / "image-digests.json"
"""The digest lock: ``{"<image>:<tag>": {"digest": "sha256:<64 hex>", "resolved": "YYYY-MM-DD"}}``."""
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
"""The digests the lock holds (OCI image-spec ``descriptor.md``: the sha256 algorithm, 64 lowercase hex)."""
_LOCKABLE: list[str] = []


@functools.cache
def image_lock() -> dict[str, str]:
    """The lock's digests by image reference (tag form). A malformed lock is an error, not an empty lock: a
    silently dropped digest would deploy by tag again."""
    raw = json.loads(IMAGE_LOCK_FILE.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{IMAGE_LOCK_FILE}: expected an object of image references; "
                         "regenerate it with `python -m components.images lock`")
    for ref, entry in raw.items():
        if problem := lock_entry_shape_problem(ref, entry):
            raise ValueError(f"{IMAGE_LOCK_FILE}: {ref!r} {problem}; regenerate it with "
                             "`python -m components.images lock`")
    return {ref: entry["digest"] for ref, entry in raw.items()}


def lock_entry_shape_problem(ref: str, entry: object) -> str | None:
    """Why a lock entry is malformed (None when it is not), as deploying and the lock command both judge it; the
    command also checks the reference's grammar (``components.images.lock_entry_problem``)."""
    if "@" in ref:
        return "is not a tag reference: it carries a digest"
    if not isinstance(entry, dict) or set(entry) != {"digest", "resolved"}:
        return 'needs exactly {"digest": "sha256:...", "resolved": "YYYY-MM-DD"}'
    if not isinstance(entry["digest"], str) or not DIGEST.fullmatch(entry["digest"]):
        return "has a digest that is not sha256:<64 lowercase hex>"
    try:
        datetime.date.fromisoformat(entry["resolved"])
    except (TypeError, ValueError):
        return "has a 'resolved' that is not a YYYY-MM-DD date"
    return None


def pinned(image: str) -> str:
    """``image`` (``name:tag``) with its locked digest appended (``name:tag@sha256:...``), or unchanged when
    the lock has none or it carries a digest already. Every tag NeuroDock pins goes through here (or
    ``pinned_tag``), so ``LOCKABLE_IMAGES`` names every image the lock command resolves."""
    if "@" in image:
        return image
    if image not in _LOCKABLE:
        _LOCKABLE.append(image)
    digest = image_lock().get(image)
    return f"{image}@{digest}" if digest else image


def pinned_tag(repository: str, tag: str) -> str:
    """The tag a chart's ``repository:tag`` image template takes, with the locked digest of
    ``repository:tag`` appended when there is one (``tag@sha256:...``): the template then renders
    ``repository:tag@sha256:...``, which the reference grammar allows (``name [":" tag] ["@" digest]``,
    distribution/reference ``reference.go``) and which pulls by the digest."""
    image = pinned(f"{repository}:{tag}")
    return tag + image[len(repository) + 1 + len(tag):]

# kind node images, by Kubernetes minor version (from the kind v0.29.0 release notes). kind
# needs the digest: the same tag is rebuilt for each kind release.
KIND_NODE_IMAGES: dict[str, str] = {
    "1.33": "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f",
}

# kube-prometheus-stack (Prometheus Operator, Prometheus, Alertmanager, Grafana, kube-state-metrics).
KUBE_PROMETHEUS_STACK = ChartRef("kube-prometheus-stack", "82.6.0", "https://prometheus-community.github.io/helm-charts")
KPS_CRD_UPGRADE_BUSYBOX_TAG = pinned_tag("docker.io/library/busybox", "1.37.0")
"""The image that unpacks kube-prometheus-stack's CRDs for its upgrade Job (the chart's default is `latest`)."""

# Model servers.
VLLM_IMAGE = pinned("vllm/vllm-openai:v0.28.0")
LLAMACPP_IMAGE = pinned("ghcr.io/ggml-org/llama.cpp:server-b11176")
# Image sizes for the time-to-ready estimate (docs/upstream.md): vLLM's CUDA image is quoted at
# 9-12 GB (compressed or not, the sources do not say); llama.cpp's CPU server image is a small
# fraction of a GB.
VLLM_IMAGE_GB = 12.0
LLAMACPP_IMAGE_GB = 0.2

# Cluster Autoscaler (EKS): the chart, and the image matching each Kubernetes minor version, as
# the autoscaler project requires. The chart's values take the tag alone; its template renders
# `image.repository:image.tag` (cluster-autoscaler 9.59.0 templates/deployment.yaml), so a locked digest rides on
# the tag. The repository is the chart's default (its values.yaml), which NeuroDock does not override.
CLUSTER_AUTOSCALER = ChartRef("cluster-autoscaler", "9.59.0", "https://kubernetes.github.io/autoscaler")
_CLUSTER_AUTOSCALER_REPOSITORY = "registry.k8s.io/autoscaling/cluster-autoscaler"
CLUSTER_AUTOSCALER_IMAGE_TAGS: dict[str, str] = {
    "1.33": pinned_tag(_CLUSTER_AUTOSCALER_REPOSITORY, "v1.33.5"),
    "1.34": pinned_tag(_CLUSTER_AUTOSCALER_REPOSITORY, "v1.34.4"),
    "1.35": pinned_tag(_CLUSTER_AUTOSCALER_REPOSITORY, "v1.35.1"),
}

# GPU node agents.
NVIDIA_DEVICE_PLUGIN_IMAGE = pinned("nvcr.io/nvidia/k8s-device-plugin:v0.17.1")
DCGM_EXPORTER_IMAGE = pinned("nvcr.io/nvidia/k8s/dcgm-exporter:4.6.1-4.8.4-distroless")

# Weight downloaders (init containers of model servers, mirror Jobs): object stores. Hugging Face
# sources use a vLLM image (huggingface_hub ships with it); the mirror Jobs' is pinned apart from the
# engine's, so an engine bump does not replace (and re-run) every model's mirror.
MIRROR_DOWNLOAD_IMAGE = pinned("vllm/vllm-openai:v0.28.0")
AWS_CLI_IMAGE = (
    "public.ecr.aws/aws-cli/aws-cli:2.27.22@sha256:1d5753647df57828762601f4d82790f3441060dbc8671cd01c52df05cfd3b2c7"
)
GCLOUD_IMAGE = pinned("gcr.io/google.com/cloudsdktool/google-cloud-cli:573.0.0-stable")

# KEDA: scales model servers on their queue (Prometheus scaler), to and from zero.
KEDA = ChartRef("keda", "2.17.2", "https://kedacore.github.io/charts")

# The gateway: Envoy Gateway (a Gateway API implementation; the chart brings the Gateway API
# CRDs), and the body-based router of the Gateway API Inference Extension, which copies the
# OpenAI request's `model` field into a header that HTTPRoutes match on.
ENVOY_GATEWAY = ChartRef("gateway-helm", "v1.8.3", "oci://docker.io/envoyproxy")
BODY_BASED_ROUTER_IMAGE = pinned("registry.k8s.io/gateway-api-inference-extension/bbr:v1.4.0")

# Inference-aware routing. Envoy AI Gateway's controller is Envoy Gateway's extension server for
# InferencePool backends (its CRDs chart carries its own API; InferencePool's CRD is the Gateway API
# Inference Extension's). Each model version's InferencePool gets llm-d's endpoint picker, from the
# llm-d router's chart, whose image tag is `main` in git: the release's tag is pinned here instead.
AI_GATEWAY_CRDS = ChartRef("ai-gateway-crds-helm", "v1.1.0", "oci://docker.io/envoyproxy")
AI_GATEWAY = ChartRef("ai-gateway-helm", "v1.1.0", "oci://docker.io/envoyproxy")
LLM_D_ROUTER = ChartRef("llm-d-router-gateway", "v0.10.0", "oci://ghcr.io/llm-d/charts")
ENDPOINT_PICKER_IMAGE = ("ghcr.io/llm-d", "llm-d-router-endpoint-picker",
                         pinned_tag("ghcr.io/llm-d/llm-d-router-endpoint-picker", "v0.10.0"))
"""Registry, repository and tag, as the chart's values take them. The chart has no digest value; its template
renders `registry/repository:tag` (llm-d-router-gateway v0.10.0 charts/router/templates/_deployment.yaml), so a
locked digest rides on the tag (`v0.10.0@sha256:...`)."""
INFERENCE_EXTENSION_CRDS = CrdBundle(
    "gateway-api-inference-extension", "v1.4.0",
    "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api-inference-extension/v1.4.0/config/crd/bases",
    ("inference.networking.k8s.io_inferencepools.yaml",))
"""The InferencePool CRD (v1). The picker's optional InferenceObjective and InferenceModelRewrite
are not installed: it skips them when absent (llm-d-router v0.10.0 pkg/epp/server/controller_config.go)."""

# The post-deployment smoke test: the Python standard library is all it needs.
SMOKE_TEST_IMAGE = pinned("docker.io/library/python:3.13.9-alpine3.22")
# The eval gate's runner (components/serving/eval_runner.py) is standard library only too: the same image.
# Its digest, as the smoke test's, comes from the lock once resolved (was a TODO of issue 32).
EVAL_RUNNER_IMAGE = SMOKE_TEST_IMAGE
# The canary rollback relay (components/monitoring/rollback_relay.py): standard library only, the same image.
ROLLBACK_RELAY_IMAGE = SMOKE_TEST_IMAGE

CHARTS: tuple[ChartRef, ...] = (KUBE_PROMETHEUS_STACK, KEDA, ENVOY_GATEWAY, CLUSTER_AUTOSCALER, AI_GATEWAY_CRDS,
                                AI_GATEWAY, LLM_D_ROUTER)
"""Every chart a stack may install: what `neurodock charts pull` fetches."""
CRD_BUNDLES: tuple[CrdBundle, ...] = (INFERENCE_EXTENSION_CRDS,)
"""CRDs released outside charts, fetched with them."""
LOCKABLE_IMAGES: tuple[str, ...] = tuple(_LOCKABLE)
"""Every tag-pinned image NeuroDock sets, as ``name:tag``: what ``python -m components.images lock`` resolves."""

"""Label, taint and annotation keys: one place for each, shared by every layer."""

from __future__ import annotations

import hashlib
import re

# Node labels NeuroDock sets on every pool, so workloads can select a pool or a GPU model.
POOL_LABEL = "neurodock.io/pool"
# The tag naming an EKS node group's pool (on the group and its launch template's instances and volumes).
POOL_TAG = "neurodock:pool"
ROLE_LABEL = "neurodock.io/role"
GPU_TYPE_LABEL = "neurodock.io/gpu-type"
GPU_COUNT_LABEL = "neurodock.io/gpu-count"

# The taint every GPU pool carries, so only pods that ask for GPUs land there. It is the key
# the NVIDIA device plugin and GKE use, so their tolerations match without extra config.
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "present"
GPU_TAINT_EFFECT = "NoSchedule"

# The version of a model a model server runs: stable, canary or shadow. Its scrape copies it into
# the `variant` label of every metric.
VARIANT_LABEL = "neurodock.io/variant"

# The served model name a model server's pods serve, as a label value (``model_label_value``): every version
# of a model (stable, canary, shadow) carries the same one.
MODEL_LABEL = "neurodock.io/model"

# The model (its stack name) whose route may answer from these pods: its stable and canary versions' pods carry
# it, a shadow's do not (its answers never reach a client). A canary's InferencePool selects it, so that its
# picker can fall back to the stable replicas (infra/routing.py).
ROUTE_LABEL = "neurodock.io/route"

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
"""A Kubernetes label value: at most 63 of ``[-A-Za-z0-9_.]``, beginning and ending with an alphanumeric
(apimachinery pkg/util/validation/validation.go, ``IsValidLabelValue``)."""


def model_label_value(served_name: str) -> str:
    """``MODEL_LABEL``'s value for ``served_name``: the name with ``/`` as ``_``, cut to 63, where that is a valid
    label value (what earlier releases set, so their pods are not replaced); otherwise its other characters
    (``:``) as ``_``, cut to 54 and ended by 8 hex digits of the name's digest, so that it is valid and still
    tells models apart. The config refuses two models whose values collide."""
    plain = served_name.replace("/", "_")
    if _LABEL_VALUE.match(plain[:63]):
        return plain[:63]
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "_", plain)[:54].strip("-_.")
    return f"{cleaned}-{hashlib.sha256(served_name.encode()).hexdigest()[:8]}".lstrip("-")

# Recommended Kubernetes labels on objects NeuroDock creates.
PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"

# Pod Security Admission namespace labels.
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
PSA_ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
PSA_AUDIT = "pod-security.kubernetes.io/audit"
PSA_WARN = "pod-security.kubernetes.io/warn"

# Set to "false" on nodes of GPU pools that have no GPU behind them (kind on a laptop), so GPU
# node agents (device plugin, DCGM exporter) are not scheduled there.
GPU_BACKED_LABEL = "neurodock.io/gpu-backed"

# Grafana's dashboard sidecar loads ConfigMaps carrying this label.
GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"

"""Label, taint and annotation keys: one place for each, shared by every layer."""

from __future__ import annotations

# Node labels NeuroDock sets on every pool, so workloads can select a pool or a GPU model.
POOL_LABEL = "neurodock.io/pool"
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

"""The configuration package: one module per concern, every public name of the single module it replaced
still importable from ``infra.config`` (three renamed so that one name means one thing), and the chart
cache free of the plan engine it serves."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import infra.config
from infra.plan.stackfile import REPO_ROOT

PUBLIC_NAMES = (
    "AWS_REGION_PATTERN", "AWS_TAG_CHARACTERS", "AlertInterval", "AlertThresholds", "Alerting", "AnyReceiver",
    "AwsRegion", "Canary", "Cidr", "Cloud", "ConfigError", "DOCKER_BRIDGE", "Deploy", "Duration", "EksCloud",
    "Email", "EmailReceiver", "EndpointAccess", "EngineArgs", "ExistingVpc", "Fraction", "GCP_REGION_PATTERN",
    "GKE_POD_RANGE_PER_NODE_PREFIX", "GPU_MEMORY_ALERT_HEADROOM", "Gateway", "GcpProject", "GcpRegion",
    "GgufFile", "GkeCloud", "GkeEndpointAccess", "GpuSharing", "GpuSpec", "HttpUrl", "KUBELET_LABELS",
    "KindCloud", "KubernetesVersion", "LABEL_NAME", "LABEL_PREFIX", "MANAGED_ENGINE_FLAGS",
    "MAX_DEFAULT_DRAIN_S", "MAX_EKS_POOL_LABELS", "MAX_USER_TAGS", "Model", "ModelArchitecture", "ModelSpec",
    "ModelVersion", "Monitoring", "Name", "NodePool", "PATTERN_HINTS", "PLAIN_KEY", "PagerDutyReceiver",
    "Problem", "RESERVED_TAGS", "RFC1918", "Readiness", "Receiver", "Recurrence", "Revision", "RoleArn",
    "Rollout", "SECRET_HOMES", "SECRET_KEYS", "ServedName", "Severity", "Shadow", "SlackChannel",
    "SlackReceiver", "Slo", "SmtpHost", "StackConfig", "SubnetId", "Throughput", "Timestamp", "Token",
    "VARIANTS", "Variant", "VpcId", "WebhookReceiver", "WeightsCache", "WeightsUri", "config_warnings",
    "decode", "device_memory_gib", "gcp_label_key", "gcp_labels", "gpu_devices_per_node", "key_path",
    "mirrored", "missing_receiver_credentials", "model_architecture", "on_volume", "parse_config", "pattern",
    "plaintext_secret_problems", "receiver_secret_problems", "replica_size", "structural_problems"
)
"""What ``infra/config.py`` defined before it became a package."""
RENAMED = {"NAMESPACE": "CONFIG_NAMESPACE", "Route": "AlertRoute", "MaintenanceWindow": "GkeMaintenanceWindow"}
"""The Pulumi config namespace is not a Kubernetes namespace, an alert route is neither a gateway's nor a served
model's, and GKE's maintenance window in the config is not the cluster component's (STYLE.md #25)."""
MAX_MODULE_LINES = 550


@pytest.mark.parametrize("name", [*PUBLIC_NAMES, *RENAMED.values()])
def test_every_public_name_is_importable_from_the_package(name):
    assert hasattr(infra.config, name), name


@pytest.mark.parametrize("old", RENAMED)
def test_a_renamed_name_is_gone_so_it_cannot_mean_two_things(old):
    assert not hasattr(infra.config, old)


def test_each_module_owns_one_concern_and_stays_readable():
    modules = sorted((REPO_ROOT / "infra" / "config").glob("*.py"))
    assert {m.stem for m in modules} >= {"cloud", "pools", "serving", "monitoring", "gateway", "deploy", "stack"}
    for module in modules:
        lines = len(module.read_text().splitlines())
        assert lines <= MAX_MODULE_LINES, f"{module.name} has {lines} lines"
        # Each public name of a module is exported once, by that module.
        imported = importlib.import_module(f"infra.config.{module.stem}")
        for name in getattr(imported, "__all__", []):
            assert getattr(infra.config, name) is getattr(imported, name), name


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


def test_the_chart_cache_does_not_import_the_plan_engine():
    # infra.plan.helm renders a plan's releases with infra.charts; the reverse would be an import circle.
    assert not any(m.startswith("infra.plan") for m in imports_of(REPO_ROOT / "infra" / "charts.py"))
    assert "infra.charts" in imports_of(REPO_ROOT / "infra" / "plan" / "helm.py")

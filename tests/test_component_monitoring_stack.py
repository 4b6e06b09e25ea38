"""MonitoringStack built alone: its namespace, Grafana's generated password, the dashboards and the
kube-prometheus-stack release from minimal Args, and the InputPropertiesError of a volume too small."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.charts import ChartSource
from components.monitoring.stack import Alerting, MonitoringStack, MonitoringStackArgs, Platform
from components.versions import KUBE_PROMETHEUS_STACK
from tests.test_component_harness import build, input_errors, load

ARGS = MonitoringStackArgs(chart=ChartSource(KUBE_PROMETHEUS_STACK), platform=Platform.KIND, storage_class="standard",
                           retention="15d", storage_gib=50, grafana=True, alerting=Alerting(repeat_interval="4h"))


@pytest.fixture(scope="module")
def _provider_modules() -> None:
    load("pulumi_kubernetes.helm.v3", "pulumi_random")


@pytest.mark.usefixtures("_provider_modules")
def test_minimal_args_build_the_release_grafana_password_and_dashboards():
    built = build(lambda: MonitoringStack("monitoring", ARGS))
    assert built.resources[0].type == "neurodock:monitoring:MonitoringStack"
    assert built.types == {"kubernetes:core/v1:Namespace", "random:index/randomPassword:RandomPassword",
                           "kubernetes:core/v1:Secret", "kubernetes:core/v1:ConfigMap", "kubernetes:helm.sh/v3:Release"}
    [release] = built.of_type("kubernetes:helm.sh/v3:Release")
    assert release.inputs["values"]["prometheus"]["prometheusSpec"]["retention"] == "15d"


def test_a_volume_smaller_than_a_gib_is_refused():
    assert input_errors(lambda: MonitoringStack("monitoring", replace(ARGS, storage_gib=0))) == [
        ("storage_gib", "MonitoringStackArgs.storage_gib must be at least 1")]

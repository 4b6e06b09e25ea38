"""Alertmanager: the configuration the monitoring chart renders from a stack's ``monitoring.alerting``
is valid for Alertmanager (``amtool check-config``) and routes NeuroDock's alerts where the stack says
(``amtool config routes test``); receivers' credentials stay out of it.

amtool comes from Debian's ``prometheus-alertmanager`` package, which ``.ci/run`` installs; the tests
skip without it locally and fail under CI. Debian's amtool (0.25) is older than the Alertmanager the
chart runs (0.31.1), so a configuration it accepts uses only settings both know.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from neurodock_policies import alerts_reach_a_receiver, wiring
from neurodock_policies.support import PRODUCTION_ENVIRONMENTS

import infra.plan
from components.monitoring.alertmanager import SECRET_NAME, SECRETS_DIR
from infra.check import policy_resources
from infra.config import ConfigError, parse_config
from infra.plan.engine import Plan
from infra.secrets import StackSecrets
from tests.conftest import SHIPPED_STACKS, plan_with, stack_document

AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None and not os.environ.get("CI"),
    reason="amtool not installed (Debian package 'prometheus-alertmanager'); .ci/run installs it",
)
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def rendered_config(plan: Plan) -> dict:
    """alertmanager.yaml of the Secret the monitoring chart renders."""
    [secret] = [o.manifest for o in plan.chart_objects
                if o.kind == "Secret" and "alertmanager.yaml" in (o.manifest.get("data") or {})]
    return yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))


def amtool(*args: str, config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    if AMTOOL is None:
        pytest.fail("amtool is required under CI (install Debian's 'prometheus-alertmanager' package)")
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([AMTOOL, *args, f"--config.file={path}"] if args[0] == "config" else
                          [AMTOOL, *args, str(path)], capture_output=True, text=True, check=False)


def routes(config: dict, tmp_path: Path, **labels: str) -> list[str]:
    """The receivers amtool resolves an alert with these labels to."""
    result = amtool("config", "routes", "test", *(f"{k}={v}" for k, v in labels.items()),
                    config=config, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(",")


@needs_amtool
@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_amtool_accepts_each_stacks_rendered_config(shipped_plans, stack, tmp_path):
    result = amtool("check-config", config=rendered_config(shipped_plans[stack]), tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
def test_amtool_accepts_every_receiver_type(write_stack, tmp_path):
    def every_type(config):
        config["neurodock:monitoring"]["alerting"]["receivers"] += [
            {"name": "ops-mail", "type": "email", "to": ["ops@example.com", "ml@example.com"],
             "from": "alerts@example.com", "smarthost": "smtp.example.com:587", "authUsername": "alerts"},
            {"name": "relay", "type": "email", "to": ["ops@example.com"], "from": "alerts@example.com",
             "smarthost": "smtp-relay.example.com:25", "requireTls": False},
            {"name": "hook", "type": "webhook", "url": "https://alerts.example.com/hook", "bearerToken": True},
            {"name": "open-hook", "type": "webhook", "url": "http://router.ops.svc:9095/", "sendResolved": False}]

    config = rendered_config(plan_with(write_stack, "prod", every_type))
    kinds = {k for r in config["receivers"] for k in r if k.endswith("_configs")}
    assert kinds == {"pagerduty_configs", "slack_configs", "email_configs", "webhook_configs"}
    result = amtool("check-config", config=config, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    hook = next(r for r in config["receivers"] if r["name"] == "hook")["webhook_configs"][0]
    assert hook["http_config"]["authorization"]["credentials_file"] == f"{SECRETS_DIR}/hook"
    relay = next(r for r in config["receivers"] if r["name"] == "relay")["email_configs"][0]
    assert "auth_password_file" not in relay and relay["require_tls"] is False


@needs_amtool
def test_prod_pages_critical_alerts_and_sends_everything_to_the_channel(shipped_plans, tmp_path):
    config = rendered_config(shipped_plans["prod"])
    critical = {"alertname": "NeuroDockModelServerDown", "severity": "critical", "model": LLAMA_8B}
    assert routes(config, tmp_path, **critical) == ["oncall", "ml-alerts"]
    assert routes(config, tmp_path, alertname="NeuroDockKvCacheNearFull", severity="warning",
                  model=LLAMA_8B) == ["ml-alerts"]
    # The chart's dead man's switch notifies nobody here.
    assert routes(config, tmp_path, alertname="Watchdog", severity="none") == ["null"]
    # The policy's own reading of the tree agrees with Alertmanager's.
    assert wiring.receivers_for(config["route"], critical) == ["oncall", "ml-alerts"]


@needs_amtool
def test_routes_by_model_match_the_served_name_exactly(write_stack, tmp_path):
    def by_model(config):
        config["neurodock:monitoring"]["alerting"]["routes"] = [
            {"receiver": "oncall", "models": [LLAMA_8B]}]

    config = rendered_config(plan_with(write_stack, "prod", by_model))
    assert routes(config, tmp_path, alertname="X", severity="warning", model=LLAMA_8B) == ["oncall"]
    # The '.' of the served name is literal, not "any character".
    assert routes(config, tmp_path, alertname="X", severity="warning",
                  model="meta-llama/Llama-3x1-8B-Instruct") == ["ml-alerts"]
    assert routes(config, tmp_path, alertname="X", severity="warning",
                  model="meta-llama/Llama-3.3-70B-Instruct") == ["ml-alerts"]


@needs_amtool
def test_without_receivers_alerts_reach_nobody_and_the_plan_says_so(shipped_plans, tmp_path):
    plan = shipped_plans["dev"]
    config = rendered_config(plan)
    assert routes(config, tmp_path, alertname="NeuroDockModelServerDown", severity="critical") == ["null"]
    assert any("monitoring.alerting has no receivers" in w for w in plan.warnings)
    assert not any("no receivers" in w for w in shipped_plans["prod"].warnings)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_neurodock_alerts_reach_a_real_receiver(shipped_plans, stack):
    resources = policy_resources(shipped_plans[stack])
    assert wiring.neurodock_alerts(resources), "no NeuroDock alert to route"
    assert wiring.unrouted_alerts(resources) == []


def test_production_requires_a_receiver(write_stack):
    def no_receivers(config):
        del config["neurodock:monitoring"]["alerting"]

    resources = policy_resources(plan_with(write_stack, "prod", no_receivers))
    config = {"productionEnvironments": PRODUCTION_ENVIRONMENTS}
    [(_urn, message)] = alerts_reach_a_receiver.check(resources, config)
    assert "receiver 'null', which notifies nobody" in message and "NeuroDockModelServerDown" in message
    # The same stack outside production is left to the plan's warning.
    assert alerts_reach_a_receiver.check(resources, {"productionEnvironments": ["live"]}) == []


def test_policy_reads_the_release_values_when_nothing_is_rendered(shipped_plans):
    """Under `pulumi preview` CrossGuard sees the release, not the Secret the chart renders from it."""
    resources = [r for r in policy_resources(shipped_plans["prod"]) if not wiring.from_chart(r)]
    found = wiring.alertmanager_config(resources)
    assert found is not None and found[0].resource_type == "kubernetes:helm.sh/v3:Release"
    assert wiring.unrouted_alerts(resources) == []


def test_credentials_are_files_of_a_mounted_secret_never_in_the_config(write_stack):
    def with_credentials(config):
        config["neurodock:alertReceiverSecrets"] = {"secure": "v1:AAAABBBB"}

    plan = plan_with(write_stack, "prod", with_credentials)
    config = rendered_config(plan)
    files = [value for r in config["receivers"] for c in r.get("pagerduty_configs", []) + r.get("slack_configs", [])
             for key, value in c.items() if key.endswith("_file")]
    assert sorted(files) == [f"{SECRETS_DIR}/ml-alerts", f"{SECRETS_DIR}/oncall"]
    assert not any(k in c for r in config["receivers"] for c in r.get("slack_configs", []) for k in ("api_url",))
    [spec] = [o.manifest["spec"] for o in plan.chart_objects if o.kind == "Alertmanager"]
    assert spec["secrets"] == [SECRET_NAME]
    [secret] = [r for r in plan.manifests if r.manifest["kind"] == "Secret"
                and r.manifest["metadata"].get("name") == SECRET_NAME]
    assert secret.manifest["metadata"]["namespace"] == "monitoring"


def test_up_refuses_receivers_without_credentials_and_a_preview_warns(monkeypatch):
    from infra import program

    config = parse_config(stack_document("prod")["config"])
    secrets = StackSecrets(hf_token=None)
    monkeypatch.setattr(infra.plan, "_offline", False)
    monkeypatch.setattr("pulumi.runtime.is_dry_run", lambda: False)
    with pytest.raises(ConfigError, match=r"neurodock:alertReceiverSecrets: receivers ml-alerts, oncall need"):
        program._require_receiver_credentials(config, secrets)
    warned = []
    monkeypatch.setattr("pulumi.runtime.is_dry_run", lambda: True)
    monkeypatch.setattr("pulumi.log.warn", warned.append)
    program._require_receiver_credentials(config, secrets)
    assert warned and "`pulumi up` refuses to run without it" in warned[0]

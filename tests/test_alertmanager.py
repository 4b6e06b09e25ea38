"""Alertmanager: the configuration the monitoring chart renders from a stack's ``monitoring.alerting``
is valid for Alertmanager (``amtool check-config``) and routes NeuroDock's alerts where the stack says
(``amtool config routes test``); receivers' credentials stay out of it.

amtool comes from Debian's ``prometheus-alertmanager`` package, which ``.ci/run`` installs; the tests
skip without it locally and fail under CI. Debian's amtool (0.25) is older than the Alertmanager the
chart runs (0.31.1), so a configuration it accepts uses only settings both know, but one: the heartbeat's
webhook reads its URL from a file (``url_file``, Alertmanager 0.26+), which an older amtool is shown as a
``url`` (``for_amtool``); the tests check the ``url_file`` itself against Alertmanager 0.31.1's schema.
"""

from __future__ import annotations

import base64
import copy
import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from neurodock_policies import alerts_reach_a_receiver, wiring
from neurodock_policies.support import PRODUCTION_ENVIRONMENTS

import infra.plan
from components.monitoring.alertmanager import SECRET_NAME, SECRETS_DIR, WATCHDOG
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


URL_FILE_SINCE = (0, 26)
"""Alertmanager's webhook ``url_file`` (v0.26.0, CHANGELOG #3223; v0.31.1 ``config/notifiers.go:637-670``)."""
STAND_IN_URL = "https://url-file.invalid/"


@functools.cache
def amtool_version() -> tuple[int, int]:
    shown = subprocess.run([AMTOOL, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"version (\d+)\.(\d+)", shown.stdout + shown.stderr)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def for_amtool(config: dict) -> dict:
    """The configuration as this amtool can read it: before 0.26 it knows no webhook ``url_file``, so each is
    shown as a ``url`` of the same receiver (routing, what amtool tests here, never reads either)."""
    if amtool_version() >= URL_FILE_SINCE:
        return config
    config = copy.deepcopy(config)
    for receiver in config.get("receivers") or []:
        for hook in receiver.get("webhook_configs") or []:
            if hook.pop("url_file", None) is not None:
                hook["url"] = STAND_IN_URL + receiver["name"]
    return config


def amtool(*args: str, config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    if AMTOOL is None:
        pytest.fail("amtool is required under CI (install Debian's 'prometheus-alertmanager' package)")
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(for_amtool(config)))
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
    # The chart's dead man's switch goes to the heartbeat, and only there; its InfoInhibitor to nobody.
    assert routes(config, tmp_path, alertname="Watchdog", severity="none") == ["heartbeat"]
    assert routes(config, tmp_path, alertname="InfoInhibitor", severity="none") == ["null"]
    # A NeuroDock alert never reaches the heartbeat, whatever its severity.
    assert routes(config, tmp_path, alertname="NeuroDockGpuMetricsMissing", severity="critical") == [
        "oncall", "ml-alerts"]
    # The policy's own reading of the tree agrees with Alertmanager's.
    assert wiring.receivers_for(config["route"], critical) == ["oncall", "ml-alerts"]
    assert wiring.receivers_for(config["route"], {"alertname": "Watchdog", "severity": "none"}) == ["heartbeat"]


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
    [(_urn, message), (_, watchdog)] = alerts_reach_a_receiver.check(resources, config)
    assert "receiver 'null', which notifies nobody" in message and "NeuroDockModelServerDown" in message
    assert watchdog.startswith("Alertmanager routes the always-firing Watchdog to receiver 'null'")
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
    with pytest.raises(ConfigError,
                       match=r"neurodock:alertReceiverSecrets: receivers heartbeat, ml-alerts, oncall need"):
        program._require_receiver_credentials(config, secrets)
    warned = []
    monkeypatch.setattr("pulumi.runtime.is_dry_run", lambda: True)
    monkeypatch.setattr("pulumi.log.warn", warned.append)
    program._require_receiver_credentials(config, secrets)
    assert warned and "`pulumi up` refuses to run without it" in warned[0]


# ---------------------------------------------------------------------------------------------
# The dead man's switch
# ---------------------------------------------------------------------------------------------


def watchdog_route(config: dict) -> dict:
    [route] = [r for r in config["route"]["routes"] if f'alertname = "{WATCHDOG}"' in r.get("matchers", [])]
    return route


@pytest.mark.parametrize("stack", ["prod", "prod-dr"])
def test_production_hears_the_watchdog_every_minute_from_a_url_in_the_secret(shipped_plans, stack):
    """Alertmanager checks the repeat only at each group interval (v0.31.1 docs/configuration.md:264): both are
    the heartbeat's interval, where the root's 5m and 4h would ping a dead man's switch every 4 hours."""
    config = rendered_config(shipped_plans[stack])
    route = watchdog_route(config)
    assert config["route"]["routes"][0] == route  # before every other route
    assert (route["receiver"], route["group_interval"], route["repeat_interval"]) == ("heartbeat", "1m", "1m")
    assert config["route"]["repeat_interval"] == "4h"  # the rest unchanged
    [receiver] = [r for r in config["receivers"] if r["name"] == "heartbeat"]
    # The ping URL is the secret: a file of the mounted receivers' Secret, no URL and no placeholder in the config.
    assert receiver == {"name": "heartbeat", "webhook_configs": [
        {"send_resolved": False, "url_file": f"{SECRETS_DIR}/heartbeat"}]}
    assert "url" not in receiver["webhook_configs"][0]
    assert "hc-ping" not in yaml.safe_dump(config) and "example" not in str(receiver)


def test_the_heartbeats_url_is_an_entry_of_the_receivers_secret(write_stack):
    def with_credentials(config):
        config["neurodock:alertReceiverSecrets"] = {"secure": "v1:AAAABBBB"}

    plan = plan_with(write_stack, "prod", with_credentials)
    [secret] = [r for r in plan.manifests if r.manifest["kind"] == "Secret"
                and r.manifest["metadata"].get("name") == SECRET_NAME]
    [spec] = [o.manifest["spec"] for o in plan.chart_objects if o.kind == "Alertmanager"]
    assert spec["secrets"] == [SECRET_NAME]
    assert secret.manifest["metadata"]["namespace"] == "monitoring"


@needs_amtool
@pytest.mark.parametrize("stack", ["prod", "prod-dr"])
def test_amtool_routes_the_charts_watchdog_to_the_heartbeat(shipped_plans, stack, tmp_path):
    """The Watchdog the chart renders (promtool: it fires, with these labels) is routed by Alertmanager's own
    reading of the tree (amtool) to the heartbeat; every other route is as before."""
    plan = shipped_plans[stack]
    [watchdog] = [r for o in plan.chart_objects if o.kind == "PrometheusRule" for g in o.manifest["spec"]["groups"]
                  for r in g["rules"] if r.get("alert") == WATCHDOG]
    assert watchdog["expr"] == "vector(1)" and "for" not in watchdog
    if shutil.which("promtool"):
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "general", "rules": [watchdog]}]}))
        (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": [{
            "interval": "1m", "alert_rule_test": [{"eval_time": "1m", "alertname": WATCHDOG, "exp_alerts": [
                {"exp_labels": {"severity": "none"}, "exp_annotations": watchdog["annotations"]}]}]}]}))
        result = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True,
                                text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    config = rendered_config(plan)
    assert routes(config, tmp_path, alertname=WATCHDOG, **watchdog["labels"]) == ["heartbeat"]
    assert routes(config, tmp_path, alertname="NeuroDockErrorBudgetBurn", severity="critical",
                  model=LLAMA_8B) == ["oncall", "ml-alerts"]
    assert routes(config, tmp_path, alertname="NeuroDockGpuMemoryNearFull", severity="warning") == ["ml-alerts"]


def alert_label_sets(plan: Plan) -> list[dict[str, str]]:
    """Every alert the stack's Prometheus evaluates, the chart's and NeuroDock's, as the labels its rule gives it
    (once per distinct set)."""
    manifests = [o.manifest for o in plan.chart_objects if o.kind == "PrometheusRule"]
    manifests += [r.manifest for r in plan.manifests if r.manifest["kind"] == "PrometheusRule"]
    found: dict[tuple, dict[str, str]] = {}
    for manifest in manifests:
        for group in manifest["spec"]["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    labels = {"alertname": rule["alert"], **{k: str(v) for k, v in (rule.get("labels") or {}).items()}}
                    found.setdefault(tuple(sorted(labels.items())), labels)
    return list(found.values())


@needs_amtool
def test_amtool_the_heartbeat_reroutes_the_watchdog_and_nothing_else(shipped_plans, write_stack, tmp_path):
    """Every alert prod's Prometheus can raise (the chart's 130-odd and NeuroDock's, each with its rule's labels)
    reaches the same receivers with and without the heartbeat, as Alertmanager's own routing reads both trees
    (amtool); only the Watchdog moves, from the chart's ``null`` to the heartbeat."""

    def no_heartbeat(config):
        del config["neurodock:monitoring"]["alerting"]["heartbeat"]

    trees = {"with": rendered_config(shipped_plans["prod"]),
             "without": rendered_config(plan_with(write_stack, "prod", no_heartbeat))}
    files = {}
    for name, config in trees.items():
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(for_amtool(config)))
    alerts = alert_label_sets(shipped_plans["prod"])
    names = {a["alertname"] for a in alerts}
    assert {WATCHDOG, "NeuroDockErrorBudgetBurn", "NeuroDockGpuMetricsMissing", "KubePodCrashLooping"} <= names
    assert {a.get("severity") for a in alerts} >= {"critical", "warning", "info", "none"}

    def receivers(tree: str, labels: dict[str, str]) -> list[str]:
        result = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={files[tree]}",
                                 *(f"{k}={v}" for k, v in labels.items())], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().split(",")

    moved = {}
    for labels in alerts:
        before, after = receivers("without", labels), receivers("with", labels)
        if before != after:
            moved[labels["alertname"]] = (before, after)
    assert moved == {WATCHDOG: (["null"], ["heartbeat"])}
    # A control: the comparison sees routing, not only the Watchdog's (a page still pages, a ticket does not).
    page = next(a for a in alerts if a["alertname"] == "NeuroDockErrorBudgetBurn" and a["severity"] == "critical")
    assert receivers("with", page) == ["oncall", "ml-alerts"]
    assert receivers("with", {**page, "severity": "warning"}) == ["ml-alerts"]


WEBHOOK_FIELDS = frozenset({"send_resolved", "http_config", "url", "url_file", "max_alerts", "timeout"})
"""The fields of Alertmanager v0.31.1's ``webhook_configs`` (``config/notifiers.go``: ``NotifierConfig`` :228-230,
``WebhookConfig`` :637-654), which it reads strictly: an unknown field fails the whole configuration. Its
``UnmarshalYAML`` (:657-670) requires exactly one of ``url`` and ``url_file``."""


@pytest.mark.parametrize("stack", ["prod", "prod-dr"])
def test_the_heartbeats_webhook_is_one_the_charts_alertmanager_reads(shipped_plans, stack):
    """What Debian's amtool 0.25 cannot check (it knows no ``url_file``): the webhook is valid for the Alertmanager
    the chart runs, which must be one that reads ``url_file`` (0.26+)."""
    plan = shipped_plans[stack]
    [spec] = [o.manifest["spec"] for o in plan.chart_objects if o.kind == "Alertmanager"]
    found = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", spec["version"])
    assert found is not None and (int(found.group(1)), int(found.group(2))) >= URL_FILE_SINCE, spec["version"]
    assert spec["image"].endswith(f":{spec['version']}")
    hooks = [hook for r in rendered_config(plan)["receivers"] for hook in r.get("webhook_configs") or []]
    assert hooks, "no webhook: the heartbeat is missing"
    for hook in hooks:
        assert set(hook) <= WEBHOOK_FIELDS, set(hook) - WEBHOOK_FIELDS
        assert ("url" in hook) != ("url_file" in hook), hook


def test_the_amtool_stand_in_changes_nothing_but_the_url_file():
    config = {"receivers": [{"name": "heartbeat", "webhook_configs": [{"send_resolved": False, "url_file": "/x"}]},
                            {"name": "hook", "webhook_configs": [{"url": "https://hooks.example.com/"}]}],
              "route": {"receiver": "hook"}}
    if AMTOOL is None or amtool_version() >= URL_FILE_SINCE:
        pytest.skip("this amtool reads url_file itself")
    shown = for_amtool(config)
    assert shown["receivers"][0]["webhook_configs"] == [{"send_resolved": False, "url": STAND_IN_URL + "heartbeat"}]
    assert shown["receivers"][1] == config["receivers"][1] and shown["route"] == config["route"]
    assert config["receivers"][0]["webhook_configs"][0]["url_file"] == "/x"  # the rendered one is untouched


def _preview_resources(shipped_plans) -> list:
    """prod as CrossGuard sees it under `pulumi preview`: the monitoring release's values, no rendered Secret."""
    return [copy.deepcopy(r) for r in policy_resources(shipped_plans["prod"]) if not wiring.from_chart(r)]


def _release_route(resources) -> dict:
    found = wiring.alertmanager_config(resources)
    assert found is not None and found[0].resource_type == "kubernetes:helm.sh/v3:Release"
    return found[0].props["values"]["alertmanager"]["config"]["route"]


def test_production_requires_a_heartbeat_that_hears_the_watchdog_often(shipped_plans):
    config = {"productionEnvironments": PRODUCTION_ENVIRONMENTS}
    resources = _preview_resources(shipped_plans)
    assert alerts_reach_a_receiver.check(resources, config) == []
    # One field changed: the Watchdog's route repeats it every 4 hours.
    watchdog_route({"route": _release_route(resources)})["repeat_interval"] = "4h"
    [(_urn, message)] = alerts_reach_a_receiver.check(resources, config)
    assert message.startswith("Alertmanager sends the Watchdog to 'heartbeat' only every 240 minutes")
    # A repeat shorter than the group interval waits for it: 1m every 2h is every 2 hours.
    route = watchdog_route({"route": _release_route(resources)})
    route |= {"repeat_interval": "1m", "group_interval": "2h"}
    [(_urn, message)] = alerts_reach_a_receiver.check(resources, config)
    assert "only every 120 minutes" in message


def test_a_stack_without_a_heartbeat_is_refused_in_production_only(write_stack):
    def no_heartbeat(config):
        del config["neurodock:monitoring"]["alerting"]["heartbeat"]

    resources = policy_resources(plan_with(write_stack, "prod", no_heartbeat))
    [(_urn, message)] = alerts_reach_a_receiver.check(resources, {"productionEnvironments": PRODUCTION_ENVIRONMENTS})
    assert message == (
        "Alertmanager routes the always-firing Watchdog to receiver 'null', which notifies nobody, so nothing outside "
        "the cluster notices when Prometheus or Alertmanager stop; set monitoring.alerting.heartbeat (a ping URL of "
        "healthchecks.io, Dead Man's Snitch or the like, in neurodock:alertReceiverSecrets).")
    assert alerts_reach_a_receiver.check(resources, {"productionEnvironments": ["live"]}) == []


@pytest.mark.parametrize(("heartbeat", "problem"), [
    ({"name": "oncall"}, "neurodock:monitoring.alerting.heartbeat.name: receivers[0] is also named 'oncall'"),
    ({"interval": "2h"}, "neurodock:monitoring.alerting.heartbeat.interval: must be a whole number of minutes from "
                         "1 to 60"),
])
def test_a_heartbeat_is_checked_before_anything_is_created(heartbeat, problem):
    document = stack_document("prod")
    document["config"]["neurodock:monitoring"]["alerting"]["heartbeat"] = heartbeat
    with pytest.raises(ConfigError) as raised:
        parse_config(document["config"])
    assert problem in str(raised.value)

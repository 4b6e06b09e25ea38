"""Automatic rollback, hop by hop: the canary burn-rate alert (the same SLIs as ``rollout analyze``, fires on a
breach, silent on a healthy canary: ``promtool test rules``), Alertmanager's route to the relay (``amtool``), the
relay turning Alertmanager's message into GitHub's repository dispatch (against a fake GitHub on loopback), and the
rollback workflow."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from components.gateway.routes import cluster_name
from components.monitoring import metrics as m
from components.monitoring import rollback_relay
from components.monitoring.alertmanager import CanaryRollback, Receiver, alertmanager_config
from components.monitoring.alerts import (
    CANARY_ALERT,
    CANARY_FALLBACK_ALERT,
    ROLLBACK_LABEL,
    STACK_MODEL_LABEL,
    canary_rules,
    version_slis,
)
from components.monitoring.recording import SLO_WINDOWS, slo_requests
from tests.conftest import alert_rule
from tests.test_alertmanager import amtool, needs_amtool, routes
from tests.test_alerts import MIN_REQUESTS, PROMTOOL, SLOW, groups, needs_promtool
from tests.test_ci_workflows import WORKFLOWS, steps, uses, workflow

CANARY = replace(SLOW, canary=True)
RELAY = CanaryRollback(receiver="canary-rollback", url="http://rollback-relay.neurodock-monitoring:8080/",
                       label=ROLLBACK_LABEL)


# --- the alert ---------------------------------------------------------------------------------------------------

def test_the_canary_alert_reads_the_canarys_slis_from_their_one_home():
    rules = canary_rules([CANARY], MIN_REQUESTS)
    alerts = [r for r in rules if r.get("alert") == CANARY_ALERT]
    assert {a["labels"]["slo"] for a in alerts} == {s.sli.labels["slo"] for s in version_slis(CANARY, "canary")}
    for a in alerts:
        assert a["alert"] == CANARY_ALERT and "for" not in a
        assert a["labels"][ROLLBACK_LABEL[0]] == ROLLBACK_LABEL[1] and a["labels"][STACK_MODEL_LABEL] == "slow"
        assert 'variant="canary"' in a["expr"] and 'variant="stable"' not in a["expr"]
    # The records are the PromQL of version_slis for the canary, written once per window.
    by_slo = {s.sli.labels["slo"]: s.sli for s in version_slis(CANARY, "canary")}
    requests = [r for r in rules if r.get("record") == slo_requests("1h").name]
    assert {r["labels"]["slo"]: r["expr"] for r in requests} == {k: s.total("1h") for k, s in by_slo.items()}
    assert len([r for r in rules if "record" in r]) == 2 * len(SLO_WINDOWS) * len(by_slo)
    assert f"rule/{1}" in by_slo["availability"].total("1h")


def test_no_canary_or_no_route_no_rollback_alert():
    assert canary_rules([SLOW], MIN_REQUESTS) == []
    assert canary_rules([replace(CANARY, route=None)], MIN_REQUESTS) == []
    assert not any(r.get("alert") == CANARY_ALERT for g in groups() for r in g["rules"])
    assert any(r.get("alert") == CANARY_ALERT for g in groups((CANARY,)) for r in g["rules"])


def test_the_shipped_prod_stack_alerts_on_its_canary(shipped_plans):
    rule = alert_rule(shipped_plans["prod"])
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if r.get("alert") == CANARY_ALERT]
    with_canary = {mdl.name for mdl in shipped_plans["prod"].config.models if mdl.canary}
    assert with_canary and {a["labels"][STACK_MODEL_LABEL] for a in alerts} == with_canary


def _promtool_test(tmp_path: Path, error_per_min: int, expect_firing: bool) -> subprocess.CompletedProcess:
    rules = canary_rules([CANARY], MIN_REQUESTS)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "canary", "rules": rules}]}))
    cluster = cluster_name(CANARY.namespace, CANARY.route, 1)
    series = m.ENVOY_UPSTREAM_RQ_XX.name
    [alert] = [r for r in rules if r.get("alert") == CANARY_ALERT and r["labels"]["slo"] == "availability"]
    expected = [{"exp_labels": {**alert["labels"], "model": CANARY.served_name, "variant": "canary"},
                 "exp_annotations": alert["annotations"]}] if expect_firing else []
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": f'{series}{{envoy_cluster_name="{cluster}", envoy_response_code_class="2"}}',
             "values": f"0+{100 - error_per_min}x90"},
            {"series": f'{series}{{envoy_cluster_name="{cluster}", envoy_response_code_class="5"}}',
             "values": f"0+{error_per_min}x90"},
        ],
        "alert_rule_test": [{"eval_time": "70m", "alertname": CANARY_ALERT, "exp_alerts": expected}],
    }]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    return subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "test.yaml")], capture_output=True, text=True,
                          check=False)


@needs_promtool
def test_promtool_fires_on_a_breaching_canary_and_not_on_a_healthy_one(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    # Half its requests fail: far above 14.4 x the 1% budget. One in a thousand: within it.
    bad = _promtool_test(tmp_path / "bad", 50, expect_firing=True)
    assert bad.returncode == 0, bad.stdout + bad.stderr
    good = _promtool_test(tmp_path / "good", 0, expect_firing=False)
    assert good.returncode == 0, good.stdout + good.stderr
    # And the check can fail: expecting silence from the breaching canary is refused.
    (tmp_path / "wrong").mkdir()
    assert _promtool_test(tmp_path / "wrong", 50, expect_firing=False).returncode != 0


def _fallback_test(tmp_path: Path, ready: str, eval_time: str, expect_firing: bool,
                   extra: tuple[dict, ...] = ()) -> subprocess.CompletedProcess:
    target = replace(CANARY, start_s=20 * 60)
    rules = canary_rules([target], MIN_REQUESTS)
    [alert] = [r for r in rules if r.get("alert") == CANARY_FALLBACK_ALERT]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "canary", "rules": [alert]}]}))
    pod = f"{target.route}-canary-server-5d8f7c2a-7b9c6d5f4-x2k8q"
    expected = [{"exp_labels": alert["labels"], "exp_annotations": alert["annotations"]}] if expect_firing else []
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": f'{m.KSM_POD_READY.name}{{namespace="{target.namespace}", pod="{pod}", uid="u1", '
                       'condition="true"}', "values": ready},
            # The stable replica, ready all along, is not the canary's.
            {"series": f'{m.KSM_POD_READY.name}{{namespace="{target.namespace}", pod="{target.route}-server-abc-'
                       'def-ghi", uid="u2", condition="true"}', "values": "1x60"},
            *({**e, "series": e["series"].format(ns=target.namespace, pod=pod)} for e in extra),
        ],
        "alert_rule_test": [{"eval_time": eval_time, "alertname": CANARY_FALLBACK_ALERT, "exp_alerts": expected}],
    }]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    return subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "test.yaml")], capture_output=True, text=True,
                          check=False)


def test_the_fallback_alert_waits_a_start_and_names_the_model():
    [alert] = [r for r in canary_rules([replace(CANARY, start_s=20 * 60)], MIN_REQUESTS)
               if r.get("alert") == CANARY_FALLBACK_ALERT]
    assert alert["for"] == "20m" and alert["labels"][STACK_MODEL_LABEL] == "slow"
    [short] = [r for r in canary_rules([replace(CANARY, start_s=60)], MIN_REQUESTS)
               if r.get("alert") == CANARY_FALLBACK_ALERT]
    assert short["for"] == "15m"
    assert ROLLBACK_LABEL[0] not in alert["labels"]  # the canary is judged by people, not rolled back


@needs_promtool
@pytest.mark.parametrize(("case", "ready", "eval_time", "firing"), [
    ("down", "1x9 0x50", "40m", True),       # not ready from minute 10: fires after its 20 minutes
    ("starting", "1x9 0x50", "25m", False),  # not ready for 15 minutes: a start, no alert yet
    ("gone", "1x9 _x50", "40m", True),       # its pod gone altogether (no series): fires too
    ("ready", "1x59", "40m", False),
])
def test_promtool_the_fallback_alert_fires_only_on_a_canary_down_longer_than_a_start(tmp_path, case, ready,
                                                                                       eval_time, firing):
    result = _fallback_test(tmp_path, ready, eval_time, firing)
    assert result.returncode == 0, result.stdout + result.stderr
    # And the check can fail: the opposite expectation is refused.
    (tmp_path / "wrong").mkdir()
    assert _fallback_test(tmp_path / "wrong", ready, eval_time, not firing).returncode != 0


DELETING = {"series": f'{m.KSM_POD_DELETION.name}{{{{namespace="{{ns}}", pod="{{pod}}", uid="u1"}}}}',
            "values": "_x9 1765069200x50"}
NAMESAKE = {"series": f'{m.KSM_POD_READY.name}{{{{namespace="{{ns}}", pod="slow-canary-server-x-server-a1-b2-c3", '
                      'uid="u3", condition="true"}}', "values": "1x59"}


@needs_promtool
@pytest.mark.parametrize(("case", "extra", "firing"), [
    # Ready by its probe but being deleted from minute 10 (stuck in its drain): the picker already dropped it.
    ("terminating", (DELETING,), True),
    # A ready pod of another model whose name starts like the canary's Deployment does not count as the canary.
    ("namesake", (NAMESAKE,), True),
    ("control", (), False),
])
def test_promtool_the_fallback_alert_counts_only_the_canarys_own_live_pods(tmp_path, case, extra, firing):
    ready = "1x59" if case == "terminating" else ("1x59" if case == "control" else "0x59")
    result = _fallback_test(tmp_path, ready, "40m", firing, extra)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Alertmanager ------------------------------------------------------------------------------------------------

def _config(**kwargs) -> dict:
    receivers = [Receiver(name="oncall", kind="pagerduty", send_resolved=True),
                 Receiver(name="team", kind="slack", settings={"channel": "#llm"}, send_resolved=True)]
    from components.monitoring.alertmanager import AlertRoute

    return alertmanager_config(receivers, [AlertRoute(receiver="oncall", severities=("critical",), continue_=False)],
                               "team", "4h", canary_rollback=RELAY, **kwargs)


@needs_amtool
def test_amtool_sends_a_rollback_request_to_the_relay_and_on_to_people(tmp_path):
    config = _config()
    assert amtool("check-config", config=config, tmp_path=tmp_path).returncode == 0
    labels = {"alertname": CANARY_ALERT, ROLLBACK_LABEL[0]: ROLLBACK_LABEL[1], STACK_MODEL_LABEL: "slow",
              "severity": "warning", "model": "org/slow"}
    assert routes(config, tmp_path, **labels) == ["canary-rollback", "team"]
    # Without the label, nothing reaches the relay.
    assert "canary-rollback" not in routes(config, tmp_path, alertname="NeuroDockErrorBudgetBurn",
                                           severity="critical", model="org/slow")
    [receiver] = [r for r in config["receivers"] if r["name"] == "canary-rollback"]
    assert receiver["webhook_configs"][0]["url"] == RELAY.url
    [route] = [r for r in config["route"]["routes"] if r["receiver"] == "canary-rollback"]
    assert route["group_wait"] == "0s" and route["continue"] is True


@needs_amtool
def test_amtool_a_rollback_reaches_the_default_receiver_without_other_routes(tmp_path):
    config = alertmanager_config([Receiver(name="team", kind="slack", settings={"channel": "#llm"},
                                           send_resolved=True)], [], None, "4h", canary_rollback=RELAY)
    labels = {"alertname": CANARY_ALERT, ROLLBACK_LABEL[0]: ROLLBACK_LABEL[1], STACK_MODEL_LABEL: "slow"}
    assert routes(config, tmp_path, **labels) == ["canary-rollback", "team"]


# --- the relay ---------------------------------------------------------------------------------------------------

def _message(*alerts: dict) -> dict:
    """Alertmanager's webhook message (v0.31.1 notify/webhook/webhook.go Message; template.Data)."""
    return {"version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "canary-rollback", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}


def _alert(model: str, status: str = "firing", rollback: bool = True) -> dict:
    labels = {"alertname": CANARY_ALERT, STACK_MODEL_LABEL: model, "slo": "availability"}
    if rollback:
        labels[ROLLBACK_LABEL[0]] = ROLLBACK_LABEL[1]
    return {"status": status, "labels": labels, "annotations": {}, "startsAt": "2026-12-06T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0"}


def test_the_relays_labels_are_the_alerts():
    assert rollback_relay.ROLLBACK == ROLLBACK_LABEL and rollback_relay.STACK_MODEL == STACK_MODEL_LABEL


def test_one_dispatch_per_firing_model_and_none_for_resolved_or_unlabelled():
    bodies = rollback_relay.dispatches(_message(_alert("a"), _alert("a"), _alert("b", status="resolved"),
                                                _alert("c", rollback=False), _alert("d")), "prod")
    assert bodies == [{"event_type": "canary-rollback", "client_payload": {
        "stack": "prod", "model": m_, "alert": CANARY_ALERT, "slo": "availability"}} for m_ in ("a", "d")]
    assert all(1 <= len(b["event_type"]) <= 100 and len(b["client_payload"]) <= 10 for b in bodies)


@pytest.fixture
def fake_github():
    received: list[dict] = []
    answer = {"code": 204}

    class GitHub(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "auth": self.headers["Authorization"],
                             "accept": self.headers["Accept"], "body": body})
            self.send_response(answer["code"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), GitHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received, answer
    server.shutdown()


@pytest.fixture
def relay(fake_github, tmp_path, monkeypatch):
    api, received, answer = fake_github
    token = tmp_path / "github-token"
    token.write_text("ghp_test-token\n")
    monkeypatch.setattr(rollback_relay.Relay, "api", api)
    monkeypatch.setattr(rollback_relay.Relay, "repository", "neurodock/neurodock")
    monkeypatch.setattr(rollback_relay.Relay, "stack", "prod")
    monkeypatch.setattr(rollback_relay.Relay, "token_file", str(token))
    caller = tmp_path / "caller"
    caller.write_text(CALLER_SECRET + "\n")
    monkeypatch.setattr(rollback_relay.Relay, "caller_file", str(caller))
    server = ThreadingHTTPServer(("127.0.0.1", 0), rollback_relay.Relay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", received, answer
    server.shutdown()


CALLER_SECRET = "am-0123456789abcdef0123456789abcdef"
"""What Alertmanager sends the relay (its rollback receiver's http_config)."""


def _post(url: str, message: dict, caller: str | None = CALLER_SECRET) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if caller is not None:
        headers["Authorization"] = f"Bearer {caller}"
    request = urllib.request.Request(url, data=json.dumps(message).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_relay_sends_githubs_dispatch_with_the_token_from_its_file(relay):
    url, received, _ = relay
    status, text = _post(url, _message(_alert("llama-3-1-8b")))
    assert status == 200, text
    [call] = received
    assert call["path"] == "/repos/neurodock/neurodock/dispatches"
    assert call["auth"] == "Bearer ghp_test-token" and call["accept"] == "application/vnd.github+json"
    assert call["body"] == {"event_type": "canary-rollback", "client_payload": {
        "stack": "prod", "model": "llama-3-1-8b", "alert": CANARY_ALERT, "slo": "availability"}}


def test_only_alertmanager_s_secret_is_heard(relay):
    """The relay starts a rollback, a merge and a `pulumi up`: whatever the network lets through, a caller without the
    secret Alertmanager sends gets 401 and dispatches nothing."""
    url, received, _ = relay
    for caller in (None, "wrong", CALLER_SECRET + "x"):
        status, text = _post(url, _message(_alert("llama-3-1-8b")), caller=caller)
        assert status == 401 and text == "not Alertmanager"
    assert received == []


def test_a_refused_dispatch_is_a_502_so_alertmanager_retries(relay):
    url, received, answer = relay
    answer["code"] = 422
    status, text = _post(url, _message(_alert("llama-3-1-8b")))
    assert status == 502 and "HTTP 422" in text and len(received) == 1


def test_a_resolved_message_dispatches_nothing(relay):
    url, received, _ = relay
    assert _post(url, _message(_alert("llama-3-1-8b", status="resolved")))[0] == 200
    assert received == []


# --- the workflow ------------------------------------------------------------------------------------------------

def test_the_rollback_workflow_runs_on_the_relays_dispatch_and_deploys_the_merged_rollback():
    flow = workflow("rollout-rollback.yaml")
    assert flow["on"]["repository_dispatch"] == {"types": [rollback_relay.EVENT_TYPE]}
    assert flow["permissions"] == {"contents": "read"}
    assert flow["concurrency"]["cancel-in-progress"] is False
    rollback = flow["jobs"]["rollback"]
    assert rollback["permissions"] == {"contents": "write", "pull-requests": "write"}
    runs = [s.get("run", "") for s in steps(rollback)]
    assert any('neurodock rollout rollback "$STACK" --model "$MODEL"' in r for r in runs)
    assert any("gh pr create" in r and "gh pr merge" in r for r in runs)
    # The payload reaches scripts only through the environment (no expression pasted into a script).
    assert not any("${{" in r for r in runs)
    assert rollback["env"]["STACK"].startswith("${{ github.event.client_payload.stack")
    up = flow["jobs"]["up"]
    assert up["needs"] == "rollback" and up["environment"] == "${{ needs.rollback.outputs.stack }}"
    pulumi = uses(up, "pulumi/actions")["with"]
    assert (pulumi["command"], pulumi["policyPacks"]) == ("up", "policies/neurodock")
    assert uses(up, "actions/checkout")["with"]["ref"] == "main"
    # Out of the deploys' queue (where a newer pending job cancels it), it waits for their lock itself: only the
    # lock's own messages make it try again, with the same policy pack.
    assert flow["concurrency"]["group"].startswith("rollout-rollback-")
    [retry] = [s for s in steps(up) if s.get("if") == "steps.up.outcome == 'failure'"]
    assert "--policy-pack policies/neurodock" in retry["run"] and 'grep -qE "currently locked|currently in progress"' \
        in retry["run"] and "|| exit 1" in retry["run"]


def test_the_workflow_is_named_like_the_others():
    assert (WORKFLOWS / "rollout-rollback.yaml").exists()
    assert re.search(r"rollout rollback", (WORKFLOWS / "rollout-rollback.yaml").read_text())


# --- the relay in the program (monitoring.alerting.canaryRollback) -----------------------------------------------

ROLLBACK_KEY = "neurodock:monitoring.alerting.canaryRollback"
ROLLBACK_CONFIG = {"repository": "acme/neurodock-stacks", "tokenKey": "github-rollback"}


def _with_rollback(config: dict, **overrides) -> None:
    config["neurodock:monitoring"]["alerting"]["canaryRollback"] = {**ROLLBACK_CONFIG, **overrides}


@pytest.fixture(scope="module")
def rollback_plan(tmp_path_factory):
    from tests.conftest import plan_in

    return plan_in(tmp_path_factory.mktemp("rollback"), "prod", _with_rollback)


def _relay_objects(plan) -> dict[str, list]:
    from components.monitoring.rollback_relay_deploy import NAME_VALUE

    out: dict[str, list] = {}
    for r in plan.resources:
        if r.type.startswith("kubernetes:") and (r.manifest or {}).get("metadata", {}).get("labels", {}).get(
                "app.kubernetes.io/name") == NAME_VALUE:
            out.setdefault(r.manifest["kind"], []).append(r)
    return out


def _alertmanager_service(plan) -> dict:
    [service] = [o.manifest for o in plan.chart_objects if o.kind == "Service"
                 and (o.manifest["spec"].get("selector") or {}).get("app.kubernetes.io/name") == "alertmanager"]
    return service


@needs_amtool
def test_amtool_the_planned_alertmanager_sends_the_canary_alert_to_the_planned_relay(rollback_plan, tmp_path):
    from tests.test_alertmanager import rendered_config

    config = rendered_config(rollback_plan)
    assert amtool("check-config", config=config, tmp_path=tmp_path).returncode == 0
    [model] = [mdl for mdl in rollback_plan.config.models if mdl.canary]
    labels = {"alertname": CANARY_ALERT, ROLLBACK_LABEL[0]: ROLLBACK_LABEL[1], STACK_MODEL_LABEL: model.name,
              "severity": "critical", "model": model.model_name, "slo": "availability"}
    # The relay first, then the people prod routes a critical alert to (oncall, then the default receiver).
    assert routes(config, tmp_path, **labels) == ["canary-rollback", "oncall", "ml-alerts"]
    # The receiver's URL is the planned Service's.
    [service] = _relay_objects(rollback_plan)["Service"]
    meta, [port] = service.manifest["metadata"], service.manifest["spec"]["ports"]
    [receiver] = [r for r in config["receivers"] if r["name"] == "canary-rollback"]
    assert receiver["webhook_configs"][0]["url"] == (
        f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local:{port['port']}/")
    # Alertmanager authenticates with the file the relay checks: the receivers' Secret's key of this receiver, which
    # the stack generates beside the receivers' own credentials.
    authorization = receiver["webhook_configs"][0]["http_config"]["authorization"]
    assert authorization["type"] == "Bearer" and authorization["credentials_file"].endswith("/canary-rollback")
    # The Service reaches the relay's pods on the port the relay listens on.
    [deployment] = _relay_objects(rollback_plan)["Deployment"]
    pod = deployment.manifest["spec"]["template"]
    assert service.manifest["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert {p["name"]: p["containerPort"] for p in container["ports"]}[port["targetPort"]] == int(env["PORT"])


def test_the_relay_runs_the_script_with_the_token_from_the_receivers_secret(rollback_plan):
    from components.monitoring.alertmanager import SECRET_NAME
    from components.monitoring.rollback_relay_deploy import SCRIPT

    objects = _relay_objects(rollback_plan)
    [deployment], [config_map] = objects["Deployment"], objects["ConfigMap"]
    pod = deployment.manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GITHUB_REPOSITORY"] == ROLLBACK_CONFIG["repository"] and env["NEURODOCK_STACK"] == "test"
    assert config_map.manifest["data"] == {SCRIPT.name: SCRIPT.read_text()}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m_["name"]: m_["mountPath"] for m_ in container["volumeMounts"]}
    assert volumes["script"]["configMap"]["name"] == config_map.manifest["metadata"]["name"]
    assert container["command"][-1] == f"{mounts['script']}/{SCRIPT.name}"
    token = volumes["token"]["secret"]
    assert token["secretName"] == SECRET_NAME
    # Only the token and the caller's secret are projected; the files the relay reads are those keys.
    items = {i["key"]: i["path"] for i in token["items"]}
    assert set(items) == {ROLLBACK_CONFIG["tokenKey"], "canary-rollback"}
    assert env["TOKEN_FILE"] == f"{mounts['token']}/{items[ROLLBACK_CONFIG['tokenKey']]}"
    assert env["CALLER_FILE"] == f"{mounts['token']}/{items['canary-rollback']}"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment.manifest["metadata"]["namespace"] == _alertmanager_service(rollback_plan)["metadata"].get(
        "namespace", "monitoring")


def test_the_relay_meets_pod_security_restricted_has_resources_and_a_pinned_image(rollback_plan):
    from neurodock_policies import POLICIES

    from components.versions import ROLLBACK_RELAY_IMAGE
    from infra.check import run_policies

    [deployment] = _relay_objects(rollback_plan)["Deployment"]
    pod = deployment.manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == ROLLBACK_RELAY_IMAGE and ":" in ROLLBACK_RELAY_IMAGE.rsplit("/", 1)[1]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    checked = [p for p in POLICIES if p.name in ("pod-security-restricted", "container-resources", "images-pinned")]
    assert len(checked) == 3
    found = run_policies(rollback_plan, checked)
    assert [v for v in found if v.urn == deployment.urn or "rollback" in v.message] == []


def test_the_relay_admits_alertmanagers_pods_only_and_reaches_dns_and_https_only(rollback_plan):
    [policy] = _relay_objects(rollback_plan)["NetworkPolicy"]
    [deployment] = _relay_objects(rollback_plan)["Deployment"]
    spec = policy.manifest["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= deployment.manifest["spec"]["template"]["metadata"][
        "labels"].items()
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    [rule] = spec["ingress"]
    [peer] = rule["from"]
    # Alertmanager's pods, as the chart's own Alertmanager Service selects them.
    assert set(peer) == {"podSelector"}
    assert peer["podSelector"]["matchLabels"] == _alertmanager_service(rollback_plan)["spec"]["selector"]
    egress_ports = sorted((p["port"], p["protocol"]) for r in spec["egress"] for p in r["ports"])
    assert egress_ports == [(53, "TCP"), (53, "UDP"), (443, "TCP")]


def test_without_the_key_no_relay_and_no_rollback_route(shipped_plans, rollback_plan):
    from tests.test_alertmanager import rendered_config

    for stack in ("prod", "staging"):
        plan = shipped_plans[stack]
        assert _relay_objects(plan) == {}
        assert not any(r["name"] == "canary-rollback" for r in rendered_config(plan)["receivers"])
    assert set(_relay_objects(rollback_plan)) == {"ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    # Apart from the relay and the rollback route, the Alertmanager configuration is prod's.
    with_key, without = rendered_config(rollback_plan), rendered_config(shipped_plans["prod"])
    without_relay = {**with_key, "route": {**with_key["route"], "routes": with_key["route"]["routes"][1:]},
                     "receivers": [r for r in with_key["receivers"] if r["name"] != "canary-rollback"]}
    assert without_relay == without


@pytest.mark.parametrize(("mutate", "key", "says"), [
    (lambda c: _with_rollback(c, repository="not a repo"), f"{ROLLBACK_KEY}.repository", "owner/name"),
    (lambda c: _with_rollback(c, tokenKey="oncall"), f"{ROLLBACK_KEY}.tokenKey", "receivers[0]"),
    (lambda c: _with_rollback(c, tokenKey="heartbeat"), f"{ROLLBACK_KEY}.tokenKey", "heartbeat"),
    (lambda c: (_with_rollback(c), c["neurodock:monitoring"]["alerting"]["receivers"][1].update(
        name="canary-rollback"), c["neurodock:monitoring"]["alerting"].update(defaultReceiver="canary-rollback")),
     "neurodock:monitoring.alerting.receivers[1].name", "rollback relay"),
    (lambda c: (_with_rollback(c), c["neurodock:monitoring"]["alerting"].update(receivers=[], routes=[]),
                c["neurodock:monitoring"]["alerting"].pop("defaultReceiver")),
     ROLLBACK_KEY, "needs monitoring.alerting.receivers"),
])
def test_a_bad_canary_rollback_is_refused_naming_the_key(write_stack, mutate, key, says):
    from infra.config import ConfigError
    from infra.plan.engine import validate
    from infra.plan.stackfile import load_stack_file
    from tests.conftest import stack_document

    document = stack_document("prod")
    mutate(document["config"])
    with pytest.raises(ConfigError) as caught:
        validate(load_stack_file("test", write_stack(document)))
    assert key in str(caught.value) and says in str(caught.value), str(caught.value)


def test_canary_rollback_without_monitoring_exits_2_naming_the_key(write_stack):
    from tests.conftest import run_cli, stack_document

    document = stack_document("prod")
    _with_rollback(document["config"])
    document["config"]["neurodock:monitoring"] = {"enabled": False,
                                                  "alerting": document["config"]["neurodock:monitoring"]["alerting"]}
    result = run_cli("plan", "prod", "--stack-file", str(write_stack(document)))
    assert result.returncode == 2 and ROLLBACK_KEY in result.stderr and "monitoring.enabled" in result.stderr


def test_the_token_is_an_entry_of_the_receivers_secret_and_a_stack_without_canary_is_warned():
    from infra.config import parse_config
    from infra.config.monitoring import alerting_warnings, receiver_secret_problems
    from tests.conftest import stack_document

    config = stack_document("prod")["config"]
    _with_rollback(config)
    parsed = parse_config(config)
    assert "github-rollback" in parsed.monitoring.alerting.credentialed()
    entries = {name: "x" for name in ("oncall", "ml-alerts", "heartbeat")}
    missing = receiver_secret_problems(parsed, json.dumps(entries))
    assert [str(p) for p in missing] and all("github-rollback" in str(p) for p in missing)
    assert receiver_secret_problems(parsed, json.dumps({**entries, "github-rollback": "ghp_x"})) == []
    assert alerting_warnings(parsed) == []
    for model in config["neurodock:models"]:
        model.pop("canary", None)
    [warning] = alerting_warnings(parse_config(config))
    assert ROLLBACK_KEY in str(warning) and "no model has a canary" in str(warning)


# --- the scheduled analysis workflow -----------------------------------------------------------------------------

def _step(job: dict, name_starts: str) -> dict:
    [step] = [s for s in steps(job) if s.get("name", "").startswith(name_starts)]
    return step


def test_the_analysis_runs_on_a_schedule_and_by_hand_with_the_teams_mode():
    flow = workflow("rollout-analyze.yaml")
    assert flow["on"]["schedule"] and all(len(c["cron"].split()) == 5 for c in flow["on"]["schedule"])
    assert set(flow["on"]["workflow_dispatch"]["inputs"]) == {"stack", "mode", "deploy"}
    assert flow["permissions"] == {"contents": "read"}
    analyze = flow["jobs"]["analyze"]
    assert analyze["needs"] == "rollouts" and analyze["runs-on"] == "${{ matrix.runsOn }}"
    assert analyze["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.rollouts.outputs.rollouts) }}"
    # The team's choice: the input, else the repository variable, else a pull request for review.
    assert analyze["env"]["MODE"] == "${{ inputs.mode || vars.NEURODOCK_ROLLOUT_MODE || 'pr' }}"
    runs = {s.get("name", ""): s.get("run", "") for s in steps(analyze)}
    assert any('neurodock rollout analyze "$STACK" --prometheus "$url" --json' in r for r in runs.values())
    merge = _step(analyze, "Open the pull request")["run"]
    assert "gh pr create" in merge
    assert merge.index('if [ "$MODE" = merge ]') < merge.index("gh pr merge") < merge.index("deploy=\"$STACK\"")
    # Nothing from an expression is pasted into a script; no token stays in the checkout.
    for job in flow["jobs"].values():
        assert not any("${{" in s.get("run", "") for s in steps(job))
        for step in steps(job):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    up = flow["jobs"]["up"]
    assert up["needs"] == "target" and up["environment"] == "${{ inputs.deploy }}"
    assert up["runs-on"] == "${{ fromJSON(needs.target.outputs.runner) }}"
    pulumi = uses(up, "pulumi/actions")["with"]
    assert (pulumi["command"], pulumi["policyPacks"]) == ("up", "policies/neurodock")
    # Only the workflow's own dispatch after a merge deploys; a scheduled run never does.
    assert "inputs.deploy != ''" in flow["jobs"]["target"]["if"] and "inputs.deploy" in flow["jobs"]["rollouts"]["if"]


def _run_step(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, check=False)


def test_the_listing_finds_the_stacks_whose_canary_takes_traffic(tmp_path):
    import shutil

    from tests.conftest import run_cli, stack_document

    flow = workflow("rollout-analyze.yaml")
    script = _step(flow["jobs"]["rollouts"], "List the stacks")["run"]
    listing = script[script.index("venv/bin/python - <<'PY'"):]
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "stacks").mkdir()
    for path in (root / "stacks").glob("Pulumi.*.yaml"):
        shutil.copy(path, tmp_path / "stacks" / path.name)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to(root / "venv" / "bin" / "python")
    stacks = json.loads(run_cli("stacks", "--json").stdout)
    (tmp_path / "stacks.json").write_text(json.dumps(stacks))
    expected = sorted(s["stack"] for s in stacks if any(
        (m.get("canary") or {}).get("weight", 0) > 0 for m in stack_document(s["stack"])["config"]["neurodock:models"]))
    assert expected  # prod and prod-dr ship a canary

    def listed(only: str = "") -> list[dict]:
        out = tmp_path / "github-output"
        out.write_text("")
        result = _run_step(listing, tmp_path, {"GITHUB_OUTPUT": str(out), "ONLY": only})
        assert result.returncode == 0, result.stderr
        return json.loads(out.read_text().removeprefix("rollouts="))

    assert sorted(r["stack"] for r in listed()) == expected
    assert {r["stack"]: r["runsOn"] for r in listed()} == {s["stack"]: s["runsOn"] for s in stacks
                                                           if s["stack"] in expected}
    assert listed("dev") == []
    # A rolled-back canary (weight 0) is left alone: no analysis would step it back up.
    document = yaml.safe_load((tmp_path / "stacks" / f"Pulumi.{expected[0]}.yaml").read_text())
    for model in document["config"]["neurodock:models"]:
        if model.get("canary"):
            model["canary"]["weight"] = 0
    (tmp_path / "stacks" / f"Pulumi.{expected[0]}.yaml").write_text(yaml.safe_dump(document))
    assert expected[0] not in [r["stack"] for r in listed()]


def test_each_verdict_leads_to_its_edit_and_hold_to_none(tmp_path):
    import shutil

    if shutil.which("jq") is None:
        pytest.skip("jq not installed (GitHub's runners have it)")
    flow = workflow("rollout-analyze.yaml")
    script = _step(flow["jobs"]["analyze"], "Edit the stack file")["run"]
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    fake = tmp_path / "venv" / "bin" / "neurodock"
    fake.write_text('#!/bin/sh\necho "$@" >> calls\n')
    fake.chmod(0o755)
    verdicts = {"stack": "prod", "verdict": "rollback", "models": [
        {"model": "a", "verdict": "advance", "weight": 5, "next_weight": 25, "reasons": []},
        {"model": "b", "verdict": "rollback", "weight": 25, "next_weight": 50, "reasons": []},
        {"model": "c", "verdict": "hold", "weight": 5, "next_weight": 25, "reasons": []},
        {"model": "d", "verdict": "advance", "weight": 50, "next_weight": None, "reasons": []},
    ]}
    (tmp_path / "verdict.json").write_text(json.dumps(verdicts))
    result = _run_step(script, tmp_path, {"STACK": "prod"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calls").read_text().splitlines() == ["rollout rollback prod --model b",
                                                             "rollout step prod --model a"]
    assert "::notice::d is at its last step" in result.stdout


# --- the relay as a component --------------------------------------------------------------------------------------

def _relay_args():
    from components.monitoring.rollback_relay_deploy import RollbackRelayArgs

    return RollbackRelayArgs(namespace="monitoring", repository="acme/stacks", stack="prod", token_secret="receivers",
                             token_key="github-rollback", caller_key="canary-rollback",
                             alertmanager_pod_labels={"alertmanager": "main"})


def test_the_relay_component_builds_its_four_objects_and_refuses_an_open_selector():
    from components.monitoring.rollback_relay_deploy import RollbackRelay
    from tests.test_component_harness import build, input_errors

    built = build(lambda: RollbackRelay("relay", _relay_args()))
    assert built.types == {"kubernetes:core/v1:ConfigMap", "kubernetes:apps/v1:Deployment",
                           "kubernetes:core/v1:Service", "kubernetes:networking.k8s.io/v1:NetworkPolicy"}
    assert input_errors(lambda: RollbackRelay("relay", replace(_relay_args(), alertmanager_pod_labels={}))) == [
        ("alertmanager_pod_labels", "RollbackRelayArgs.alertmanager_pod_labels must select Alertmanager's pods: an "
                                    "empty selector would admit every pod of the namespace")]
    assert [p for p, _ in input_errors(lambda: RollbackRelay("relay", replace(_relay_args(), repository="x")))] == [
        "repository"]


def test_the_monitoring_stack_mounts_the_receivers_secret_it_creates_into_the_relay():
    from components.charts import ChartSource
    from components.monitoring.stack import (
        Alerting,
        AlertingCanaryRollback,
        MonitoringStack,
        MonitoringStackArgs,
        Platform,
    )
    from components.versions import KUBE_PROMETHEUS_STACK
    from tests.test_component_harness import build, load

    load("pulumi_kubernetes.helm.v3", "pulumi_random")
    alerting = Alerting(repeat_interval="4h", credentials=json.dumps({"github-rollback": "ghp_x"}),
                        canary_rollback=AlertingCanaryRollback(repository="acme/stacks", stack="prod",
                                                               token_key="github-rollback", label=ROLLBACK_LABEL))
    built = build(lambda: MonitoringStack("monitoring", MonitoringStackArgs(
        chart=ChartSource(KUBE_PROMETHEUS_STACK), platform=Platform.KIND, storage_class="standard", retention="15d",
        storage_gib=50, grafana=False, alerting=alerting)))
    secrets = [s for s in built.of_type("kubernetes:core/v1:Secret")
               if s.inputs["metadata"].get("name") == "neurodock-alert-receivers"]
    assert len(secrets) == 1
    [deployment] = built.of_type("kubernetes:apps/v1:Deployment")
    [token] = [v for v in deployment.inputs["spec"]["template"]["spec"]["volumes"] if v["name"] == "token"]
    assert token["secret"]["secretName"] == "neurodock-alert-receivers"
    [release] = built.of_type("kubernetes:helm.sh/v3:Release")
    receivers = release.inputs["values"]["alertmanager"]["config"]["receivers"]
    assert [r["name"] for r in receivers if r["name"] == "canary-rollback"] == ["canary-rollback"]
    # The secret Alertmanager authenticates to the relay with is generated into the same Secret, under the receiver's
    # name, beside the receivers' own credentials, and projected into the relay.
    [caller] = built.of_type("random:index/randomPassword:RandomPassword")
    assert caller.name == "monitoring-rollback-caller" and caller.inputs["length"] >= 32
    assert {"github-rollback", "canary-rollback"} <= set(secrets[0].inputs["stringData"])
    assert {i["key"] for i in token["secret"]["items"]} == {"github-rollback", "canary-rollback"}

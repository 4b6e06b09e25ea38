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
from components.monitoring.alertmanager import CanaryRollback, Receiver, alertmanager_config, with_canary_rollback
from components.monitoring.alerts import (
    CANARY_ALERT,
    ROLLBACK_LABEL,
    STACK_MODEL_LABEL,
    canary_rules,
    version_slis,
)
from components.monitoring.recording import SLO_WINDOWS, slo_requests
from tests.test_alertmanager import amtool, needs_amtool, routes
from tests.test_alerts import MIN_REQUESTS, PROMTOOL, SLOW, groups, needs_promtool
from tests.test_ci_workflows import WORKFLOWS, steps, uses, workflow

CANARY = replace(SLOW, canary=True)
RELAY = CanaryRollback(receiver="canary-rollback", url="http://rollback-relay.neurodock-monitoring:8080/",
                       label=ROLLBACK_LABEL)


# --- the alert ---------------------------------------------------------------------------------------------------

def test_the_canary_alert_reads_the_canarys_slis_from_their_one_home():
    rules = canary_rules([CANARY], MIN_REQUESTS)
    alerts = [r for r in rules if "alert" in r]
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
    [rule] = [r.manifest for r in shipped_plans["prod"].manifests if r.manifest["kind"] == "PrometheusRule"]
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


# --- Alertmanager ------------------------------------------------------------------------------------------------

def _config(**kwargs) -> dict:
    receivers = [Receiver(name="oncall", kind="pagerduty", send_resolved=True),
                 Receiver(name="team", kind="slack", settings={"channel": "#llm"}, send_resolved=True)]
    from components.monitoring.alertmanager import AlertRoute

    base = alertmanager_config(receivers, [AlertRoute(receiver="oncall", severities=("critical",), continue_=False)],
                               "team", "4h", **kwargs)
    return with_canary_rollback(base, RELAY)


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
    config = with_canary_rollback(alertmanager_config([Receiver(name="team", kind="slack",
                                                                 settings={"channel": "#llm"}, send_resolved=True)],
                                                      [], None, "4h"), RELAY)
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), rollback_relay.Relay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", received, answer
    server.shutdown()


def _post(url: str, message: dict) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(message).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
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


def test_the_workflow_is_named_like_the_others():
    assert (WORKFLOWS / "rollout-rollback.yaml").exists()
    assert re.search(r"rollout rollback", (WORKFLOWS / "rollout-rollback.yaml").read_text())

"""``neurodock rollout analyze`` against a real Prometheus (Debian's ``prometheus``, started here on a loopback
port with a temporary TSDB) holding series backfilled with ``promtool tsdb create-blocks-from openmetrics``.

The series are the ones the SLO alerts read (``alerts.version_slis``), named from the metric registry, which
tests/test_alerts.py checks against the golden fixtures; here each backfilled label is checked against the
fixture too. One TSDB holds three phases of the prod stack's canary, judged at the end of each (``--at``):
equal to stable, worse than stable, and too little traffic.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from components.monitoring import metrics as m
from components.monitoring.alerts import le_matcher, version_slis
from infra import rollout
from infra.config import parse_config
from infra.plan.stackfile import load_stack_file
from tests import scrape
from tests.conftest import run_cli, stack_document

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                      reason="prometheus/promtool not installed (Debian package 'prometheus')")

MODEL = "llama-3-1-8b"
NAMESPACE = "neurodock-serving"
STEP_S = 15
PHASE_S = 30 * 60
# Requests per second of each version in each phase: (2xx, 5xx) at the route's cluster, (fast, slow) TTFT.
PHASES = {
    "equal": {"stable": (9.9, 0.1, 9.5, 0.5), "canary": (0.99, 0.01, 0.95, 0.05)},
    "worse": {"stable": (9.9, 0.1, 9.5, 0.5), "canary": (0.8, 0.2, 0.5, 0.5)},
    "quiet": {"stable": (9.9, 0.1, 9.5, 0.5), "canary": (0.05, 0.0, 0.05, 0.0)},
    # As good as stable at the gateway, but only because its picker fell back to the stable replicas while the
    # canary had no ready replica (from FALLBACK_S before the phase's end).
    "fallback": {"stable": (9.9, 0.1, 9.5, 0.5), "canary": (0.99, 0.01, 0.95, 0.05)},
}
FALLBACK_S = 4 * 60
CANARY_POD = f"{MODEL}-canary-server-5d8f7c2a-7b9c6d5f4-x2k8q"


def _stack(tmp_path: Path, steps=(10, 25, 50), weight: int | None = None) -> Path:
    document = stack_document("prod")
    [model] = [x for x in document["config"]["neurodock:models"] if x["name"] == MODEL]
    model["canary"]["steps"] = list(steps)
    if weight is not None:
        model["canary"]["weight"] = weight
    path = tmp_path / "Pulumi.prod.yaml"
    import yaml

    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _series(variant: str, ttft_bound: float) -> dict[str, dict[str, str]]:
    """Each backfilled series' name and labels, keyed by what it counts."""
    rule = 0 if variant == "stable" else 1
    job = f"{MODEL}-epp" if variant == "stable" else f"{MODEL}-{variant}-epp"
    envoy = {"envoy_cluster_name": f"httproute/{NAMESPACE}/{MODEL}/rule/{rule}", "namespace": "neurodock-gateway",
             "job": "envoy"}
    epp = {"namespace": NAMESPACE, "job": job, "streaming": "true"}
    le = le_matcher(ttft_bound).split('"')[1].split("|")[-1].replace("[.]", ".")
    return {
        "ok": (m.ENVOY_UPSTREAM_RQ_XX.name, {**envoy, "envoy_response_code_class": "2"}),
        "bad": (m.ENVOY_UPSTREAM_RQ_XX.name, {**envoy, "envoy_response_code_class": "5"}),
        "fast": (f"{m.EPP_TTFT.name}_bucket", {**epp, "le": le}),
        "count": (f"{m.EPP_TTFT.name}_count", epp),
    }


def _openmetrics(start: int, ttft_bound: float) -> str:
    """Counters through the three phases, every STEP_S seconds, series by series (OpenMetrics wants each
    family's samples together, in time order)."""
    lines = []
    for variant in ("stable", "canary"):
        series = _series(variant, ttft_bound)
        totals = {k: 0.0 for k in series}
        points: dict[str, list[str]] = {k: [] for k in series}
        t = start
        for phase in PHASES.values():
            ok, bad, fast, slow = phase[variant]
            for _ in range(PHASE_S // STEP_S):
                totals["ok"] += ok * STEP_S
                totals["bad"] += bad * STEP_S
                totals["fast"] += fast * STEP_S
                totals["count"] += (fast + slow) * STEP_S
                t += STEP_S
                for key, (name, labels) in series.items():
                    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
                    points[key].append(f"{name}{{{text}}} {totals[key]:.3f} {t}")
        for key in series:
            lines.extend(points[key])
    # The canary's one replica, ready but for the end of the fallback phase (kube-state-metrics).
    ready = {"namespace": NAMESPACE, "pod": CANARY_POD, "uid": "0b7d3f4e-9a1c-4e2b-8f6d-2c5a7e9b1d30",
             "condition": "true"}
    text = ",".join(f'{k}="{v}"' for k, v in ready.items())
    end = start + len(PHASES) * PHASE_S
    for t in range(start + STEP_S, end + 1, STEP_S):
        lines.append(f"{m.KSM_POD_READY.name}{{{text}}} {0 if t > end - FALLBACK_S else 1} {t}")
    # One family per name: group the lines by series name, keeping each series' order.
    lines.sort(key=lambda line: line.split("{", 1)[0])
    return "\n".join(lines) + "\n# EOF\n"


def test_every_backfilled_series_and_label_is_one_the_exporters_expose():
    for variant in ("stable", "canary"):
        for name, labels in _series(variant, 5.0).values():
            assert scrape.exposed(name), name
            assert set(labels) <= scrape.labels_of(name), (name, set(labels) - scrape.labels_of(name))
    assert scrape.exposed(m.KSM_POD_READY.name)
    assert {"namespace", "pod", "uid", "condition"} <= scrape.labels_of(m.KSM_POD_READY.name)


def test_the_canary_slis_are_the_alerts_with_the_canarys_rule_and_picker():
    from components.monitoring.alerts import ModelTarget

    target = ModelTarget(served_name="m", engine="vllm", namespace=NAMESPACE, deployment="d", min_replicas=1,
                         ttft_seconds=5.0, availability=0.99, queue_depth=10, kv_cache_usage=0.9, route="m")
    stable, canary = version_slis(target, "stable"), version_slis(target, "canary")
    assert [s.sli.labels["slo"] for s in canary] == ["availability", "ttft"]
    assert "rule/1" in canary[0].sli.total("10m") and "rule/0" not in canary[0].sli.total("10m")
    assert 'job="m-canary-epp"' in canary[1].sli.total("10m")
    assert [s.budget for s in canary] == [s.budget for s in stable] == [pytest.approx(0.01), pytest.approx(0.05)]
    for s in canary:
        for expr in (s.sli.bad("10m"), s.sli.total("10m")):
            assert scrape.problems(expr) == [], expr


def test_judge_needs_min_requests_and_worse_than_both_budget_and_stable():
    reading = rollout.VersionReading
    stable = reading(requests=10000, error_ratio=0.02)
    assert rollout.judge("x", 0.01, reading(99, 0.5), stable, 100).verdict == "hold"
    assert rollout.judge("x", 0.01, reading(500, 0.03), stable, 100).verdict == "rollback"
    # Over budget but no worse than stable: an incident both share, not the canary's doing.
    assert rollout.judge("x", 0.01, reading(500, 0.02), stable, 100).verdict == "advance"
    assert rollout.judge("x", 0.05, reading(500, 0.03), stable, 100).verdict == "advance"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.skip("prometheus/promtool not installed (Debian package 'prometheus')")
    tmp = tmp_path_factory.mktemp("prometheus")
    config = parse_config(load_stack_file("prod").config)
    [model] = [x for x in config.models if x.name == MODEL]
    # Whole minutes, within the default 15-day retention and clear of the head block.
    start = (int(time.time()) - 4 * 3600) // 60 * 60
    source = tmp / "series.om"
    source.write_text(_openmetrics(start, model.slo.ttft_p95_seconds))
    data = tmp / "data"
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)], check=True,
                   capture_output=True, timeout=120)
    (tmp / "prometheus.yml").write_text("global:\n  evaluation_interval: 1h\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                                f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=(tmp / "log").open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"prometheus did not become ready: {(tmp / 'log').read_text()[-2000:]}")
        yield url, start
    finally:
        process.terminate()
        process.wait(timeout=30)


def _analyze(tmp_path, url, at: int, *extra: str):
    return run_cli("rollout", "analyze", "prod", "--stack-file", str(_stack(tmp_path)), "--prometheus", url,
                   "--at", str(at), "--json", *extra)


def _judged(tmp_path, url, at: int, code: int) -> dict:
    """The one model's verdict in `rollout analyze --json` at ``at``, which must exit ``code``."""
    result = _analyze(tmp_path, url, at)
    assert result.returncode == code, result.stderr
    [model] = json.loads(result.stdout)["models"]
    return model


def _end(start: int, phase: str) -> int:
    return start + (list(PHASES).index(phase) + 1) * PHASE_S


@needs_prometheus
def test_a_canary_equal_to_stable_advances_to_the_next_step(prometheus, tmp_path):
    url, start = prometheus
    result = _analyze(tmp_path, url, _end(start, "equal"))
    assert result.returncode == rollout.EXIT_ADVANCE, result.stderr
    out = json.loads(result.stdout)
    [model] = out["models"]
    assert out["verdict"] == model["verdict"] == "advance"
    assert model["weight"] == 10 and model["next_weight"] == 25
    assert {s["slo"]: s["verdict"] for s in model["slis"]} == {"availability": "advance", "ttft": "advance"}
    availability = next(s for s in model["slis"] if s["slo"] == "availability")
    # 10 minutes at 1 request/s: the canary's requests as Prometheus extrapolates them.
    assert availability["canary"]["requests"] == pytest.approx(600, rel=0.05)
    assert availability["canary"]["error_ratio"] == pytest.approx(0.01, rel=0.05)
    assert availability["stable"]["error_ratio"] == pytest.approx(0.01, rel=0.05)


@needs_prometheus
def test_a_step_not_yet_deployed_holds_rather_than_being_stepped_past(prometheus, tmp_path):
    """The file says 25% (a merged step) while the cluster still serves 10% (its deploy awaits a reviewer): the data
    are the previous weight's, and advancing would skip a step never served."""
    url, start = prometheus
    result = run_cli("rollout", "analyze", "prod", "--stack-file", str(_stack(tmp_path, weight=25)),
                     "--prometheus", url, "--at", str(_end(start, "equal")), "--json")
    assert result.returncode == rollout.EXIT_HOLD, result.stderr
    [model] = json.loads(result.stdout)["models"]
    assert model["verdict"] == "hold" and {s["verdict"] for s in model["slis"]} == {"advance"}
    assert any("nearer the step before than its weight of 25%: that weight is not deployed yet" in r
               for r in model["reasons"])


def test_an_sli_neither_version_had_requests_for_is_not_judged(monkeypatch):
    """Clients that never stream leave the TTFT SLI empty for both versions: the availability SLI decides; an SLI
    only the canary lacks requests for still holds."""
    config = parse_config(stack_document("prod")["config"])
    [model] = [x for x in config.models if x.name == MODEL]
    readings = {"availability": (rollout.VersionReading(600, 0.01), rollout.VersionReading(6000, 0.01)),
                "ttft": (rollout.VersionReading(0, None), rollout.VersionReading(0, None))}
    monkeypatch.setattr(rollout, "_canary_fell_back", lambda *a: False)

    def reading(url, sli, window, seconds, at):
        canary, stable = readings[sli.labels["slo"]]
        return canary if 'canary' in sli.total(window) else stable

    monkeypatch.setattr(rollout, "_reading", reading)
    verdict = rollout.analyze_model(config, model, "http://prometheus:9090", None)
    assert verdict.verdict == "advance"
    assert any("ttft: not judged: neither version had a request" in r for r in verdict.reasons)
    # The control: streamed requests reach the stable version only, so the canary's TTFT is unknown: hold.
    readings["ttft"] = (rollout.VersionReading(0, None), rollout.VersionReading(3000, 0.02))
    assert rollout.analyze_model(config, model, "http://prometheus:9090", None).verdict == "hold"


@needs_prometheus
def test_a_canary_worse_than_stable_is_rolled_back_with_the_failing_slis_named(prometheus, tmp_path):
    url, start = prometheus
    model = _judged(tmp_path, url, _end(start, "worse"), rollout.EXIT_ROLLBACK)
    assert model["verdict"] == "rollback"
    verdicts = {s["slo"]: s for s in model["slis"]}
    assert verdicts["availability"]["verdict"] == verdicts["ttft"]["verdict"] == "rollback"
    assert verdicts["availability"]["canary"]["error_ratio"] == pytest.approx(0.2, rel=0.05)
    assert verdicts["ttft"]["canary"]["error_ratio"] == pytest.approx(0.5, rel=0.05)
    assert any("rollout rollback" in r for r in model["reasons"])


@needs_prometheus
def test_a_canary_with_too_little_traffic_holds(prometheus, tmp_path):
    url, start = prometheus
    model = _judged(tmp_path, url, _end(start, "quiet"), rollout.EXIT_HOLD)
    assert model["verdict"] == "hold"
    assert all(s["verdict"] == "hold" and "minRequests" in s["reason"] for s in model["slis"])
    # The text output says the same.
    text = run_cli("rollout", "analyze", "prod", "--stack-file", str(_stack(tmp_path)), "--prometheus", url,
                   "--at", str(_end(start, "quiet")))
    assert text.returncode == rollout.EXIT_HOLD and f"{MODEL}: hold" in text.stdout


@needs_prometheus
def test_a_canary_that_fell_back_to_stable_in_the_window_holds(prometheus, tmp_path):
    url, start = prometheus
    model = _judged(tmp_path, url, _end(start, "fallback"), rollout.EXIT_HOLD)
    # Its SLIs alone would advance it: the fallback is what holds it.
    assert model["verdict"] == "hold" and {s["verdict"] for s in model["slis"]} == {"advance"}
    assert any("no ready replica" in r for r in model["reasons"])
    # Control: the window before the canary lost its replica advances.
    before = _analyze(tmp_path, url, _end(start, "fallback") - FALLBACK_S - 60)
    assert before.returncode == rollout.EXIT_ADVANCE, before.stdout


def test_an_unreachable_prometheus_is_a_clear_error_exit_2_and_nothing_is_edited(tmp_path):
    path = _stack(tmp_path)
    before = path.read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    result = run_cli("rollout", "analyze", "prod", "--stack-file", str(path), "--prometheus",
                     f"http://127.0.0.1:{port}")
    assert result.returncode == rollout.EXIT_USAGE
    assert "cannot be reached" in result.stderr and "--prometheus" in result.stderr and not result.stdout
    assert path.read_bytes() == before


def test_a_prometheus_url_that_is_not_http_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_:
        run_cli("rollout", "analyze", "prod", "--prometheus", "localhost:9090")
    assert exit_.value.code == 2


def test_a_stack_without_a_canary_is_a_usage_error_naming_the_key(tmp_path):
    result = run_cli("rollout", "analyze", "dev", "--prometheus", "http://127.0.0.1:1")
    assert result.returncode == rollout.EXIT_USAGE
    assert "canary" in result.stderr

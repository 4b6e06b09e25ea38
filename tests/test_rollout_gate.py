"""The eval gate in the program: a canary naming ``evalSuite`` gets a Pod Security "restricted" Job, pinned
image, runner and suite from a ConfigMap, that asks the canary's own Service; the model's route waits for it.
Without a suite the plan's graph is the shipped one. Bad suites are config errors naming the key."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from neurodock_policies import POLICIES

from components.serving.eval_job import NAME_VALUE, RUNNER, deadline_s
from components.versions import EVAL_RUNNER_IMAGE
from infra.check import run_policies
from infra.config import ConfigError
from infra.plan.engine import run_plan, validate
from infra.plan.stackfile import REPO_ROOT, load_stack_file
from tests.conftest import of_type, plan_in, run_cli, stack_document

SUITE = "evals/llama-3-1-8b.json"
MODEL = "llama-3-1-8b"


def _with_suite(config: dict, suite: str = SUITE, pass_rate: float | None = None) -> None:
    [model] = [m for m in config["neurodock:models"] if m["name"] == MODEL]
    model["canary"]["evalSuite"] = suite
    if pass_rate is not None:
        model["canary"]["evalPassRate"] = pass_rate


@pytest.fixture(scope="module")
def gated_plan(tmp_path_factory):
    return plan_in(tmp_path_factory.mktemp("gate"), "prod", lambda c: _with_suite(c, pass_rate=0.5), name="prod")


def _eval_jobs(plan) -> list:
    return [r for r in of_type(plan, "kubernetes:batch/v1:Job")
            if r.manifest["metadata"]["labels"].get("app.kubernetes.io/name") == NAME_VALUE]


def _one(plan, type_: str, name: str):
    [r] = [r for r in of_type(plan, type_) if r.name == name]
    return r


def test_the_canary_route_waits_for_the_eval_job_which_waits_for_the_canary(gated_plan):
    [job] = _eval_jobs(gated_plan)
    route = _one(gated_plan, "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", f"{MODEL}-route")
    assert job.urn in route.options["dependsOn"]
    canary_server = _one(gated_plan, "kubernetes:apps/v1:Deployment", f"{MODEL}-canary-server")
    stable_server = _one(gated_plan, "kubernetes:apps/v1:Deployment", f"{MODEL}-server")
    assert canary_server.urn in job.options["dependsOn"]
    assert stable_server.urn not in job.options["dependsOn"]
    # The other model's route is not gated.
    other = _one(gated_plan, "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "llama-3-3-70b-route")
    assert job.urn not in other.options["dependsOn"]


def test_the_job_asks_the_canarys_own_service_with_the_suite_and_bar(gated_plan):
    [job] = _eval_jobs(gated_plan)
    service = _one(gated_plan, "kubernetes:core/v1:Service", f"{MODEL}-canary-svc")
    container = job.manifest["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    base_url = command[command.index("--base-url") + 1]
    assert base_url == (f"http://{service.manifest['metadata']['name']}.{service.manifest['metadata']['namespace']}"
                        f".svc.cluster.local:{service.manifest['spec']['ports'][0]['port']}")
    assert command[command.index("--pass-rate") + 1] == "0.5"
    assert command[command.index("--model") + 1] == "meta-llama/Llama-3.1-8B-Instruct"
    config_map = _one(gated_plan, "kubernetes:core/v1:ConfigMap", f"{MODEL}-canary-eval-suite")
    assert config_map.manifest["data"]["eval_runner.py"] == RUNNER.read_text()
    assert json.loads(config_map.manifest["data"]["suite.json"]) == json.loads((REPO_ROOT / SUITE).read_text())
    volume = job.manifest["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == config_map.manifest["metadata"]["name"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # The await outlasts the Job's own deadline, which covers every case at its longest.
    active = job.manifest["spec"]["activeDeadlineSeconds"]
    assert active >= 3 * 600
    assert job.options["customTimeouts"]["create"] == job.options["customTimeouts"]["update"] == f"{active + 60}s"
    assert job.manifest["spec"]["backoffLimit"] == 0
    assert job.manifest["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"


def test_the_job_is_pod_security_restricted_and_pinned(gated_plan):
    [job] = _eval_jobs(gated_plan)
    pod = job.manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert container["image"] == EVAL_RUNNER_IMAGE and ":" in EVAL_RUNNER_IMAGE.rsplit("/", 1)[1]
    found = run_policies(gated_plan, [p for p in POLICIES if p.name in ("pod-security-restricted", "images-pinned",
                                                                        "container-resources")])
    assert [v for v in found if f"{MODEL}-canary-eval" in v.message] == []


def test_the_canary_admits_the_eval_pods_and_only_the_canary(gated_plan):
    [job] = _eval_jobs(gated_plan)
    pod_labels = job.manifest["spec"]["template"]["metadata"]["labels"]

    def admitted(name: str) -> bool:
        policy = _one(gated_plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", name)
        peers = [p for rule in policy.manifest["spec"].get("ingress", []) for p in rule["from"]]
        return any("podSelector" in p and p["podSelector"]["matchLabels"].items() <= pod_labels.items()
                   for p in peers)

    assert admitted(f"{MODEL}-canary-ingress")
    assert not admitted(f"{MODEL}-ingress")


def test_without_a_suite_the_graph_is_the_shipped_one(shipped_plans, gated_plan):
    shipped = shipped_plans["prod"]
    assert _eval_jobs(shipped) == []
    gate = {r.urn for r in gated_plan.resources if f"{MODEL}-canary-eval" in r.name}
    assert {r.type for r in gated_plan.resources if r.urn in gate} == {"kubernetes:batch/v1:Job",
                                                                       "kubernetes:core/v1:ConfigMap"}
    assert {r.urn for r in shipped.resources} == {r.urn for r in gated_plan.resources} - gate
    shipped_deps = {r.urn: sorted(r.options.get("dependsOn") or []) for r in shipped.resources}
    gated_deps = {r.urn: sorted(d for d in r.options.get("dependsOn") or [] if d not in gate)
                  for r in gated_plan.resources if r.urn not in gate}
    assert gated_deps == shipped_deps


def test_a_new_canary_reruns_the_gate_and_a_weight_step_does_not(write_stack):
    def job_name(mutate) -> str:
        document = stack_document("prod")
        _with_suite(document["config"])
        mutate(next(m for m in document["config"]["neurodock:models"] if m["name"] == MODEL)["canary"])
        [job] = _eval_jobs(run_plan(load_stack_file("test", write_stack(document))))
        return job.manifest["metadata"]["name"]

    base = job_name(lambda c: None)
    assert job_name(lambda c: c.update(weight=25)) == base
    assert job_name(lambda c: c.update(extraArgs=["--max-num-batched-tokens", "8192"])) != base


@pytest.mark.parametrize(("suite", "pass_rate", "key", "says"), [
    ("evals/no-such-suite.json", None, "evalSuite", "cannot read 'evals/no-such-suite.json'"),
    ("/etc/passwd", None, "evalSuite", "must be a path inside the repository"),
    ("../outside.json", None, "evalSuite", "must be a path inside the repository"),
    ("README.md", None, "evalSuite", "the suite is not JSON"),
    (SUITE, 0, "evalPassRate", "must be greater than 0"),
])
def test_a_bad_suite_is_refused_naming_the_key(write_stack, suite, pass_rate, key, says):
    document = stack_document("prod")
    _with_suite(document["config"], suite, pass_rate)
    with pytest.raises(ConfigError) as caught:
        validate(load_stack_file("test", write_stack(document)))
    assert f"neurodock:models[0].canary.{key}" in str(caught.value) and says in str(caught.value)


def test_plan_exits_2_on_a_missing_suite(write_stack):
    document = stack_document("prod")
    _with_suite(document["config"], "evals/no-such-suite.json")
    result = run_cli("plan", "prod", "--stack-file", str(write_stack(document)))
    assert result.returncode == 2 and "neurodock:models[0].canary.evalSuite" in result.stderr


def test_an_unsupported_assertion_type_is_refused_before_any_deploy(write_stack, tmp_path):
    suite = REPO_ROOT / "evals" / f".test-{tmp_path.name}.json"
    suite.write_text(json.dumps({"prompts": ["{{q}}"], "tests": [{"vars": {"q": "hi"},
                                                                  "assert": [{"type": "llm-rubric", "value": "x"}]}]}))
    try:
        document = stack_document("prod")
        _with_suite(document["config"], str(suite.relative_to(REPO_ROOT)))
        with pytest.raises(ConfigError) as caught:
            validate(load_stack_file("test", write_stack(document)))
    finally:
        suite.unlink()
    assert "canary.evalSuite" in str(caught.value) and "'llm-rubric' is not supported" in str(caught.value)


def test_the_deadline_covers_every_case():
    from components.serving.eval_job import EvalGateArgs

    args = EvalGateArgs(suite="{}", cases=4, pass_rate=1.0, max_regression=None, request_timeout_s=30, revision="r",
                        node_selector={})
    assert deadline_s(args) >= 4 * 30
    # Comparing asks every case twice: of the stable version, then of the candidate.
    compared = deadline_s(replace(args, max_regression=0))
    assert compared >= 2 * 4 * 30 and compared - deadline_s(args) == 4 * 30


# The regression gate: the canary compared with the stable version, and the shadow gated before its mirror.

def _compared(config: dict) -> None:
    [model] = [m for m in config["neurodock:models"] if m["name"] == MODEL]
    model["canary"].update(evalSuite=SUITE, evalCompareStable=True, evalMaxRegression=1)
    model["shadow"].update(evalSuite=SUITE, evalCompareStable=True)


@pytest.fixture(scope="module")
def compared_plan(tmp_path_factory):
    return plan_in(tmp_path_factory.mktemp("compare"), "prod", _compared, name="prod")


def _job_of(plan, version: str):
    [job] = [j for j in _eval_jobs(plan) if j.name == f"{version}-eval-job"]
    return job


def _url(plan, service: str) -> str:
    svc = _one(plan, "kubernetes:core/v1:Service", service).manifest
    return (f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local:"
            f"{svc['spec']['ports'][0]['port']}")


@pytest.mark.parametrize(("version", "max_regression"), [(f"{MODEL}-canary", "1"), (f"{MODEL}-shadow", "0")])
def test_a_compared_gate_asks_its_own_service_and_the_stable_one(compared_plan, version, max_regression):
    job = _job_of(compared_plan, version)
    command = job.manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--base-url") + 1] == _url(compared_plan, f"{version}-svc")
    assert command[command.index("--baseline-url") + 1] == _url(compared_plan, f"{MODEL}-svc")
    assert _url(compared_plan, f"{version}-svc") != _url(compared_plan, f"{MODEL}-svc")
    assert command[command.index("--max-regression") + 1] == max_regression
    # It asks the stable version too, so it waits for that server as well as its own.
    deps = job.options["dependsOn"]
    assert _one(compared_plan, "kubernetes:apps/v1:Deployment", f"{version}-server").urn in deps
    assert _one(compared_plan, "kubernetes:apps/v1:Deployment", f"{MODEL}-server").urn in deps


def test_the_uncompared_gate_carries_no_baseline(gated_plan):
    [job] = _eval_jobs(gated_plan)
    command = job.manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--baseline-url" not in command and "--max-regression" not in command


def test_the_shadows_mirror_waits_for_its_gate(compared_plan):
    route = _one(compared_plan, "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", f"{MODEL}-route")
    mirrors = [f["requestMirror"] for rule in route.manifest["spec"]["rules"] for f in rule.get("filters", [])
               if f["type"] == "RequestMirror"]
    shadow_svc = _one(compared_plan, "kubernetes:core/v1:Service", f"{MODEL}-shadow-svc").manifest["metadata"]["name"]
    # The mirror lives in this route, so the route's dependency is the mirror's.
    assert mirrors and all(m["backendRef"]["name"] == shadow_svc for m in mirrors)
    assert _job_of(compared_plan, f"{MODEL}-shadow").urn in route.options["dependsOn"]
    assert _job_of(compared_plan, f"{MODEL}-canary").urn in route.options["dependsOn"]


def test_the_stable_version_admits_only_the_comparing_gates(compared_plan, gated_plan):
    def admitted(plan, policy: str, version: str) -> bool:
        pod_labels = _job_of(plan, version).manifest["spec"]["template"]["metadata"]["labels"]
        manifest = _one(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", policy).manifest
        peers = [p for rule in manifest["spec"].get("ingress", []) for p in rule["from"]]
        return any("podSelector" in p and p["podSelector"]["matchLabels"].items() <= pod_labels.items()
                   for p in peers)

    for version in (f"{MODEL}-canary", f"{MODEL}-shadow"):
        assert admitted(compared_plan, f"{MODEL}-ingress", version)
        assert admitted(compared_plan, f"{version}-ingress", version)
    assert not admitted(compared_plan, f"{MODEL}-canary-ingress", f"{MODEL}-shadow")
    assert not admitted(gated_plan, f"{MODEL}-ingress", f"{MODEL}-canary")


def test_a_compared_gate_is_pod_security_restricted(compared_plan):
    found = run_policies(compared_plan, [p for p in POLICIES if p.name in ("pod-security-restricted", "images-pinned",
                                                                           "container-resources")])
    assert [v for v in found if "-eval" in v.message] == []


@pytest.mark.parametrize(("variant", "settings", "key", "says"), [
    ("canary", {"evalCompareStable": True}, "canary.evalCompareStable", "only applies with"),
    ("shadow", {"evalMaxRegression": 2}, "shadow.evalMaxRegression", "only applies with"),
    ("canary", {"evalSuite": SUITE, "evalMaxRegression": 2}, "canary.evalMaxRegression", "evalCompareStable: true"),
    ("shadow", {"evalSuite": "evals/no-such-suite.json"}, "shadow.evalSuite", "cannot read"),
    ("shadow", {"evalSuite": SUITE, "evalCompareStable": True, "evalMaxRegression": -1}, "shadow.evalMaxRegression",
     "greater than or equal to 0"),
])
def test_a_bad_comparison_is_refused_naming_the_key(write_stack, variant, settings, key, says):
    document = stack_document("prod")
    [model] = [m for m in document["config"]["neurodock:models"] if m["name"] == MODEL]
    model[variant].update(settings)
    with pytest.raises(ConfigError) as caught:
        validate(load_stack_file("test", write_stack(document)))
    assert f"neurodock:models[0].{key}" in str(caught.value) and says in str(caught.value), str(caught.value)

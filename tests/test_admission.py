"""CEL admission offline: the CRDs' ``x-kubernetes-validations`` rules and ValidatingAdmissionPolicies judge
every object of a plan as the API server would on create (``infra.plan.admission``).

One rule per API group NeuroDock creates custom resources of, each broken once in a planned object and
reported with the rule's own message, beside a control that passes; and a plan that renders an object the
API server would refuse stops, naming it.
"""

from __future__ import annotations

import copy

import pytest

from infra import charts
from infra.cli import main
from infra.plan import admission
from infra.plan.admission import Finding, admission_findings, defaulted


@pytest.fixture(scope="module")
def prod_objects(shipped_plans) -> list[dict]:
    plan = shipped_plans["prod"]
    return [r.manifest for r in plan.manifests] + [o.manifest for o in plan.chart_objects]


def judged(objects: list[dict], kind: str, change) -> tuple[list[Finding], list[Finding]]:
    """The findings on a copy of the first ``kind`` object after ``change``, and on the untouched one."""
    [original] = [o for o in objects if o.get("kind") == kind][:1]
    broken = copy.deepcopy(original)
    change(broken)
    crds = [o for o in objects if o.get("kind") == "CustomResourceDefinition"]
    return admission_findings([*crds, broken]), admission_findings([*crds, original])


def test_the_shipped_stacks_pass_admission_and_rules_are_evaluated(shipped_plans, monkeypatch):
    monkeypatch.setenv(charts.RENDER_CACHE_ENV, "off")  # evaluated here, not read back from an earlier run
    evaluated = []
    real = admission._evaluate
    monkeypatch.setattr(admission, "_evaluate", lambda rule, act: evaluated.append(rule) or real(rule, act))
    for stack in ("dev", "staging", "prod"):
        plan = shipped_plans[stack]
        objects = [r.manifest for r in plan.manifests] + [o.manifest for o in plan.chart_objects]
        assert admission_findings(objects) == []
    assert len(evaluated) > 200  # the rules do run: an index that found no CRD would pass everything


def test_gateway_api_a_route_rule_name_twice_is_refused(prod_objects):
    def twice(route):
        for rule in route["spec"]["rules"]:
            rule["name"] = "same"
    broken, control = judged(prod_objects, "HTTPRoute", twice)
    assert control == []
    assert [(f.kind, f.field, f.message) for f in broken][:1] == [
        ("HTTPRoute", "spec.rules", "Rule name must be unique within the route")]


def test_envoy_gateway_a_policy_with_both_target_forms_is_refused(prod_objects):
    def both(policy):
        policy["spec"]["targetRef"] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "x"}
        policy["spec"]["targetRefs"] = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "x"}]
    broken, control = judged(prod_objects, "ClientTrafficPolicy", both)
    assert control == []
    assert "either targetRef or targetRefs must be used" in [f.message for f in broken]


def test_inference_extension_a_pool_port_twice_is_refused(prod_objects):
    broken, control = judged(prod_objects, "InferencePool",
                             lambda pool: pool["spec"]["targetPorts"].append({"number": 8000}))
    assert control == []
    assert [(f.field, f.message) for f in broken] == [("spec.targetPorts", "port number must be unique")]


def test_prometheus_operator_a_rolling_update_without_its_type_is_refused(prod_objects):
    def strategy(prometheus):
        prometheus["spec"]["updateStrategy"] = {"type": "OnDelete", "rollingUpdate": {"maxUnavailable": 1}}
    broken, control = judged(prod_objects, "Prometheus", strategy)
    assert control == []
    assert [f.message for f in broken] == ["rollingUpdate requires type to be RollingUpdate"]


def test_a_transition_rule_does_not_run_on_create_and_defaults_apply_first():
    crd = {"kind": "CustomResourceDefinition", "metadata": {"name": "things.example.com"},
           "spec": {"group": "example.com", "names": {"kind": "Thing", "plural": "things"}, "versions": [
               {"name": "v1", "served": True, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                   "spec": {"type": "object", "properties": {"mode": {"type": "string", "default": "a"}},
                            "x-kubernetes-validations": [
                                {"rule": "self.mode == oldSelf.mode", "message": "immutable"},
                                {"rule": "self.mode == 'a'", "message": "mode must be a"}]}}}}}]}}
    thing = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {}}
    assert admission_findings([crd, thing]) == []  # defaulted to 'a'; the transition rule skipped
    assert defaulted(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], thing)["spec"] == {"mode": "a"}
    thing["spec"]["mode"] = "b"
    assert [f.message for f in admission_findings([crd, thing])] == ["mode must be a"]


def test_a_rule_needing_a_library_not_provided_is_reported_not_passed():
    crd = {"kind": "CustomResourceDefinition", "metadata": {"name": "things.example.com"},
           "spec": {"group": "example.com", "names": {"kind": "Thing", "plural": "things"}, "versions": [
               {"name": "v1", "served": True, "schema": {"openAPIV3Schema": {
                   "type": "object", "x-kubernetes-validations": [{"rule": "self.metadata.name.base64() != ''"}]}}}]}}
    [finding] = admission_findings([crd, {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}])
    assert not finding.evaluated and "base64 is not provided offline" in finding.message


def test_a_validating_admission_policy_judges_what_it_matches():
    policy = {"kind": "ValidatingAdmissionPolicy", "metadata": {"name": "no-latest"}, "spec": {
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": [
            "deployments"], "operations": ["CREATE", "UPDATE"]}]},
        "validations": [{"expression": "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))",
                         "message": "images must be pinned"}]}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
                  "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.29"}]}}}}
    assert admission_findings([policy, deployment]) == []
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:latest"
    [finding] = admission_findings([policy, deployment])
    assert (finding.name, finding.message, finding.source) == ("n/d", "images must be pinned", "no-latest")


def test_a_plan_whose_objects_the_api_server_would_refuse_stops_naming_them(monkeypatch, capsys):
    from infra import routing

    values = routing.picker_values

    def duplicate_port(*args, **kwargs):
        out = values(*args, **kwargs)
        ports = out["router"]["modelServers"]["targetPorts"]
        ports.append(dict(ports[0]))
        return out

    monkeypatch.setattr(routing, "picker_values", duplicate_port)
    assert main(["plan", "dev"]) == 1
    err = capsys.readouterr().err
    assert "the API server would refuse these objects on create" in err
    assert "InferencePool 'neurodock-serving/" in err and "spec.targetPorts: port number must be unique" in err


def test_envoy_gateways_upgrade_policy_admits_its_crds_and_refuses_an_older_gateway_api(shipped_plans):
    """gateway-helm v1.8.3 installs a ValidatingAdmissionPolicy that refuses Gateway API CRDs older than v1.5
    (charts/crds/templates/gatewayapi-safe-upgrade-policy.yaml): the CRDs the program applies pass it, and a
    rollback to v1.7.0's v1.4.1 bundle would be refused by the API server."""
    plan = shipped_plans["dev"]
    [policy] = [o.manifest for o in plan.chart_objects if o.kind == "ValidatingAdmissionPolicy"]
    crds = [r.manifest for r in plan.resources if r.type.endswith("CustomResourceDefinitionPatch")]
    routes = next(c for c in crds if c["metadata"]["name"] == "httproutes.gateway.networking.k8s.io")
    assert routes["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == "v1.5.1"
    assert admission_findings([policy, *crds]) == []
    older = copy.deepcopy(routes)
    older["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = "v1.4.1"
    [finding] = admission_findings([policy, older])
    assert finding.source == "safe-upgrades.gateway.networking.k8s.io"
    assert finding.message.startswith("Installing CRDs with version before v1.5.0 is prohibited by default")


def test_a_policy_sees_the_fields_it_reads_and_the_whole_object_when_it_cannot_tell():
    from infra.plan.admission import _paths_read, _pruned

    crd = {"kind": "CustomResourceDefinition", "spec": {"group": "g", "versions": [{"name": "v1"}]},
           "metadata": {"name": "n", "annotations": {"a": "b"}}}
    read = _paths_read("object.spec.group != 'g' || (has(object.metadata.annotations) && "
                       "object.metadata.annotations.exists(k, k == 'a') && object.metadata.annotations['a'] == 'b')",
                       "object")
    assert _pruned(crd, read) == {"spec": {"group": "g"}, "metadata": {"annotations": {"a": "b"}}}
    # A macro over a field keeps that field whole; oldObject is another variable.
    assert _paths_read("object.spec.versions.all(v, v.name != '') && oldObject == null", "object") == [
        ("spec", "versions")]
    # The object whole, indexed, or optionally selected: nothing is pruned.
    for expression in ("object == null", "object['spec'] != null", "object.?spec.hasValue()", "size(object) > 0"):
        assert _pruned(crd, _paths_read(expression, "object")) == crd, expression


def test_evaluations_are_stored_per_object_and_an_object_changed_is_evaluated_again(prod_objects, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv(charts.RENDER_CACHE_ENV, str(tmp_path))
    evaluated = []
    real = admission._evaluate
    monkeypatch.setattr(admission, "_evaluate", lambda rule, act: evaluated.append(rule) or real(rule, act))
    crds = [o for o in prod_objects if o.get("kind") == "CustomResourceDefinition"]
    [route] = [o for o in prod_objects if o.get("kind") == "HTTPRoute"][:1]
    first = admission_findings([*crds, route])
    assert evaluated and first == []
    evaluated.clear()
    assert admission_findings([*crds, route]) == first
    assert evaluated == []  # every result read back
    broken = copy.deepcopy(route)
    for rule in broken["spec"]["rules"]:
        rule["name"] = "same"
    findings = admission_findings([*crds, broken])
    assert evaluated  # a changed object is judged anew, with the same result as without the store
    monkeypatch.setenv(charts.RENDER_CACHE_ENV, "off")
    assert findings == admission_findings([*crds, broken]) != []

"""Every Kubernetes object a plan renders, NeuroDock's own and the Helm charts', is valid against the
official schemas (strict: no unknown fields) for the stack's Kubernetes version, custom resources
against the real CRDs of the pinned charts, and is the object the provider would send."""

from __future__ import annotations

from collections import Counter
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from components.labels import NAME
from infra.plan.render import manifest_files
from tests.conftest import SHIPPED_STACKS, alert_rule, model_servers

CHANNEL_DEFAULT = "1.35"
"""GKE stacks without kubernetesVersion run the release channel's default; validated against 1.35, in GKE
standard support at the time of these pins (docs/upstream.md)."""


def problems(obj: dict[str, Any], version: str, crd_schemas: dict) -> list[str]:
    """Why ``obj`` is invalid: against its CRD for a custom kind, else the official schema (a kind
    with neither makes kubernetes-validate raise SchemaNotFoundError, failing the test)."""
    custom = crd_schemas.get((obj["apiVersion"], obj["kind"]))
    validator = jsonschema.Draft7Validator(custom) if custom is not None else None
    if validator is not None:
        return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_manifest_passes_strict_schema_validation(shipped_plans, crd_schemas, stack):
    plan = shipped_plans[stack]
    version = plan.config.cloud.kubernetes_version or CHANNEL_DEFAULT
    manifests = plan.manifests
    assert len(manifests) >= 4
    failures = [f"{r.urn}: {p}" for r in manifests for p in problems(r.manifest, version, crd_schemas)]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_chart_object_passes_strict_schema_validation(shipped_plans, crd_schemas, stack):
    plan = shipped_plans[stack]
    version = plan.config.cloud.kubernetes_version or CHANNEL_DEFAULT
    objects = [o for o in plan.chart_objects if o.kind != "CustomResourceDefinition"]
    assert {r.name for r in plan.releases} >= {"kps", "keda", "envoy-gateway"} and len(objects) > 100
    failures = [f"{o.urn}: {p}" for o in objects for p in problems(o.manifest, version, crd_schemas)]
    assert not failures, "\n".join(failures)


def test_custom_kinds_come_from_the_pinned_charts_crds(crd_schemas):
    # The kinds NeuroDock creates, each from its chart (or release) CRD.
    assert {("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
            ("keda.sh/v1alpha1", "ScaledObject"), ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"), ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"),
            ("inference.networking.k8s.io/v1", "InferencePool")} <= set(crd_schemas)


def test_custom_resource_schema_rejects_an_unknown_field(shipped_plans, crd_schemas):
    rule = alert_rule(shipped_plans["staging"])
    assert problems(rule, "1.33", crd_schemas) == []
    broken = {**rule, "spec": {"groups": [{**rule["spec"]["groups"][0], "interval_": "1m"}]}}
    assert any("interval_" in p for p in problems(broken, "1.33", crd_schemas))


def test_crd_schema_keeps_its_own_constraints(shipped_plans, crd_schemas):
    """Not only unknown fields: the CRD's types and patterns hold (a duration that is not one)."""
    [monitor] = [r.manifest for r in shipped_plans["staging"].manifests if r.manifest["kind"] == "ServiceMonitor"][:1]
    broken = {**monitor, "spec": {**monitor["spec"], "endpoints": [
        {**monitor["spec"]["endpoints"][0], "interval": "fifteen seconds"}]}}
    assert any("interval" in p for p in problems(broken, "1.33", crd_schemas))


def test_strict_validation_rejects_an_unknown_field(shipped_plans):
    """The check above can fail: a misspelt field is caught."""
    [deployment] = model_servers(shipped_plans["dev"])
    broken = {**deployment.manifest, "spec": {**deployment.manifest["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33", strict=True)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_manifests_are_what_the_provider_sends(shipped_plans, stack):
    for r in shipped_plans[stack].manifests:
        obj = r.manifest
        # A Patch resource (server-side apply of an object it may not own) sends the object's own kind.
        assert obj["apiVersion"] and obj["kind"] == r.type.rsplit(":", 1)[1].removesuffix("Patch")
        metadata = obj["metadata"]
        assert metadata["name"], r.urn
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "pulumi"
        if metadata.get("annotations", {}).get("pulumi.com/autonamed") == "true":
            assert metadata["name"].startswith(r.name + "-")


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_no_two_objects_share_kind_namespace_and_name(shipped_plans, stack):
    plan = shipped_plans[stack]
    keys = Counter(
        [(r.manifest["kind"], r.manifest["metadata"].get("namespace"), r.manifest["metadata"]["name"])
         for r in plan.manifests]
        + [(o.kind, o.namespace, o.object_name) for o in plan.chart_objects]
    )
    assert [k for k, n in keys.items() if n > 1] == []
    assert len(manifest_files(plan)) == len(plan.manifests)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_serving_pods_are_hardened(shipped_plans, stack):
    deployments = [r.manifest for r in shipped_plans[stack].manifests if r.manifest["kind"] == "Deployment"]
    assert deployments
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        # Only the body-based router (it watches its ConfigMaps) and the endpoint pickers (their pool and its
        # pods) talk to the Kubernetes API.
        talks = (d["metadata"]["labels"].get(NAME) == "body-based-router"
                 or d["metadata"]["labels"].get("app.kubernetes.io/component") == "endpoint-picker")
        assert pod["automountServiceAccountToken"] is talks
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "@sha256:" in c["image"] or ":" in c["image"].rsplit("/", 1)[-1], "image must be pinned"
            assert not c["image"].endswith(":latest")

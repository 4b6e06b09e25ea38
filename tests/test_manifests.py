"""Every Kubernetes object a plan renders is valid against the official schemas (strict: no unknown
fields) for the stack's Kubernetes version, and is the object the provider would send."""

from __future__ import annotations

from collections import Counter

import jsonschema
import kubernetes_validate
import pytest

from components.labels import NAME
from infra.plan.render import manifest_files
from tests.conftest import SHIPPED_STACKS, model_servers
from tests.crd_schemas import SCHEMAS


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_manifest_passes_strict_schema_validation(shipped_plans, stack):
    plan = shipped_plans[stack]
    version = plan.config.cloud.kubernetes_version
    manifests = plan.manifests
    assert len(manifests) >= 4
    failures = []
    for r in manifests:
        # Built-in kinds have official schemas; a custom kind without a schema here makes
        # kubernetes-validate raise SchemaNotFoundError, failing the test.
        custom = SCHEMAS.get((r.manifest["apiVersion"], r.manifest["kind"]))
        try:
            if custom is not None:
                jsonschema.validate(r.manifest, custom)
            else:
                kubernetes_validate.validate(r.manifest, version, strict=True)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            failures.append(f"{r.urn}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_custom_resource_schema_rejects_an_unknown_field(shipped_plans):
    [rule] = [r.manifest for r in shipped_plans["staging"].manifests if r.manifest["kind"] == "PrometheusRule"]
    broken = {**rule, "spec": {"groups": [{**rule["spec"]["groups"][0], "interval_": "1m"}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMAS[("monitoring.coreos.com/v1", "PrometheusRule")])


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
        assert obj["apiVersion"] and obj["kind"] == r.type.rsplit(":", 1)[1]
        metadata = obj["metadata"]
        assert metadata["name"], r.urn
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "pulumi"
        if metadata.get("annotations", {}).get("pulumi.com/autonamed") == "true":
            assert metadata["name"].startswith(r.name + "-")


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_no_two_objects_share_kind_namespace_and_name(shipped_plans, stack):
    keys = Counter(
        (r.manifest["kind"], r.manifest["metadata"].get("namespace"), r.manifest["metadata"]["name"])
        for r in shipped_plans[stack].manifests
    )
    assert [k for k, n in keys.items() if n > 1] == []
    assert len(manifest_files(shipped_plans[stack])) == len(shipped_plans[stack].manifests)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_serving_pods_are_hardened(shipped_plans, stack):
    deployments = [r.manifest for r in shipped_plans[stack].manifests if r.manifest["kind"] == "Deployment"]
    assert deployments
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        # Only the body-based router talks to the Kubernetes API (it watches its ConfigMaps).
        assert pod["automountServiceAccountToken"] is (d["metadata"]["labels"][NAME] == "body-based-router")
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "@sha256:" in c["image"] or ":" in c["image"].rsplit("/", 1)[-1], "image must be pinned"
            assert not c["image"].endswith(":latest")

"""model-server-probes: a model server has a startup probe (loading weights takes minutes) and a
readiness probe (no traffic before it answers)."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from neurodock_policies.support import describe, is_model_server, pod_spec

NAME = "model-server-probes"


def check(resource_type, props, name) -> list[str]:
    if not is_model_server(resource_type, props):
        return []
    pod = pod_spec(resource_type, props) or {}
    out = []
    for c in pod.get("containers") or []:
        missing = [p for p in ("startupProbe", "readinessProbe") if not c.get(p)]
        if missing:
            out.append(f"{describe(resource_type, props, name)} container '{c.get('name')}' has no "
                       f"{' and no '.join(missing)}; add a startup probe sized to the model-load time and a "
                       "readiness probe on the server's health endpoint.")
    return out


def _validate(args: ResourceValidationArgs, report) -> None:
    for message in check(args.resource_type, args.props, args.name):
        report(message)


POLICY = ResourceValidationPolicy(
    name=NAME,
    description="Model servers have startup and readiness probes.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate,
)

"""model-server-probes: a model server has a startup probe (loading weights takes minutes) and a
readiness probe (no traffic before it answers)."""

from __future__ import annotations

from neurodock_policies.support import describe, is_model_server, pod_spec, resource_policy

NAME = "model-server-probes"


def check(resource_type, props, name, config) -> list[str]:
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


POLICY = resource_policy(
    NAME,
    "Model servers have startup and readiness probes.",
    check,
)

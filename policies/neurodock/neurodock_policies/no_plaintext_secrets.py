"""no-plaintext-secrets: no secret in a container's literal env value, in a ConfigMap, or in a
plain (non-secret) stack output. Names that say secret, and values shaped like well-known tokens and
keys, both count."""

from __future__ import annotations

import re

from pulumi_policy import PolicyConfigSchema

from neurodock_policies.support import SECRET, all_containers, describe, known, pod_spec, stack_policy

NAME = "no-plaintext-secrets"
DEFAULT_SECRET_NAME_PATTERN = r"(password|passwd|secret|token|api[-_]?key|private[-_]?key|credentials?)$"
CONFIG_SCHEMA = PolicyConfigSchema(properties={
    "secretNamePattern": {
        "type": "string", "format": "regex", "default": DEFAULT_SECRET_NAME_PATTERN,
        "description": "Env vars, ConfigMap keys and outputs whose names match this (case-insensitive) "
                       "hold secrets."}})
SECRET_VALUE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bhf_[A-Za-z0-9]{30,}|\bsk-[A-Za-z0-9_-]{20,}"
                          r"|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}")


def check(resources, config) -> list[tuple[str, str]]:
    secret_name = re.compile(config["secretNamePattern"], re.I)

    def _looks_secret(name: str, value: object) -> bool:
        if not known(value) or not isinstance(value, str) or not value:
            return False
        return bool(secret_name.search(name)) or bool(SECRET_VALUE.search(value))

    out = []
    for r in resources:
        what = describe(r.resource_type, r.props, r.name)
        pod = pod_spec(r.resource_type, r.props)
        for c in all_containers(pod) if pod else []:
            for env in c.get("env") or []:
                if "value" in env and _looks_secret(str(env.get("name", "")), env.get("value")):
                    out.append((r.urn, f"{what} container '{c.get('name')}' puts a secret in plain text in env "
                                       f"'{env.get('name')}'; read it from a Secret with valueFrom.secretKeyRef."))
        if r.resource_type == "kubernetes:core/v1:ConfigMap":
            for key, value in (r.props.get("data") or {}).items():
                if _looks_secret(key, value):
                    out.append((r.urn, f"{what} holds a secret in key '{key}'; move it to a Secret."))
        if r.resource_type == "pulumi:pulumi:Stack":
            for key, value in (r.props or {}).items():
                if value != SECRET and _looks_secret(key, value):
                    out.append((r.urn, f"Stack output '{key}' is a secret in plain text; export it with "
                                       "pulumi.Output.secret(...)."))
    return out


POLICY = stack_policy(
    NAME,
    "No plaintext secrets in env vars, ConfigMaps or stack outputs.",
    check,
    config_schema=CONFIG_SCHEMA,
)

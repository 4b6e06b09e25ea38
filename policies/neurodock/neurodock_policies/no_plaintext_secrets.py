"""no-plaintext-secrets: no secret in a container's literal env value or command line, in a ConfigMap, in
a resource's tags, labels or annotations, or in a plain (non-secret) stack output. Names that say secret,
flags that take one (``--api-key``), and values shaped like well-known tokens and keys all count.

A stack output is judged by whether it is a Pulumi secret (``neurodock_policies.secrets.is_secret``; a
redacted ``[secret]`` offline), not by its text: the engine hands policies a secret's plaintext. A Pulumi
secret written into an env value, a command line or a tag is still plain text there, so those are judged
by name and shape whatever they came from."""

from __future__ import annotations

import re

from pulumi_policy import PolicyConfigSchema

from neurodock_policies.secret_shapes import secret_args, secret_shape
from neurodock_policies.secrets import is_secret
from neurodock_policies.support import SECRET, all_containers, describe, fields, known, pod_spec, stack_policy

NAME = "no-plaintext-secrets"
DEFAULT_SECRET_NAME_PATTERN = r"(password|passwd|secret|token|api[-_]?key|private[-_]?key|credentials?)$"
CONFIG_SCHEMA = PolicyConfigSchema(properties={
    "secretNamePattern": {
        "type": "string", "format": "regex", "default": DEFAULT_SECRET_NAME_PATTERN,
        "description": "Env vars, ConfigMap keys and outputs whose names match this (case-insensitive) "
                       "hold secrets."}})
TAG_KEYS = frozenset({"tags", "tagsAll", "labels", "resourceLabels", "userLabels", "annotations"})
"""Props that hold a resource's tags (AWS), labels (GCP, Kubernetes) or annotations, at any depth."""


def check(resources, config) -> list[tuple[str, str]]:
    secret_name = re.compile(config["secretNamePattern"], re.I)

    def _looks_secret(name: str, value: object) -> bool:
        if not known(value) or not isinstance(value, str) or not value:
            return False
        return bool(secret_name.search(name)) or secret_shape(value) is not None

    out = []
    for r in resources:
        what = describe(r.resource_type, r.props, r.name)
        pod = pod_spec(r.resource_type, r.props)
        for c in all_containers(pod) if pod else []:
            for env in c.get("env") or []:
                if "value" in env and _looks_secret(str(env.get("name", "")), env.get("value")):
                    out.append((r.urn, f"{what} container '{c.get('name')}' puts a secret in plain text in env "
                                       f"'{env.get('name')}'; read it from a Secret with valueFrom.secretKeyRef."))
            for field in ("command", "args"):
                items = [a if known(a) and isinstance(a, str) else "" for a in c.get(field) or []]
                for i, secret in secret_args(items):
                    out.append((r.urn, f"{what} container '{c.get('name')}' has {secret} in plain text in "
                                       f"{field}[{i}]; pass it from a Secret through an env var "
                                       "(valueFrom.secretKeyRef) and reference it as $(VAR)."))
        for where, key, value in _tags(r.props):
            secret = secret_shape(key) or (secret_shape(value) if known(value) and isinstance(value, str) else None)
            if secret is not None:
                out.append((r.urn, f"{what} has {secret} in plain text in {where} '{key}'; tags, labels and "
                                   "annotations are readable by anyone who may read the resource: move it to a "
                                   "secret."))
        if r.resource_type == "kubernetes:core/v1:ConfigMap":
            for key, value in fields(r.props.get("data")).items():
                if _looks_secret(key, value):
                    out.append((r.urn, f"{what} holds a secret in key '{key}'; move it to a Secret."))
        if r.resource_type == "pulumi:pulumi:Stack":
            for key, value in (r.props or {}).items():
                if value != SECRET and not is_secret(value) and _looks_secret(key, value):
                    out.append((r.urn, f"Stack output '{key}' is a secret in plain text; export it with "
                                       "pulumi.Output.secret(...)."))
    return out


def _tags(props: object, where: str = "") -> list[tuple[str, str, object]]:
    """``(field, key, value)`` of every tag, label and annotation in ``props``."""
    out: list[tuple[str, str, object]] = []
    if isinstance(props, dict):
        for field, value in props.items():
            if field in TAG_KEYS and isinstance(value, dict):
                out.extend((f"{where}{field}", str(k), v) for k, v in value.items())
            else:
                out.extend(_tags(value, f"{where}{field}."))
    elif isinstance(props, list):
        for item in props:
            out.extend(_tags(item, where))
    return out


POLICY = stack_policy(
    NAME,
    "No plaintext secrets in env vars, command lines, ConfigMaps, tags, labels, annotations or stack outputs.",
    check,
    config_schema=CONFIG_SCHEMA,
)

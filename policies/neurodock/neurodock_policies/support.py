"""What every policy needs: reading workload pod specs from resource inputs, naming resources in
messages, and treating values not known at preview as unknown rather than as violations.

Under CrossGuard, pulumi-policy hands a policy its properties as read-only ``Mapping`` and ``Sequence``
proxies (pulumi_policy 1.21.0 ``proxy.py``), not ``dict`` and ``list``, and reading an unknown value
through them raises ``UnknownValueError``, which reports the whole policy as advisory for that run
(``policy.py``, ``Analyze``/``AnalyzeStack``): one unknown namespace on a first preview would silence a
mandatory stack policy for every resource. So each policy gets plain ``dict``/``list`` copies (``plain``)
where an unknown is the string ``"[unknown]"``, as in the offline plan (where a redacted secret is
``"[secret]"``); ``known`` covers both, so a policy never fires on a value it cannot see, and judges the
rest. Which of the pack's findings a first preview cannot see, ``neurodock check`` reports.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import _DictProxy, _is_unknown, _ListProxy

UNKNOWN = "[unknown]"
SECRET = "[secret]"

POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
MODEL_SERVER = "model-server"
"""``app.kubernetes.io/name`` of NeuroDock's model servers."""
GPU_RESOURCE = "nvidia.com/gpu"
PRODUCTION_ENVIRONMENTS = ["prod"]
PRODUCTION_SCHEMA = PolicyConfigSchema(properties={
    "productionEnvironments": {"type": "array", "items": {"type": "string"}, "default": PRODUCTION_ENVIRONMENTS}})
"""Config of the prod-only policies: which ``neurodock:environment`` values are production."""

ResourceCheck = Callable[[str, Mapping[str, Any], str, Mapping[str, Any]], Iterable[str]]
"""``check(resource_type, props, name, config)``: one message per violation."""
StackCheck = Callable[[list, Mapping[str, Any]], Iterable[tuple[str, str]]]
"""``check(resources, config)``: ``(urn, message)`` per violation."""


def resource_policy(name: str, description: str, check: ResourceCheck,
                    level: EnforcementLevel = EnforcementLevel.MANDATORY,
                    config_schema: PolicyConfigSchema | None = None) -> ResourceValidationPolicy:
    """A CrossGuard resource policy reporting every message ``check`` returns for a resource."""

    def validate(args, report) -> None:
        for message in check(args.resource_type, plain(args.props), args.name, with_defaults(config_schema, args)):
            report(message)

    return ResourceValidationPolicy(name=name, description=description, enforcement_level=level,
                                    validate=validate, config_schema=config_schema)


def stack_policy(name: str, description: str, check: StackCheck,
                 level: EnforcementLevel = EnforcementLevel.MANDATORY,
                 config_schema: PolicyConfigSchema | None = None) -> StackValidationPolicy:
    """A CrossGuard stack policy reporting every ``(urn, message)`` ``check`` returns."""

    def validate(args, report) -> None:
        try:
            for urn, message in check([plain_resource(r) for r in args.resources],
                                      with_defaults(config_schema, args)):
                report(message, urn)
        except NotApplicable as exc:
            args.not_applicable(exc.reason)

    return StackValidationPolicy(name=name, description=description, enforcement_level=level,
                                 validate=validate, config_schema=config_schema)


class NotApplicable(Exception):
    """Raised by a stack check that cannot judge what it is shown: the pack reports the policy as not
    applicable, with the reason (pulumi-policy ``StackValidationArgs.not_applicable``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PlainDict(dict):
    """A mapping ``plain`` made: plain all the way down already."""


def plain(value: Any) -> Any:
    """``value`` as plain ``dict``, ``list`` and scalars: pulumi-policy's proxies unwrapped (their
    ``"__target"``) and each unknown sentinel the string ``"[unknown]"``. Secret marks survive
    (``neurodock_policies.secrets``). Under the pack's own process values arrive plain already
    (``neurodock_policies.pack``), and so they do offline: those are returned as they are."""
    if isinstance(value, PlainDict):
        return value
    if isinstance(value, (_DictProxy, _ListProxy)):
        value = value["__target"]
    if isinstance(value, Mapping):
        return PlainDict((k, plain(v)) for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    if _is_unknown(value):
        return UNKNOWN
    return value


def plain_resource(resource: Any) -> Any:
    """A stack policy's resource with plain properties (``plain``)."""
    out = copy.copy(resource)
    out.props = plain(resource.props)
    return out


def schema_defaults(schema: PolicyConfigSchema | None) -> dict[str, Any]:
    """The ``default`` of each property the schema declares."""
    properties = getattr(schema, "properties", None) or {}
    return {k: v["default"] for k, v in properties.items() if isinstance(v, dict) and "default" in v}


def with_defaults(schema: PolicyConfigSchema | None, args) -> dict[str, Any]:
    """The policy's config with the schema's defaults filled in: the engine sends none at all for
    a policy nobody configured, so checks never carry defaults of their own."""
    return {**schema_defaults(schema), **(args.get_config() or {})}


def known(value: Any) -> bool:
    return value is not None and value not in (UNKNOWN, SECRET)


def fields(value: Any) -> Mapping[str, Any]:
    """``value`` where it is a mapping, else ``{}``: an unset or unknown mapping holds nothing to judge yet."""
    return value if isinstance(value, Mapping) else {}


def entries(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of the list ``value``: an unset or unknown list, or an unknown element, holds nothing to judge
    yet. Where a verdict needs every element (that one of them tolerates a taint, say), ask ``all_known`` first."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def all_known(value: Any, *, secrets: bool = True) -> bool:
    """Nothing unknown in ``value``, however deep. A redacted secret counts as known (it is there) unless
    ``secrets`` is false, for a check that reads the values themselves."""
    if isinstance(value, Mapping):
        return all(all_known(v, secrets=secrets) for v in value.values())
    if isinstance(value, list):
        return all(all_known(v, secrets=secrets) for v in value)
    return value != UNKNOWN and (secrets or value != SECRET)


def dig(props: Mapping[str, Any] | None, *path: str | int, default: Any = None) -> Any:
    """The value at ``path``, ``default`` where it is unset, and ``"[unknown]"`` where the path runs through a value
    not known yet: what lies under an unknown is unknown, not unset."""
    node: Any = props
    for key in path:
        if node == UNKNOWN:
            return UNKNOWN
        in_list = isinstance(node, list) and isinstance(key, int) and key < len(node)
        if (isinstance(node, Mapping) and key in node) or in_list:
            node = node[key]
        else:
            return default
    return node


def kind_of(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def describe(resource_type: str, props: Mapping[str, Any], name: str) -> str:
    """``Deployment 'neurodock-serving/llama-server-1a2b'``: what a message calls the resource."""
    metadata = props.get("metadata") if isinstance(props, Mapping) else None
    if resource_type.startswith("kubernetes:") and isinstance(metadata, Mapping):
        shown = metadata.get("name") if known(metadata.get("name")) else name
        namespace = metadata.get("namespace")
        return f"{kind_of(resource_type)} '{namespace + '/' if known(namespace) else ''}{shown}'"
    return f"{kind_of(resource_type)} '{name}'"


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(resource_type)
    if path is None:
        return None
    spec = dig(props, *path)
    return spec if isinstance(spec, Mapping) else None


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | str:
    """The pod template's labels; ``"[unknown]"`` while they are not known."""
    path = POD_SPEC_PATHS.get(resource_type)
    if path is None:
        return {}
    labels = dig(props, *path[:-1], "metadata", "labels") if len(path) > 1 else dig(props, "metadata", "labels")
    if labels == UNKNOWN:
        return UNKNOWN
    return labels if isinstance(labels, Mapping) else {}


def all_containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in (pod.get(key) or []) if isinstance(c, Mapping)]


def is_model_server(resource_type: str, props: Mapping[str, Any]) -> bool:
    return (resource_type == "kubernetes:apps/v1:Deployment"
            and dig(props, "metadata", "labels", "app.kubernetes.io/name") == MODEL_SERVER)


def gpu_count(container: Mapping[str, Any], where: str) -> int:
    value = dig(container, "resources", where, GPU_RESOURCE)
    try:
        return int(value) if known(value) else 0
    except (TypeError, ValueError):
        return 0


def environment_of(props: Mapping[str, Any]) -> str | None:
    """The NeuroDock environment a cloud resource belongs to, from its tags or labels."""
    for tags in (props.get("tags"), props.get("resourceLabels"), props.get("labels"),
                 dig(props, "nodeConfig", "resourceLabels")):
        if isinstance(tags, Mapping):
            for key in ("neurodock:environment", "neurodock-environment"):
                if known(tags.get(key)):
                    return str(tags[key])
    return None

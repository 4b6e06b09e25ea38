"""CEL admission offline: every custom resource a plan creates judged by its CRD's ``x-kubernetes-validations``
rules, and every object a ValidatingAdmissionPolicy of the stack matches by that policy's expressions, as the
API server judges them on create, with a maintained CEL implementation (``cel-python``).

What the API server does, and this module does likewise (Kubernetes apiextensions-apiserver
``pkg/apiserver/schema/cel/validation.go``, ``Validate``; apiserver ``pkg/admission/plugin/policy/validating``):

- the object is defaulted from the schema first (``default:``), then each rule runs at the node that declares
  it, with ``self`` that node's value, once for each instance of the node present (each list item, each map
  value); a rule under an absent field does not run;
- a rule that reads ``oldSelf`` is a transition rule and runs on updates only: not on a create;
- the rule's ``message`` (or ``messageExpression``) and ``fieldPath`` name the failure; an evaluation error
  (a field read without ``has()``) fails it too.

Kubernetes' CEL libraries beyond the standard ones are provided where a pinned CRD uses them or they are
the common ones (strings: ``lowerAscii``, ``upperAscii``, ``split``, ``join``, ``replace``, ``trim``,
``indexOf``; lists: ``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``; ``isURL``; ``isQuantity``;
``isIP``, ``isCIDR``); a rule that needs another is reported as not evaluated, never as passing.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import marshal
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

UNEVALUATED = "not evaluated"


@dataclass(frozen=True)
class Finding:
    """A rule an object fails (``evaluated``), or one that could not be evaluated."""

    kind: str
    name: str
    """``namespace/name`` or ``name``."""
    field: str
    """Where the rule sits (``spec.rules[1]``), or its ``fieldPath``."""
    message: str
    rule: str
    evaluated: bool = True
    source: str = ""
    """The CRD (``httproutes.gateway.networking.k8s.io``) or ValidatingAdmissionPolicy that holds the rule."""

    def __str__(self) -> str:
        if not self.evaluated:
            return f"{self.kind} '{self.name}' {self.field}: rule of {self.source} not evaluated ({self.message}): " \
                   f"{self.rule}"
        return f"{self.kind} '{self.name}' {self.field}: {self.message} (rule of {self.source}: {self.rule})"


# -- CEL -----------------------------------------------------------------------------------------


@functools.cache
def _environment():
    import celpy

    return celpy.Environment()


@functools.lru_cache(maxsize=4096)
def _program(rule: str):
    """The compiled rule (compiling is most of the cost: each distinct rule is compiled once per process)."""
    environment = _environment()
    return environment.program(environment.compile(rule), functions=_kubernetes_functions())


def _to_cel(value: Any) -> Any:
    import celpy

    return celpy.json_to_cel(value)


def _evaluate(rule: str, activation: dict[str, Any]) -> tuple[bool | None, str | None]:
    """``(passed, error)``: passed None with the error when the rule cannot be evaluated or fails to."""
    import celpy

    try:
        result = _program(rule).evaluate({k: _to_cel(v) for k, v in activation.items()})
    except celpy.CELParseError as exc:
        return None, f"{UNEVALUATED}: {str(exc).splitlines()[0]}"
    except celpy.CELEvalError as exc:
        return None, _error(exc)
    if isinstance(result, celpy.CELEvalError):
        return None, _error(result)
    return bool(result), None


def _evaluate_all(calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[bool | None, str | None]]:
    """``_evaluate`` of each ``(rule, activation)``, kept in the render cache (``infra.charts.stored``)
    under a digest of the calls and of what the results depend on (this module, cel-python and lark): an
    object's evaluations are the same in every plan that creates it unchanged, and building the CEL parser
    and compiling the rules are most of admission's time, all saved when every object's are stored."""
    if not calls:
        return []
    try:
        # Version 2: no back-references, so equal calls always give equal bytes.
        digest = hashlib.sha256(marshal.dumps(calls, 2)).hexdigest()
    except ValueError:  # not plain data
        return [_evaluate(rule, activation) for rule, activation in calls]
    from infra import charts

    return charts.stored(("cel", *_cel_version(), digest),
                         lambda: [_evaluate(rule, activation) for rule, activation in calls])


@functools.cache
def _cel_version() -> tuple[str, ...]:
    from importlib.metadata import version

    with open(__file__, "rb") as source:
        code = hashlib.sha256(source.read()).hexdigest()
    return code, version("cel-python"), version("lark")


def _error(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    if "undeclared reference" in text:
        name = re.search(r"undeclared reference to '([^']+)'", text)
        return f"{UNEVALUATED}: the CEL function {name[1] if name else '?'} is not provided offline"
    if "no such key" in text.lower() or (isinstance(exc.args[1] if len(exc.args) > 1 else None, type) \
            and issubclass(exc.args[1], KeyError)):
        return "evaluation error: a field it reads is absent (no such key)"
    return f"evaluation error: {text.splitlines()[0][:200]}"


def _kubernetes_functions() -> dict[str, Any]:
    """Kubernetes' CEL libraries (k8s.io/apiserver ``pkg/cel/library``; cel-go ``ext/strings.go``)."""
    from celpy import celtypes

    def lower_ascii(s):
        return celtypes.StringType(str(s).lower())

    def upper_ascii(s):
        return celtypes.StringType(str(s).upper())

    def split(s, sep, n=None):
        parts = str(s).split(str(sep)) if n is None or int(n) < 0 else str(s).split(str(sep), max(int(n) - 1, 0))
        return celtypes.ListType([celtypes.StringType(p) for p in parts])

    def join(items, sep=""):
        return celtypes.StringType(str(sep).join(str(i) for i in items))

    def replace(s, old, new, n=-1):
        return celtypes.StringType(str(s).replace(str(old), str(new), int(n)))

    def trim(s):
        return celtypes.StringType(str(s).strip())

    def index_of(s, item, start=0):
        if isinstance(s, list):
            return celtypes.IntType(next((i for i, x in enumerate(s) if x == item), -1))
        return celtypes.IntType(str(s).find(str(item), int(start)))

    def is_sorted(items):
        return celtypes.BoolType(list(items) == sorted(items))

    def total(items):
        return sum(items[1:], items[0]) if len(items) else celtypes.IntType(0)

    def is_url(s):
        parsed = urllib.parse.urlparse(str(s))
        return celtypes.BoolType(bool(parsed.scheme) and bool(parsed.netloc or parsed.path))

    def is_quantity(s):
        return celtypes.BoolType(re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?",
                                              str(s)) is not None)

    def is_ip(s):
        try:
            ipaddress.ip_address(str(s))
        except ValueError:
            return celtypes.BoolType(False)
        return celtypes.BoolType(True)

    def is_cidr(s):
        try:
            ipaddress.ip_network(str(s), strict=False)
        except ValueError:
            return celtypes.BoolType(False)
        return celtypes.BoolType("/" in str(s))

    return {"lowerAscii": lower_ascii, "upperAscii": upper_ascii, "split": split, "join": join,
            "replace": replace, "trim": trim, "indexOf": index_of, "isSorted": is_sorted, "sum": total,
            "min": lambda items: min(items), "max": lambda items: max(items), "isURL": is_url,
            "isQuantity": is_quantity, "isIP": is_ip, "isCIDR": is_cidr}


# -- CRD schemas -----------------------------------------------------------------------------------


def _served_schema(crd: Mapping[str, Any], version: str) -> Mapping[str, Any] | None:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("name") == version:
            return ((v.get("schema") or {}).get("openAPIV3Schema")) or None
    return None


def defaulted(schema: Mapping[str, Any], value: Any) -> Any:
    """``value`` with the schema's defaults applied, as the API server applies them before validating:
    an absent property with a ``default`` gets it, at every level that is present."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        out = dict(value)
        for key, sub in properties.items():
            if key not in out and "default" in sub:
                out[key] = sub["default"]
        for key, item in out.items():
            if key in properties:
                out[key] = defaulted(properties[key], item)
            elif isinstance(schema.get("additionalProperties"), Mapping):
                out[key] = defaulted(schema["additionalProperties"], item)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [defaulted(schema["items"], item) for item in value]
    return value


def _rule_sites(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    """``(path, rule, self)`` for each rule of the schema, at each present node that declares it."""
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path, rule, value
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, item in value.items():
            sub = properties.get(key)
            if sub is None and isinstance(schema.get("additionalProperties"), Mapping):
                sub = schema["additionalProperties"]
                yield from _rule_sites(sub, item, f"{path}[{key!r}]" if path else key)
            elif sub is not None:
                yield from _rule_sites(sub, item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield from _rule_sites(schema["items"], item, f"{path}[{i}]")


def _transition(rule: str) -> bool:
    return re.search(r"\boldSelf\b", rule) is not None


def crd_findings(obj: Mapping[str, Any], crds: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[Finding]:
    """The rules of ``obj``'s CRD (``crds`` by ``(group, kind)``) that ``obj`` fails on create, and those that
    could not be evaluated; none for a kind without a CRD here (a built-in)."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    crd = crds.get((group, str(obj.get("kind"))))
    if crd is None:
        return []
    schema = _served_schema(crd, version)
    if schema is None:
        return []
    metadata = obj.get("metadata") or {}
    name = f"{metadata['namespace']}/{metadata.get('name')}" if metadata.get("namespace") else str(metadata.get("name"))
    out = []
    sites = [(path, rule, value) for path, rule, value in _rule_sites(schema, defaulted(schema, dict(obj)), "")
             # a transition rule: updates only
             if not (_transition(str(rule.get("rule", ""))) and not rule.get("optionalOldSelf"))]
    results = _evaluate_all([(str(rule.get("rule", "")), {"self": value}) for _, rule, value in sites])
    for (path, rule, _), (passed, error) in zip(sites, results, strict=True):
        text = str(rule.get("rule", ""))
        if passed:
            continue
        where = f"{path}{rule['fieldPath']}" if rule.get("fieldPath") else (path or "(object)")
        if passed is None and error and error.startswith(UNEVALUATED):
            out.append(Finding(str(obj.get("kind")), name, where, error.removeprefix(UNEVALUATED + ": "), text,
                               evaluated=False, source=str(crd["metadata"]["name"])))
            continue
        message = rule.get("message") or (f"failed rule: {text}" if error is None else error)
        if error is not None and rule.get("message"):
            message = f"{rule['message']} ({error})"
        out.append(Finding(str(obj.get("kind")), name, where, str(message), text, source=str(crd["metadata"]["name"])))
    return out


def crd_index(crds: list[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """CRDs by the ``(group, kind)`` of their custom resources."""
    return {(c["spec"]["group"], c["spec"]["names"]["kind"]): c for c in crds
            if isinstance(c.get("spec"), Mapping) and c["spec"].get("names")}


# -- ValidatingAdmissionPolicies -------------------------------------------------------------------


def _resource_of(obj: Mapping[str, Any], plurals: Mapping[tuple[str, str], str]) -> tuple[str, str, str]:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    kind = str(obj.get("kind"))
    plural = plurals.get((group, kind)) or (kind.lower() + ("es" if kind.lower().endswith("s") else "s"))
    return group, version, plural


def _matches(rules: list, obj: Mapping[str, Any], plurals: Mapping[tuple[str, str], str]) -> bool:
    group, version, plural = _resource_of(obj, plurals)
    for rule in rules or []:
        operations = rule.get("operations") or ["*"]
        if not ({"*", "CREATE"} & set(operations)):
            continue
        if all(any(v in ("*", want) for v in rule.get(field) or ["*"])
               for field, want in (("apiGroups", group), ("apiVersions", version), ("resources", plural))):
            return True
    return False


def _paths_read(expression: str, variable: str) -> list[tuple[str, ...]] | None:
    """The field paths of ``variable`` that ``expression`` reads (``object.spec.group`` -> ``("spec", "group")``),
    or None when it may read more than named fields show (the variable whole, indexed or passed on): then the
    object is handed over whole. A path ends before a macro or method call (``.exists(``), which reads what the path
    leads to, whole."""
    found: list[tuple[str, ...]] = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(variable)}\b", expression):
        rest = expression[match.end():]
        chain = re.match(r"((?:\s*\.\s*[A-Za-z_]\w*)+)", rest)
        if chain is None:
            return None  # the whole object, or object[...]
        names = [n.strip() for n in chain.group(1).split(".")[1:]]
        after = rest[chain.end():].lstrip()
        if after.startswith("("):
            names = names[:-1]  # a method or macro on what precedes it
        if not names:
            return None  # a method on the object itself
        found.append(tuple(names))  # indexed after the path (annotations['a']): the path's value whole
    return found


def _pruned(value: Any, paths: list[tuple[str, ...]] | None) -> Any:
    """``value`` with only the subtrees at ``paths`` (all of it for None): what an expression reading just those
    paths sees the same, at a fraction of the conversion to CEL (a CRD is hundreds of KB; a policy on CRDs reads
    its group and annotations)."""
    if paths is None or not isinstance(value, Mapping):
        return value
    if any(not path for path in paths):
        return value
    out: dict[str, Any] = {}
    for key in {path[0] for path in paths}:
        if key not in value:
            continue
        rest = [path[1:] for path in paths if path[0] == key]
        out[key] = value[key] if any(not r for r in rest) else _pruned(value[key], rest)
    return out


def policy_findings(policy: Mapping[str, Any], objects: list[Mapping[str, Any]],
                    plurals: Mapping[tuple[str, str], str]) -> list[Finding]:
    """What a ValidatingAdmissionPolicy (bound with no parameters) refuses among ``objects`` on create. A
    policy with ``paramKind``, match conditions or namespace and object selectors is reported as not
    evaluated for what it matches, not guessed at."""
    spec = policy.get("spec") or {}
    constraints = spec.get("matchConstraints") or {}
    name = str((policy.get("metadata") or {}).get("name"))
    out = []
    for obj in objects:
        if not _matches(constraints.get("resourceRules") or [], obj, plurals):
            continue
        metadata = obj.get("metadata") or {}
        shown = f"{metadata['namespace']}/{metadata.get('name')}" if metadata.get("namespace") else \
            str(metadata.get("name"))
        limited = [k for k in ("paramKind", "matchConditions") if spec.get(k)] + \
            [k for k in ("namespaceSelector", "objectSelector") if constraints.get(k)]
        validations = spec.get("validations") or []
        if limited:
            out += [Finding(str(obj.get("kind")), shown, "(object)", f"its {', '.join(limited)} are not "
                            "evaluated offline", str(validation.get("expression", "")), evaluated=False, source=name)
                    for validation in validations]
            continue
        calls = [(expression, {"object": _pruned(obj, _paths_read(expression, "object")), "oldObject": None,
                               "request": {"operation": "CREATE"}, "params": None})
                 for expression in (str(validation.get("expression", "")) for validation in validations)]
        for validation, (expression, _), (passed, error) in zip(validations, calls, _evaluate_all(calls), strict=True):
            if passed:
                continue
            if error and error.startswith(UNEVALUATED):
                out.append(Finding(str(obj.get("kind")), shown, "(object)", error.removeprefix(UNEVALUATED + ": "),
                                   expression, evaluated=False, source=name))
            else:
                out.append(Finding(str(obj.get("kind")), shown, "(object)",
                                   str(validation.get("message") or error or f"failed expression: {expression}"),
                                   expression, source=name))
    return out


def admission_findings(objects: list[Mapping[str, Any]]) -> list[Finding]:
    """Every CRD rule and ValidatingAdmissionPolicy expression the ``objects`` (the whole stack's: its own
    and its charts') fail on create, with the CRDs and policies among them."""
    crds = [o for o in objects if o.get("kind") == "CustomResourceDefinition"]
    index = crd_index(crds)
    plurals = {(c["spec"]["group"], c["spec"]["names"]["kind"]): c["spec"]["names"].get("plural", "")
               for c in crds if isinstance(c.get("spec"), Mapping) and c["spec"].get("names")}
    out = [f for o in objects for f in crd_findings(o, index)]
    for policy in (o for o in objects if o.get("kind") == "ValidatingAdmissionPolicy"):
        out += policy_findings(policy, objects, plurals)
    return out

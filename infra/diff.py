"""``neurodock diff A B``: two stacks' offline plans compared resource by resource.

Resources are matched by their URN without the stack part (type chain and name), so the same
program on two stacks lines up; so are the objects each Helm release installs, rendered from the
cached chart (``<release URN>$<kind>::<release>:<namespace>/<name>``). Kubernetes objects are
compared as the provider would send them, cloud resources by their inputs, and both by the options
that decide what survives a destroy (``protect``, ``retainOnDelete``). Stack outputs are compared as one more entry.

Each changed value is classed as *location* when substituting stack A's location (zones, region,
project) by stack B's turns A's value into B's: that is what moving a stack to another region is
expected to change, and nothing else. Some values the program derives from the zones by a rule rather
than by naming them (``DERIVED_FROM_LOCATION``: a GKE pool's zones are those of the stack that offer its
machine); those are location too when each side holds what the rule gives for its own stack. A
disaster-recovery stack must differ from its primary only so (``--location-only``).

A change to an input B's resource lists in ``ignoreChanges`` is kept apart (``ResourceDiff.ignored``):
`pulumi up` leaves such a value as the running resource has it; a new stack still gets it, so it still
counts for ``--location-only``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from components.cluster.zones import initial_nodes_per_zone, pool_zones
from components.gpu.catalog import gke_accelerator
from components.monitoring.cost import cost_groups
from infra.cost import cost_delta, node_prices, plan_cost
from infra.plan.engine import Plan
from infra.plan.helm import ChartObject
from infra.plan.mocks import Registration, gcp_project_number, is_k8s_object, k8s_checked

OPTIONS_COMPARED = ("protect", "retainOnDelete")
REPLACED_BY = {
    # Input paths whose change makes the provider replace the resource (ForceNew in the bridged
    # Terraform providers; docs/upstream.md). Node pools and groups are named by prefix, so their
    # replacement creates the new one before deleting the old.
    "aws:eks/nodeGroup:NodeGroup": ("inputs.amiType", "inputs.capacityType", "inputs.diskSize",
                                    "inputs.instanceTypes", "inputs.subnetIds", "inputs.nodeGroupNamePrefix",
                                    "inputs.nodeRoleArn", "inputs.launchTemplate.id"),
    "aws:eks/cluster:Cluster": ("inputs.name", "inputs.roleArn", "inputs.vpcConfig.subnetIds",
                                "inputs.encryptionConfig",
                                "inputs.accessConfig.bootstrapClusterCreatorAdminPermissions"),
    "gcp:container/nodePool:NodePool": ("inputs.namePrefix", "inputs.nodeConfig.guestAccelerators",
                                        "inputs.nodeConfig.spot", "inputs.nodeConfig.serviceAccount",
                                        "inputs.nodeConfig.oauthScopes", "inputs.nodeConfig.metadata",
                                        "inputs.cluster", "inputs.location"),
    # terraform-provider-google resource_container_cluster.go at e03b7622 (2026-08-21): ForceNew name, location,
    # network, subnetwork, ip_allocation_policy (and its ranges), networking_mode, datapath_provider,
    # private_cluster_config.master_ipv4_cidr_block and private_endpoint_subnetwork; enable_private_nodes is
    # updated in place (through the cluster's network config). Its node_config is ForceNew too, but ignored.
    "gcp:container/cluster:Cluster": ("inputs.name", "inputs.location", "inputs.network", "inputs.subnetwork",
                                      "inputs.ipAllocationPolicy", "inputs.networkingMode",
                                      "inputs.datapathProvider",
                                      "inputs.privateClusterConfig.masterIpv4CidrBlock",
                                      "inputs.privateClusterConfig.privateEndpointSubnetwork"),
}
"""What `neurodock diff` marks ``[replace]``: the rest updates in place (a node pool's nodes may still be
recreated by a rolling update: docs/operations.md, "Editing a running stack")."""
COST_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
DERIVED_FROM_LOCATION = {
    "gcp:container/nodePool:NodePool": ("inputs.nodeLocations", "inputs.initialNodeCount"),
    COST_RULE: ("manifest.spec",),
}
"""Inputs the program derives from the stack's zones by a rule (``_derived``): a GKE pool's zones are the
stack's zones that offer its machine, and its initial nodes per zone share its minimum among them
(``components/cluster/zones.py``); the cost recording rules price each pool's machines at its region's
list price (``infra.cost.node_prices``)."""
OUTPUTS_KEY = "pulumi:pulumi:Stack::outputs"
SHORT = 100
"""Characters of a changed value the text shows without ``--full``."""


@dataclass(frozen=True)
class Change:
    path: str
    """Where in the resource: ``inputs.location``, ``manifest.spec.replicas``, ``options.protect``."""
    old: Any
    new: Any
    location: bool
    """True when the difference is only the stacks' location (region, zones, project)."""
    replaces: bool = False
    """True when the provider replaces the resource for this change (``REPLACED_BY``)."""


@dataclass(frozen=True)
class ResourceDiff:
    key: str
    """The URN without its stack part: ``<type chain>::<name>``."""
    status: str
    """``added`` (only in B), ``removed`` (only in A) or ``changed``."""
    changes: list[Change] = field(default_factory=list)
    moved_from: str | None = None
    """A's key of a resource B reaches through an alias (a new parent or name): the engine moves its
    state, it is neither deleted nor created."""
    ignored: list[Change] = field(default_factory=list)
    """Changes to inputs B's resource lists in ``ignoreChanges``: `pulumi up` keeps the running value, a new
    stack gets B's."""

    @property
    def location_only(self) -> bool:
        return self.status == "changed" and all(c.location for c in [*self.changes, *self.ignored])

    @property
    def replaced(self) -> bool:
        return any(c.replaces for c in self.changes)


@dataclass(frozen=True)
class PlanDiff:
    a: str
    b: str
    compared: int
    """Resources present in both plans."""
    location_pairs: list[tuple[str, str]]
    """The location settings that differ (A's value, B's value). Cloud ids of matched resources
    count as location too: the same resource, created in the other place."""
    resources: list[ResourceDiff]
    install_only: frozenset[str] = frozenset()
    """Keys of CRDs from charts' ``crds/``: Helm creates them on the first install only, so a change
    shown here does not reach an existing cluster by `pulumi up`."""
    cost: dict[str, Any] | None = None
    """What the edit changes in the stack's monthly cost (``infra.cost.cost_delta``); None when neither side
    costs anything (kind)."""

    @property
    def other(self) -> list[ResourceDiff]:
        """Every difference that is not explained by the location."""
        return [r for r in self.resources if not r.location_only]

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "compared": self.compared,
            "locationSubstitutions": [{"a": x, "b": y} for x, y in self.location_pairs],
            "resources": [{"key": r.key, "status": r.status, "movedFrom": r.moved_from,
                           "locationOnly": r.location_only,
                           "installOnly": r.key in self.install_only, "replaced": r.replaced,
                           "changes": [{"path": c.path, "a": c.old, "b": c.new, "location": c.location,
                                        "replaces": c.replaces}
                                       for c in r.changes],
                           "ignoredChanges": [{"path": c.path, "a": c.old, "b": c.new, "location": c.location}
                                              for c in r.ignored]} for r in self.resources],
            "cost": self.cost,
        }


class SavedPlanError(Exception):
    """A file that is not a plan `neurodock plan --json` wrote."""


def saved_plan(document: dict[str, Any], like: Plan) -> Plan:
    """The plan `neurodock plan STACK --json` printed (on another commit, say), for stack ``like``:
    its resources, the objects its releases installed and its outputs, with ``like``'s config."""
    try:
        if document["stack"] != like.stack.stack or document["project"] != like.stack.project:
            raise SavedPlanError(f"it is a plan of stack {document['stack']!r} of project {document['project']!r}, "
                                 f"not of {like.stack.stack!r} of {like.stack.project!r}")
        resources, objects = [], []
        for r in document["resources"]:
            if "release" in r:
                namespace, _, name = r["name"].removeprefix(r["release"] + ":").rpartition("/")
                objects.append(ChartObject(
                    release_urn=r["parent"], release=r["release"], template=r["template"], kind=r["inputs"]["kind"],
                    api_version=r["inputs"]["apiVersion"], object_name=name, namespace=namespace or None,
                    install_only=r["installOnly"], _manifest=r["inputs"]))
                continue
            registration = Registration(urn=r["urn"], type=r["type"], name=r["name"], parent=r["parent"],
                                        custom=r["custom"], provider=r["provider"], inputs=r["inputs"],
                                        options=r["options"], id=r.get("id"), aliases=r.get("aliases", []))
            if r["custom"] and is_k8s_object(r["type"]):
                registration.manifest = k8s_checked(r["type"], r["name"], r["inputs"])
            resources.append(registration)
    except (KeyError, TypeError, AttributeError) as exc:
        raise SavedPlanError(f"it is not the output of `neurodock plan --json` (no {exc})") from None
    objects_urns = {o.urn for o in objects}
    # ChartObject derives its URN; a saved one must read back as it was written.
    if objects_urns != {r["urn"] for r in document["resources"] if "release" in r}:
        raise SavedPlanError("its Helm releases' objects do not read back under the URNs it names")
    # Its cost as its own config priced it (models, budget): ``like``'s config is the other commit's.
    return Plan(stack=like.stack, config=like.config, resources=resources, outputs=document.get("outputs", {}),
                warnings=[], releases=[_Release(objects)], saved_cost=document.get("cost") or {})


@dataclass(frozen=True)
class _Release:
    objects: list[ChartObject]


def location_pairs(a: Plan, b: Plan) -> list[tuple[str, str]]:
    """(A's value, B's value) for each location setting that differs, longest A value first so a
    zone (``europe-west4-a``) is substituted before the region it contains."""
    pairs: list[tuple[str, str]] = []
    ca, cb = a.config.cloud, b.config.cloud
    for attr in ("project", "region"):
        x, y = getattr(ca, attr, None), getattr(cb, attr, None)
        if isinstance(x, str) and isinstance(y, str) and x != y:
            pairs.append((x, y))
            if attr == "project":
                # Service agents are named by project number, which a real preview looks up.
                pairs.append((gcp_project_number(x), gcp_project_number(y)))
    za, zb = list(getattr(ca, "zones", []) or []), list(getattr(cb, "zones", []) or [])
    if len(za) == len(zb):
        pairs += [(x, y) for x, y in zip(za, zb, strict=True) if x != y]
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def _urn_prefix(plan: Plan) -> str:
    """What every URN of ``plan`` starts with: its stack and project."""
    return f"urn:pulumi:{plan.stack.stack}::{plan.stack.project}::"


def diff_plans(a: Plan, b: Plan) -> PlanDiff:
    location = location_pairs(a, b)
    # Logical names may carry a zone (one subnet per zone): read A's keys in B's location.
    left, right = _index(a, location), _index(b, [])
    # A matched resource has its own cloud id on each side; a reference to it is the same reference.
    ids = [(left[k][1], right[k][1]) for k in left.keys() & right.keys()
           if left[k][1] and right[k][1] and left[k][1] != right[k][1]]
    pairs = sorted(location + ids, key=lambda p: len(p[0]), reverse=True)
    moved = _moves(b, left.keys(), right.keys())
    derived_a, derived_b = _derived(a, location), _derived(b, [])
    ignoring = _ignored_inputs(b)
    out: list[ResourceDiff] = []
    for key in sorted((left.keys() - moved.values()) | right.keys()):
        old = moved.get(key, key)
        if key not in right:
            out.append(ResourceDiff(key, "removed"))
        elif old not in left:
            out.append(ResourceDiff(key, "added"))
        else:
            type_ = key.split("::", 1)[0].rsplit("$", 1)[-1]
            forcing = REPLACED_BY.get(type_, ())
            derived = [f for f in DERIVED_FROM_LOCATION.get(type_, ())
                       if f in derived_a.get(old, {}) and _at(left[old][0], f) == derived_a[old][f]
                       and f in derived_b.get(key, {}) and _at(right[key][0], f) == derived_b[key][f]]
            changes, ignored = [], []
            for path, x, y in _leaf_diffs(left[old][0], right[key][0], ""):
                change = Change(path, x, y, _relocated(x, pairs) == y or any(_under(path, f) for f in derived),
                                any(_under(path, f) for f in forcing))
                if any(_under(path, f"inputs.{i}") for i in ignoring.get(key, ())):
                    ignored.append(dataclasses.replace(change, replaces=False))
                else:
                    changes.append(change)
            if changes or ignored or old != key:
                out.append(ResourceDiff(key, "moved" if old != key else "changed", changes,
                                        moved_from=old if old != key else None, ignored=ignored))
    prefix = _urn_prefix(b)
    install_only = frozenset(o.urn.removeprefix(prefix) for o in b.chart_objects if o.install_only)
    compared = len(left.keys() & right.keys()) + len(moved)
    return PlanDiff(a.stack.stack, b.stack.stack, compared, location, out, install_only,
                    cost_delta(_cost_of(a), _cost_of(b)))


def _cost_of(plan: Plan) -> dict[str, Any] | None:
    """A plan's cost section: as a saved plan recorded it (its own config priced it; ``{}`` where it recorded
    none: kind, or an older plan), else computed."""
    if plan.saved_cost is not None:
        return plan.saved_cost or None
    cost = plan_cost(plan)
    return None if cost is None else cost.to_json()


def _under(path: str, field_: str) -> bool:
    """Whether ``path`` is ``field_`` or inside it (``inputs.nodeLocations[0]`` is in ``inputs.nodeLocations``)."""
    return path == field_ or path.startswith(field_ + ".") or path.startswith(field_ + "[")


def _at(body: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of plain keys (``inputs.nodeLocations``), None where it is missing."""
    value: Any = body
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _ignored_inputs(plan: Plan) -> dict[str, list[str]]:
    """Each resource's ``ignoreChanges`` (input paths, ``initialNodeCount``), under its stack-independent key."""
    prefix = _urn_prefix(plan)
    return {r.urn.removeprefix(prefix): list(r.options.get("ignoreChanges") or []) for r in plan.resources
            if r.options.get("ignoreChanges")}


def _derived(plan: Plan, pairs: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """The ``DERIVED_FROM_LOCATION`` values the program's rule gives each resource of ``plan`` from its own stack's
    zones, under the resource's key as it reads after the ``pairs`` substitutions: a GKE pool's zones (those that
    offer its machine) and its initial nodes per zone."""
    cloud = plan.config.cloud if hasattr(plan.config, "node_pools") else None
    if cloud is None:
        return {}
    prefix = _urn_prefix(plan)
    out: dict[str, dict[str, Any]] = {}
    for r in plan.resources:
        if r.type == COST_RULE and r.name.endswith("-cost"):
            out[_relocated(r.urn.removeprefix(prefix), pairs)] = {
                "manifest.spec": {"groups": cost_groups(node_prices(plan.config))}}
    if cloud.provider != "gke":
        return out
    pools = {p.name: p for p in plan.config.node_pools}
    for r in plan.resources:
        pool = pools.get(str(r.inputs.get("namePrefix", "")).removesuffix("-"))
        if r.type != "gcp:container/nodePool:NodePool" or pool is None or len(pool.instance_types) != 1:
            continue
        machine = pool.instance_types[0]
        zones = pool_zones(machine, gke_accelerator(machine, pool.gpu.type) if pool.gpu else None, cloud.zones)
        out[_relocated(r.urn.removeprefix(prefix), pairs)] = {
            "inputs.nodeLocations": list(zones),
            "inputs.initialNodeCount": initial_nodes_per_zone(gpu=pool.role == "gpu", min_nodes=pool.min_nodes,
                                                              zone_count=len(zones)),
        }
    return out


def _moves(b: Plan, left: set[str], right: set[str]) -> dict[str, str]:
    """B's key -> A's key, for each resource of B that only A has under one of B's aliases."""
    prefix = _urn_prefix(b)
    only_a = left - right
    out: dict[str, str] = {}
    for r in b.resources:
        key = r.urn.removeprefix(prefix)
        if key in left:
            continue
        former = [a.removeprefix(prefix) for a in r.aliases if a.removeprefix(prefix) in only_a]
        if former:
            out[key] = former[0]
    return out


def _index(plan: Plan, pairs: list[tuple[str, str]]) -> dict[str, tuple[dict[str, Any], str | None]]:
    """Each resource's comparable content and cloud id, under its stack-independent key as it reads
    after the ``pairs`` substitutions."""
    prefix = _urn_prefix(plan)
    # URNs inside values (dependencies, parents) name the stack: make them comparable.
    anonymous = [(prefix, "urn:pulumi:STACK::PROJECT::")]
    out: dict[str, tuple[dict[str, Any], str | None]] = {}
    for r in plan.resources:
        if r.type == "pulumi:pulumi:Stack":
            continue
        body = {"manifest": r.manifest} if r.manifest is not None else {"inputs": r.inputs}
        body["options"] = {k: bool(r.options.get(k)) for k in OPTIONS_COMPARED}
        cloud_id = r.id if isinstance(r.id, str) and len(r.id) >= 8 else None
        out[_relocated(r.urn.removeprefix(prefix), pairs)] = (_relocated(body, anonymous), cloud_id)
    # What each Helm release installs, as Helm renders it: a chart bump shows its object changes.
    for o in plan.chart_objects:
        out[_relocated(o.urn.removeprefix(prefix), pairs)] = (_relocated({"manifest": o.manifest}, anonymous), None)
    out[OUTPUTS_KEY] = ({"outputs": plan.outputs}, None)
    return out


def _leaf_diffs(x: Any, y: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(x.keys() | y.keys(), key=str):
            yield from _leaf_diffs(x.get(k), y.get(k), f"{path}.{k}" if path else str(k))
    elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            yield from _leaf_diffs(u, v, f"{path}[{i}]")
    elif x != y:
        yield path, x, y


def _relocated(value: Any, pairs: list[tuple[str, str]]) -> Any:
    """``value`` with every string's substrings replaced, pair by pair (A's location by B's)."""
    if isinstance(value, str):
        for old, new in pairs:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _relocated(v, pairs) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocated(v, pairs) for v in value]
    return value


def render(diff: PlanDiff, *, full: bool = False) -> str:
    """The diff as text; each changed value cut at ``SHORT`` characters unless ``full``."""
    marks = {"added": "+", "removed": "-", "changed": "~", "moved": ">"}
    lines = [f"neurodock diff {diff.a} {diff.b}"]
    if diff.location_pairs:
        lines.append("location: " + ", ".join(f"{x} -> {y}" for x, y in diff.location_pairs))
    for r in diff.resources:
        tag = "  (location only)" if r.location_only else ""
        if r.replaced and not r.location_only:
            tag += "  [replace]"
        if r.key in diff.install_only and r.status != "removed":
            tag += "  (a chart's crds/ CRD: Helm creates it on first install only; an existing cluster keeps its own)"
        if r.moved_from:
            tag += f"  (moved from {r.moved_from} by an alias: kept, not replaced)"
        lines.append(f"{marks[r.status]} {r.key}{tag}")
        for c in r.changes:
            why = "location" if c.location else "OTHER"
            why += ", forces replacement" if c.replaces and not c.location else ""
            lines.append(f"    {c.path}: {_shown(c.old, full)} -> {_shown(c.new, full)}  [{why}]")
        for c in r.ignored:
            why = "location" if c.location else "OTHER"
            lines.append(f"    {c.path}: {_shown(c.old, full)} -> {_shown(c.new, full)}  [{why}; ignoreChanges: a "
                         "running stack keeps its value, a new one gets this]")
    lines.extend(_cost_lines(diff.cost))
    changed = [r for r in diff.resources if r.status == "changed" or r.changes]
    lines.append(
        f"{diff.compared} resources in both; {len(changed)} changed "
        f"({sum(r.location_only for r in changed)} only by location), "
        f"{sum(r.status == 'added' for r in diff.resources)} added, "
        f"{sum(r.status == 'removed' for r in diff.resources)} removed, "
        f"{sum(r.status == 'moved' for r in diff.resources)} moved, "
        f"{sum(r.replaced and not r.location_only for r in diff.resources)} replaced; "
        f"{len(diff.other)} differences not explained by location")
    return "\n".join(lines) + "\n"


def _cost_lines(cost: dict[str, Any] | None) -> list[str]:
    """The cost change, per pool and model that changes, the fixed costs and the total (USD a month)."""
    if cost is None:
        return []

    def usd(value: float, sign: bool = False) -> str:
        return f"{'+' if sign and value > 0 else '-' if value < 0 else ''}${abs(value):,.0f}"

    def line(what: str, row: dict[str, Any]) -> str:
        (a_lo, a_hi), (b_lo, b_hi), (d_lo, d_hi) = row["a"], row["b"], row["delta"]
        text = (f"  {what}: {usd(a_lo)} .. {usd(a_hi)} -> {usd(b_lo)} .. {usd(b_hi)}  "
                f"({usd(d_lo, True)} .. {usd(d_hi, True)})")
        return text + (f"  NOT PRICED: {row['unpriced']}" if row.get("unpriced") else "")

    lines = ["cost a month, list prices (USD; minimum .. maximum scale; A -> B (change)):"]
    lines += [line(f"pool {r['name']}", r) for r in cost["pools"]]
    lines += [line(f"model {r['name']}", r) for r in cost["models"]]
    if cost["fixed"]["delta"] != [0.0, 0.0]:
        lines.append(line("fixed costs", cost["fixed"]))
    lines.append(line("total", cost["total"]))
    if cost["unpriced"]:
        lines.append(f"  not priced on a side ({len(cost['unpriced'])}): the totals leave them out")
    return lines


def _shown(value: Any, full: bool) -> str:
    text = json.dumps(value, sort_keys=True)
    if full or len(text) <= SHORT:
        return text
    return f"{text[:SHORT]}... (+{len(text) - SHORT} characters: --full shows them)"

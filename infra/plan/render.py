"""Present a plan: the readable preview, its JSON form, and the files of ``--out DIR``.

The files are a public interface (see docs/cli.md, "Plan output"): keep their shape stable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from infra.charts import dump_document
from infra.plan.engine import Plan
from infra.plan.helm import RenderedRelease
from infra.plan.mocks import Registration, digest

STACK_TYPE = "pulumi:pulumi:Stack"


def counts_by_type(plan: Plan) -> dict[str, int]:
    """Custom resources (and providers) per type; components are structure, not resources."""
    counts = Counter(r.type for r in plan.resources if r.custom)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def cloud_of(plan: Plan) -> str:
    """``kind``/``eks``/``gke`` for a NeuroDock stack, ``aws``/``gcp`` for a bootstrap stack."""
    cloud = plan.config.cloud
    return str(getattr(cloud, "provider", cloud))


def text(plan: Plan, *, tree: bool = False) -> str:
    """The readable plan: the summary first (``infra.plan.summary``), then the details; the component
    tree only with ``tree``."""
    from infra.plan.summary import endpoint_text, grouped_text, summary_text

    custom = [r for r in plan.resources if r.custom]
    lines = [
        f"Plan of stack '{plan.stack.stack}' ({cloud_of(plan)}) from {plan.stack.path}",
        "Offline, under mocks: nothing was created and no credentials were used.",
        "",
        *summary_text(plan, as_json(plan)),
        *(["", "Component tree", *_tree(plan.resources)] if tree else []),
        "",
        f"Resources by type ({len(custom)} resources, "
        f"{sum(1 for r in plan.resources if not r.custom and r.type != STACK_TYPE)} components)",
    ]
    counts = counts_by_type(plan)
    width = max((len(str(n)) for n in counts.values()), default=1)
    lines += [f"  {n:>{width}}  {t}" for t, n in counts.items()]
    lines += _releases_text(plan)
    lines += _readiness_text(plan)
    lines += cost_text(plan)
    lines += ["", "Outputs"]
    key_width = max((len(k) for k in plan.outputs), default=0)
    for key, value in plan.outputs.items():
        shown = value if isinstance(value, str) else json.dumps(value, indent=2)
        shown = shown.replace("\n", "\n" + " " * (key_width + 4))
        lines.append(f"  {key:<{key_width}}  {shown}")
    lines += endpoint_text(plan)
    if plan.warnings:
        lines += ["", "Warnings (identical ones grouped)", *grouped_text(plan.warnings)]
    return "\n".join(lines) + "\n"


def _releases_text(plan: Plan) -> list[str]:
    """Per Helm release: its chart and the objects it installs, by kind."""
    if not plan.helm_releases:
        return []
    lines = ["", f"Helm releases ({len(plan.releases)} of {len(plan.helm_releases)} rendered with Helm from the "
                 f"chart cache: {len(plan.chart_objects)} objects)"]
    for release in plan.releases:
        install_only = sum(o.install_only for o in release.objects)
        lines.append(f"  {release.name}: {release.chart} in namespace {release.namespace}, "
                     f"{len(release.objects)} objects" + (f" ({install_only} CRDs from crds/: created on the first "
                                                          "install only, never upgraded by Helm)" if install_only
                                                          else ""))
        counts = Counter(o.kind for o in release.objects)
        width = max((len(str(n)) for n in counts.values()), default=1)
        lines += [f"    {n:>{width}}  {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    for missing in plan.missing_charts:
        what = missing.ref or f"{missing.chart} {missing.version or ''}".strip()
        lines.append(f"  {missing.release}: not rendered (chart {what} is not cached, or not pinned by NeuroDock)")
    return lines


def time_to_ready(plan: Plan) -> list[dict[str, Any]]:
    """Per model: the time-to-ready estimate of its first replica and of a scale-out replica, in
    seconds by phase, and the readiness budgets it sets."""
    from infra.config import StackConfig
    from infra.readiness import budgets
    from infra.readiness import time_to_ready as estimate

    if not isinstance(plan.config, StackConfig):
        return []
    out = []
    for model in plan.config.models:
        e, b = estimate(plan.config, model), budgets(plan.config, model)
        out.append({"model": model.name, "weights": e.path, "weightsGb": round(e.weights_gb, 1),
                    "firstReplica": {**asdict(e.first), "totalS": e.first.total_s},
                    "scaleOutReplica": {**asdict(e.scale_out), "totalS": e.scale_out.total_s},
                    "recoveryReplica": {**asdict(e.recovery), "totalS": e.recovery.total_s},
                    "budgets": asdict(b)})
    return out


def _readiness_text(plan: Plan) -> list[str]:
    rows = time_to_ready(plan)
    if not rows:
        return []
    lines = ["", "Time to ready, estimated (node + image + weights + load = total; readiness.throughput assumes)"]
    for row in rows:
        lines.append(f"  {row['model']}: {row['weightsGb']} GB, {row['weights']}")
        for label, key in (("first replica", "firstReplica"), ("scale-out", "scaleOutReplica"),
                           ("recovery", "recoveryReplica")):
            p = row[key]
            lines.append(f"    {label:<14} {p['node_s']:>5} + {p['image_s']:>4} + {p['weights_s']:>5} + "
                         f"{p['load_s']:>4} = {p['totalS']:>5} s")
        b = row["budgets"]
        lines.append(f"    budgets        node {b['node_scale_up_s']} s, image {b['image_pull_s']} s, "
                     f"load {b['model_load_s']} s")
    return lines


def cost_json(plan: Plan) -> dict[str, Any] | None:
    """The plan's cost (``infra.cost``); None on kind, which costs nothing."""
    from infra.cost import plan_cost

    cost = plan_cost(plan)
    return None if cost is None else cost.to_json()


def cost_text(plan: Plan) -> list[str]:
    """The cost section: per pool and per model at minimum and maximum scale, the fixed costs, the totals,
    each model's price per million tokens, the budget's verdict, and what the estimate leaves out."""
    from infra.cost import plan_cost

    cost = plan_cost(plan)
    if cost is None:
        return []
    from components.cost.catalogue import HOURS_PER_MONTH
    from infra.plan.summary import usd as _usd

    s = cost.stack

    def both(hourly_min: float, hourly_max: float) -> str:
        return (f"{_usd(hourly_min)}/h {_usd(hourly_min * HOURS_PER_MONTH)}/mo .. "
                f"{_usd(hourly_max)}/h {_usd(hourly_max * HOURS_PER_MONTH)}/mo")

    lines = ["", f"Cost, estimated at list prices in {s.region} (USD; minimum .. maximum scale; month = "
                 f"{HOURS_PER_MONTH} h)"]
    for p in s.pools:
        machines = "/".join(p.machines)
        nodes = f"{p.min_nodes}-{p.max_nodes} x {machines}"
        if p.unpriced:
            lines.append(f"  pool {p.name}: {nodes}: NOT PRICED: {p.unpriced}")
            continue
        spot = ""
        if p.spot:
            low = "market price" if p.node_hourly_low is None else f"from {_usd(p.node_hourly_low)}/node-h"
            spot = f"; Spot: {low}, at most on-demand; nodes may be reclaimed at any time"
        lines.append(f"  pool {p.name}: {nodes} at {_usd(p.node_hourly)}/node-h{spot}")
        lines.append(f"    {both(p.hourly('minimum'), p.hourly('maximum'))}")
    for f in s.fixed:
        lines.append(f"  {f.what}" + (f" x{f.count}" if f.count > 1 else "") + f": {both(f.hourly_min, f.hourly_max)}")
    lines.append(f"  total: {both(s.hourly('minimum'), s.hourly('maximum'))}")
    if s.has_spot:
        low_min, low_max = s.hourly_low("minimum"), s.hourly_low("maximum")
        lines.append("    (Spot nodes at on-demand; " + ("AWS has no Spot list price: they cost less at market price)"
                                                         if low_min is None or low_max is None else
                                                         f"at published Spot prices {both(low_min, low_max)})"))
    models = [m for m in cost.models if m.replica_hourly is not None or m.note]
    if models:
        lines.append("  models (their share of their pool; decode bound at peak memory bandwidth, full batch):")
    for m in models:
        if m.replica_hourly is None:
            lines.append(f"    {m.name}: {m.note}")
            continue
        line = (f"    {m.name}: {m.replicas_min}-{m.replicas_max} replicas x {_usd(m.replica_hourly)}/h = "
                f"{both(m.hourly('minimum'), m.hourly('maximum'))}")
        lines.append(line)
        if m.roofline is not None and m.usd_per_mtok is not None:
            r = m.roofline
            lines.append(f"      <= {r.tokens_per_s:,.0f} tokens/s per replica ({r.sequences} sequences x {r.context} "
                         f"tokens, {r.bytes_per_step / 1e9:.1f} GB read per step per GPU at {r.bandwidth_gbs} GB/s) "
                         f"-> >= {_usd(m.usd_per_mtok)} per million tokens at full load")
        elif m.note:
            lines.append(f"      {m.note}")
    if cost.budget_usd is not None:
        lines.append(f"  budget: ${cost.budget_usd:,} a month at {cost.budget_scale} scale: "
                     + ("within it" if cost.verdict is None else f"BROKEN: {cost.verdict}"))
    if s.unpriced:
        lines.append(f"  not priced: {len(s.unpriced)} item(s) above; the totals leave them out")
    lines.append(f"  left out (usage-based): {', '.join(s.left_out)}")
    lines.append("  sources: " + "; ".join(f"{src.url} ({src.kind}, as of {src.as_of})" for src in s.sources))
    if cost.stale:
        lines.append(f"  warning: {cost.stale}")
    return lines


def release_json(release: RenderedRelease) -> dict[str, Any]:
    counts = Counter(o.kind for o in release.objects)
    return {"urn": release.urn, "name": release.name, "namespace": release.namespace, "chart": release.chart.name,
            "version": release.chart.version, "package": str(release.package), "objectCount": len(release.objects),
            "countsByKind": dict(sorted(counts.items()))}


def _tree(resources: list[Registration]) -> list[str]:
    children: dict[str | None, list[Registration]] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r)
    roots = [r for r in resources if r.type == STACK_TYPE] or children.get(None, [])
    out: list[str] = []

    def walk(node: Registration, prefix: str, last: bool, depth: int) -> None:
        connector = "" if depth == 0 else ("└─ " if last else "├─ ")
        out.append(f"  {prefix}{connector}{node.type}  {node.name}")
        kids = children.get(node.urn, [])
        extension = "" if depth == 0 else ("   " if last else "│  ")
        for i, kid in enumerate(kids):
            walk(kid, prefix + extension, i == len(kids) - 1, depth + 1)

    for root in roots:
        walk(root, "", True, 0)
    return out


def as_json(plan: Plan) -> dict[str, Any]:
    return {
        "stack": plan.stack.stack,
        "project": plan.stack.project,
        "cloud": cloud_of(plan),
        "resourceCount": sum(1 for r in plan.resources if r.custom),
        "countsByType": counts_by_type(plan),
        "chartObjectCount": len(plan.chart_objects),
        "helmReleases": [release_json(r) for r in plan.releases],
        "missingCharts": [{"urn": m.urn, "release": m.release, "chart": m.chart, "version": m.version}
                          for m in plan.missing_charts],
        "timeToReady": time_to_ready(plan),
        "cost": cost_json(plan),
        "outputs": plan.outputs,
        "warnings": plan.warnings,
        "resources": resources_json(plan),
    }


def resources_json(plan: Plan) -> list[dict[str, Any]]:
    """The program's resources, then each object the Helm releases install (with ``release``)."""
    return [r.to_json() for r in plan.resources] + [o.to_json() for o in plan.chart_objects]


PLAN_MARKER = "resources.json"
"""The file that marks a directory as an earlier plan's ``--out``, which a new plan may replace."""


def out_problem(directory: Path) -> str | None:
    """Why ``write_out`` cannot replace ``directory``, as ``<what is wrong>; <the fix>``, or None.

    Cheap, so the CLI asks before it plans and a bad path costs nothing.
    """
    target = directory.resolve()
    try:
        if target.exists() and not target.is_dir():
            return "it is a file, not a directory; pass a directory: a new or empty one, or an earlier plan's --out"
        ancestor = next(p for p in (target, *target.parents) if p.exists())
        if not ancestor.is_dir():
            return f"{ancestor} is a file, so it cannot hold a directory; pass a path under a directory"
        if Path.cwd().resolve().is_relative_to(target):
            return "it holds the current directory; pass a directory outside it"
        if ancestor == target and any(target.iterdir()) and not (target / PLAN_MARKER).is_file():
            # --out replaces DIR as a whole: a typo such as `--out ~` must never delete a user's files.
            return (f"it holds files and no {PLAN_MARKER}, so it is not an earlier plan's output, and --out would "
                    "replace it as a whole, deleting them; pass a new or empty directory, or an earlier plan's --out")
    except OSError as exc:
        return f"cannot inspect it ({exc.strerror or exc}); pass a directory you may read and write"
    # The new output is made beside DIR and renamed into place, and the earlier one removed: that
    # writes in DIR's parent and in DIR, or in the nearest directory that exists.
    places = (target, target.parent) if ancestor == target else (ancestor,)
    for place in places:
        if not os.access(place, os.W_OK | os.X_OK):
            who = "it" if place == target else str(place)
            return f"{who} is not writable; pass a directory you may write, or fix its permissions"
    return None


def write_out(plan: Plan, directory: Path) -> dict[str, Path]:
    """Replace ``directory`` as a whole by resources.json, outputs.json, manifests/ and helm-releases.yaml.

    All or nothing: the files are written to a fresh directory beside it, which is renamed into place
    (an earlier output renamed aside first, then removed). On any failure the temporary directory
    is removed and ``directory`` is left as it was; nothing of an earlier output ever survives.
    A mount point (a CI volume) cannot be renamed: there the entries are swapped instead, restored
    if the swap fails. ``out_problem`` says beforehand whether ``directory`` may be replaced.
    """
    target = directory.resolve()
    if target.is_dir() and os.path.ismount(target):
        return _swap_entries(plan, target, directory)
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp: its directory is private (0700), and this one becomes the output.
    staging = target.parent / f".{target.name}.{secrets.token_hex(4)}"
    aside = staging.with_name(staging.name + ".old")
    try:
        staging.mkdir()
        written = _write_files(plan, staging)
        if target.exists():
            shutil.copymode(target, staging)  # an earlier output's permissions (mktemp -d's 0700) stay
            target.rename(aside)
        try:
            staging.rename(target)
        except BaseException:
            if aside.exists() and not target.exists():
                aside.rename(target)
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in created:  # deepest first
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise
    # The new output is in place: an earlier one that resists removal is not worth failing for.
    shutil.rmtree(aside, ignore_errors=True)
    return {key: directory / name for key, name in written.items()}


def _swap_entries(plan: Plan, target: Path, directory: Path) -> dict[str, Path]:
    """``write_out`` into a mount point: write beside the old entries, then move them aside and the new in."""
    staging = target / f".plan.{secrets.token_hex(4)}"
    aside = staging.with_name(staging.name + ".old")
    moved: list[Path] = []
    placed: list[Path] = []
    try:
        staging.mkdir()
        written = _write_files(plan, staging)
        aside.mkdir()
        for entry in [e for e in target.iterdir() if e not in (staging, aside)]:
            entry.rename(aside / entry.name)
            moved.append(entry)
        for entry in list(staging.iterdir()):
            entry.rename(target / entry.name)
            placed.append(target / entry.name)
    except BaseException:
        for entry in placed:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        for entry in moved:
            (aside / entry.name).rename(entry)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
    return {key: directory / name for key, name in written.items()}


def _write_files(plan: Plan, directory: Path) -> dict[str, str]:
    """Write the plan's files into the empty ``directory``; their names, by key.

    ``manifests/`` holds NeuroDock's own objects, and one folder per rendered Helm release,
    ``manifests/<release>/``, with the objects that release installs.
    """
    (directory / PLAN_MARKER).write_text(json.dumps(resources_json(plan), indent=2) + "\n")
    (directory / "outputs.json").write_text(json.dumps(plan.outputs, indent=2, sort_keys=True) + "\n")
    manifests = directory / "manifests"
    manifests.mkdir()
    for name, obj in manifest_files(plan).items():
        (manifests / name).write_text(dump_document(obj))
    for release in plan.releases:
        folder = manifests / _safe(release.name)
        folder.mkdir()
        for name, text in chart_object_files(release).items():
            (folder / name).write_text(text)
    (directory / "helm-releases.yaml").write_text(dump_document(helm_releases(plan)))
    return {"resources": PLAN_MARKER, "outputs": "outputs.json", "manifests": "manifests",
            "helmReleases": "helm-releases.yaml"}


def manifest_files(plan: Plan) -> dict[str, dict[str, Any]]:
    """File name -> object. Names are ``<namespace|cluster>.<kind>.<name>.yaml``, which is unique
    for objects that can coexist in one cluster; should two objects clash anyway (a bug the tests
    catch), the later one gets its URN's hash appended instead of overwriting the first."""
    files: dict[str, dict[str, Any]] = {}
    for r in plan.manifests:
        obj = r.manifest or {}
        metadata = obj.get("metadata") or {}
        parts = [metadata.get("namespace") or "cluster", str(obj.get("kind", "object")), str(metadata.get("name"))]
        name = ".".join(_safe(p) for p in parts) + ".yaml"
        if name in files:
            name = name.removesuffix(".yaml") + f".{digest(r.urn, length=8)}.yaml"
        files[name] = obj
    return files


def chart_object_files(release: RenderedRelease) -> dict[str, str]:
    """File name -> YAML of each object a release installs, named like ``manifest_files``."""
    files: dict[str, str] = {}
    for o in release.objects:
        name = ".".join(_safe(p) for p in (o.namespace or "cluster", o.kind, o.object_name)) + ".yaml"
        if name in files:
            name = name.removesuffix(".yaml") + f".{digest(o.urn, length=8)}.yaml"
        files[name] = o.text
    return files


def helm_releases(plan: Plan) -> list[dict[str, Any]]:
    releases = []
    for r in plan.helm_releases:
        inputs = r.inputs
        releases.append({
            "urn": r.urn,
            "name": inputs.get("name"),
            "chart": inputs.get("chart"),
            "repository": (inputs.get("repositoryOpts") or {}).get("repo"),
            "version": inputs.get("version"),
            "namespace": inputs.get("namespace"),
            "values": inputs.get("values") or {},
            "rendered": next((release_json(x) for x in plan.releases if x.urn == r.urn), None),
        })
    return releases


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", part).lower()

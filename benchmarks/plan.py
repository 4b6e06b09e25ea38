"""How fast `neurodock plan` is, against its floor: the time the same run spends importing the Pulumi
SDK modules it touches, which no change of ours can remove.

Run: NEURODOCK_CHART_CACHE=../shared/charts python benchmarks/plan.py [--repeat N] [--models N]

For each shipped stack, in a fresh process as a reviewer runs it:
- floor: the SDK modules' own import time in that run (``python -X importtime``: pulumi, its providers,
  grpc and protobuf);
- wall: the whole `neurodock plan STACK`, interpreter start included (median of --repeat), with the
  render cache warm (the usual case: charts are parsed once per machine) and cold (a first plan);
- rendering: the part of that run spent rendering Helm charts and reading their YAML (``infra.charts``).
Then, in process, what the Pulumi SDK alone spends registering each stack's resources (``sdk_only``:
the same registrations replayed by a program and against an engine that compute nothing), the least any
program that plans through the SDK can take beside its imports; and the marginal cost of one more served
model: the staging stack with --models copies of its model, plain and with a canary and a shadow each,
with the SDK's own share of it measured the same way.

Targets: warm wall at most 1.5 x the floor for dev and prod; at most 20 ms per extra model. The
script prints every figure and exits 3 when a target is missed (1 is a crash, 2 a missing chart), so it
can gate a release without being a timed unit test; CI prints it and fails only on a crash: timings
are noisy there.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

RATIO_TARGET = 1.5
RATIO_STACKS = ("dev", "prod")
PER_MODEL_TARGET_S = 0.020
MISSED = 3
"""The exit code when a figure misses its target."""
SDK_PACKAGES = re.compile(r"^(pulumi|pulumi_[a-z]+|grpc|google\.protobuf)(\.|$)")
"""What the floor counts: the Pulumi SDK, its providers' SDKs, and the gRPC and protobuf runtime under
them."""
ROOT = Path(__file__).resolve().parents[1]


def floor(stack: str, env: dict[str, str]) -> float:
    """Seconds a fresh `neurodock plan STACK` spends importing the SDK modules it touches, with what
    they import in turn (requests under pulumi_kubernetes, say): the cumulative time of each SDK module
    imported from outside the SDK."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "infra.cli", "plan", stack],
                            check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    return sdk_import_seconds(result.stderr)


def sdk_import_seconds(importtime: str) -> float:
    """The SDK's share of ``python -X importtime`` output. Its lines come children first, each indented
    by its depth: a module's parent is the next line less deeply indented."""
    entries = []
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            entries.append((len(match[2]), match[3], int(match[1])))
    total = 0
    inside_sdk: list[tuple[int, bool]] = []  # (depth, is SDK) of the parents of lines still to come
    for depth, name, cumulative in reversed(entries):
        while inside_sdk and inside_sdk[-1][0] >= depth:
            inside_sdk.pop()
        sdk = bool(SDK_PACKAGES.match(name))
        if sdk and not any(is_sdk for _, is_sdk in inside_sdk):
            total += cumulative
        inside_sdk.append((depth, sdk))
    return total / 1e6


def fresh(stack: str, env: dict[str, str]) -> dict[str, float]:
    """One fresh-process `neurodock plan STACK`: its wall time, and the seconds it spent rendering."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--one", stack], check=True, capture_output=True, text=True,
                            env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    return {"wall": wall, **json.loads(result.stdout.splitlines()[-1])}


def one(stack: str) -> None:
    """`neurodock plan STACK` in this process, as the console script runs it (``infra.cli.run``), timing
    what ``infra.charts`` spends rendering and parsing (the last line of output is that figure, as JSON)."""
    from infra import cli

    cli.without_collector()  # first, as the console script does
    import contextlib
    import io

    from infra import charts
    from infra.plan import helm

    spent = [0.0]
    depth = [0]

    def timed(function):
        def wrapper(*args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[0] += time.perf_counter() - start
        return wrapper

    for module, name in ((charts, "helm"), (charts, "crds"), (charts, "crd_bundle"), (helm, "render_releases")):
        setattr(module, name, timed(getattr(module, name)))
    import infra.plan.engine as engine

    engine.render_releases = helm.render_releases
    plan = cli.main

    def main(argv):
        with contextlib.redirect_stdout(io.StringIO()):
            code = plan(argv)
        print(json.dumps({"render": spent[0]}))
        return code

    cli.main = main
    cli.run(["plan", stack])  # ends the process, with the plan's exit code


def with_models(count: int, directory: Path, *, variants: bool) -> Path:
    """The staging stack serving ``count`` copies of its model (with a canary and a shadow each when
    ``variants``), on a GPU pool large enough to hold them all."""
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    config = document["config"]
    template = config["neurodock:models"][0]
    template.update(minReplicas=1, maxReplicas=1)
    if variants:
        template["canary"] = {"weight": 10, "extraArgs": ["--max-num-batched-tokens", "16384"]}
        template["shadow"] = {"percent": 5, "extraArgs": ["--max-num-batched-tokens", "4096"]}
    models = []
    for i in range(count):
        model = copy.deepcopy(template)
        model["name"] = f"model-{i}"
        model["servedName"] = f"model-{i}"
        models.append(model)
    config["neurodock:models"] = models
    [gpu_pool] = [p for p in config["neurodock:nodePools"] if p.get("role") == "gpu"]
    gpu_pool["maxNodes"] = 3 * count + 1
    path = directory / f"Pulumi.bench{count}{'v' if variants else ''}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def in_process(path: Path, repeat: int) -> float:
    from infra.plan.engine import run_plan
    from infra.plan.stackfile import load_stack_file

    stack = load_stack_file(path.stem.removeprefix("Pulumi."), path)
    run_plan(stack)  # this stack's imports and renders, paid once
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run_plan(stack)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sdk_only(path: Path, repeat: int) -> float:
    """Seconds the Pulumi SDK alone spends registering what the stack at ``path`` registers: the same
    resources, with the same types, names, parents, providers, dependencies and inputs, replayed by a
    program that computes nothing, against an engine that computes nothing (each registration answered
    with its own inputs). The replay is lighter than any real program: the SDK's generic resource classes
    spare it the provider SDKs' typed outputs, and its inputs are plain values (no outputs, secrets or
    resource references to await). No program that registers these resources through the SDK can plan
    them faster: a lower bound, not a tight one, of what of a plan is not ours to speed up."""
    import pulumi
    from pulumi.runtime.stack import run_pulumi_func

    from infra.plan.engine import mocked_sdk, run_plan
    from infra.plan.mocks import PlanMocks, wire_to_json
    from infra.plan.stackfile import load_stack_file

    stack = load_stack_file(path.stem.removeprefix("Pulumi."), path)
    replay = [(r, wire_to_json(r.wire, redact=False))
              for r in _dependencies_first(run_plan(stack, render_charts=False).resources)
              if r.type != "pulumi:pulumi:Stack"]
    replayed = {r.urn for r, _ in replay}

    def program() -> None:
        made: dict[str, pulumi.Resource] = {}

        def made_before(urn: str | None) -> pulumi.Resource | None:
            return made[urn] if urn in replayed else None  # the root stack's children have no other parent

        for r, inputs in replay:
            opts = pulumi.ResourceOptions(
                parent=made_before(r.parent), provider=made_before(r.provider),
                depends_on=[made[urn] for urn in r.options["dependsOn"]] or None,
                protect=r.options["protect"] or None, retain_on_delete=r.options["retainOnDelete"] or None)
            if not r.custom:
                made[r.urn] = pulumi.ComponentResource(r.type, r.name, None, opts)
                made[r.urn].register_outputs({})
            elif r.type.startswith("pulumi:providers:"):
                made[r.urn] = pulumi.ProviderResource(r.type.rsplit(":", 1)[1], r.name, inputs, opts)
            else:
                made[r.urn] = pulumi.CustomResource(r.type, r.name, inputs, opts)

    times = []
    collecting = gc.isenabled()
    for _ in range(repeat + 1):  # the first pays for what the replay imports
        mocks = PlanMocks()
        with mocked_sdk(stack, mocks, _echo_engine(mocks), logging.getLogger("sdk-only"), preview=False) as loop:
            gc.disable()  # as while a plan runs
            start = time.perf_counter()
            try:
                loop.run_until_complete(run_pulumi_func(program))
            finally:
                times.append(time.perf_counter() - start)
                if collecting:
                    gc.enable()
    return statistics.median(times[1:])


def _dependencies_first(registrations: list) -> list:
    """The registrations with each one's parent, provider and ``dependsOn`` before it, as the program
    registered them (a plan lists them parents first, siblings by URN, which can put a provider last)."""
    by_urn = {r.urn: r for r in registrations}
    ordered: list = []
    seen: set[str] = set()

    def visit(r) -> None:
        if r.urn not in seen:
            seen.add(r.urn)
            for urn in (r.parent, r.provider, *r.options["dependsOn"]):
                if urn in by_urn:
                    visit(by_urn[urn])
            ordered.append(r)

    for r in registrations:
        visit(r)
    return ordered


def _echo_engine(mocks):
    """Stands in for the engine at no cost: it answers each registration with the request's own inputs."""
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.proto import resource_pb2

    class Echo(MockMonitor):
        def RegisterResource(self, request):
            response = resource_pb2.RegisterResourceResponse(
                urn=self.make_urn(request.parent, request.type, request.name),
                id=request.name if request.custom else "")
            response.object.CopyFrom(request.object)
            return response

    return Echo(mocks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is kept")
    parser.add_argument("--models", type=int, default=100, help="models in the per-model measurement")
    parser.add_argument("--stacks", nargs="+", metavar="STACK", help="only these stacks (default: every shipped one)")
    parser.add_argument("--one", metavar="STACK", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one)

    from components.versions import CHARTS
    from infra.charts import CACHE_ENV, RENDER_CACHE_ENV, cache_dir, cached
    from infra.plan.stackfile import stack_names

    missing = [ref.package for ref in CHARTS if cached(ref) is None]
    if missing:
        print(f"the chart cache {cache_dir()} lacks {', '.join(missing)}: set {CACHE_ENV} (../shared/charts)")
        return 2
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        # Bytecode as an installed package has it (pip compiles on install): the first run writes the
        # project's, under a prefix in the temporary directory, even where the environment says not to write
        # any (PYTHONDONTWRITEBYTECODE), and later runs read it instead of compiling every module again.
        warm_env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                    RENDER_CACHE_ENV: str(Path(tmp) / "rendered"), "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        print("fresh process   floor    warm (render)      ratio   cold (render)")
        figures: dict[str, tuple[float, float]] = {}  # each stack's floor and warm wall time
        for stack in args.stacks or stack_names():
            fresh(stack, warm_env)  # fills the render cache
            base = floor(stack, warm_env)
            warm = [fresh(stack, warm_env) for _ in range(args.repeat)]
            cold = [fresh(stack, {**warm_env, RENDER_CACHE_ENV: str(Path(tmp) / f"cold-{stack}-{i}")})
                    for i in range(args.repeat)]
            wall, render = (statistics.median(r[k] for r in warm) for k in ("wall", "render"))
            cold_wall, cold_render = (statistics.median(r[k] for r in cold) for k in ("wall", "render"))
            ratio = wall / base
            flag = ""
            if stack in RATIO_STACKS and ratio > RATIO_TARGET:
                ok, flag = False, f"  over {RATIO_TARGET} x"
            figures[stack] = (base, wall)
            print(f"{stack:<12} {base:7.2f} s {wall:6.2f} s ({render:4.2f} s) {ratio:6.2f} x  "
                  f"{cold_wall:6.2f} s ({cold_render:4.2f} s){flag}")

        # What the SDK itself spends registering each stack's resources: no plan can be faster than its
        # imports and that together, so the ratio to that sum is what of a plan is ours.
        print("\nthe SDK alone registering the same resources (in process), and the floor with it:")
        for stack, (base, wall) in figures.items():
            sdk = sdk_only(ROOT / "stacks" / f"Pulumi.{stack}.yaml", args.repeat)
            reach = "" if (base + sdk) / base <= RATIO_TARGET else f"  (already over {RATIO_TARGET} x the floor)"
            print(f"{stack:<12} {sdk:6.2f} s   floor + that {base + sdk:5.2f} s: the plan is "
                  f"{wall / (base + sdk):4.2f} x that{reach}")

        print(f"\nin process, staging with N models (median of {args.repeat}):")
        for variants in (False, True):
            paths = [with_models(n, Path(tmp), variants=variants) for n in (1, args.models + 1)]
            small, large = (in_process(path, args.repeat) for path in paths)
            per_model = (large - small) / args.models
            sdk_small, sdk_large = (sdk_only(path, args.repeat) for path in paths)
            sdk_per_model = (sdk_large - sdk_small) / args.models
            what = "with a canary and a shadow" if variants else "plain"
            flag = ""
            if per_model > PER_MODEL_TARGET_S:
                ok, flag = False, f"  over {PER_MODEL_TARGET_S * 1000:.0f} ms"
            print(f"  {what:<27} 1 model {small:6.2f} s, {args.models + 1} models {large:6.2f} s: "
                  f"{per_model * 1000:6.1f} ms per model{flag}")
            beyond = ""
            if sdk_per_model > PER_MODEL_TARGET_S:
                beyond = f"  (already over {PER_MODEL_TARGET_S * 1000:.0f} ms)"
            print(f"  {'':<27} the SDK alone registering the same: {sdk_per_model * 1000:6.1f} ms per model{beyond}")
    return 0 if ok else MISSED


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of `neurodock plan` per shipped stack, what rendering the Helm charts adds to it, and
the marginal cost per catalog model.

Run: NEURODOCK_CHART_CACHE=../shared/charts python benchmarks/plan.py [--repeat N]

Targets (this project's 2-core CI machine): dev under 3 s; rendering every chart adds at most 0.5 s
to a fresh-process `neurodock plan prod`; under 30 ms per extra model. The script prints the
measurements and exits 1 when a target is missed, so it can gate a release without being a timed
unit test.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from components.versions import CHARTS
from infra.charts import CACHE_ENV, cache_dir, cached
from infra.plan.engine import run_plan
from infra.plan.stackfile import REPO_ROOT, load_stack_file, stack_names

DEV_TARGET_S = 3.0
RENDER_TARGET_S = 0.5
PER_MODEL_TARGET_S = 0.030


def cold(stack: str, repeat: int = 3, chart_cache: Path | None = None) -> float:
    """`neurodock plan STACK` in a fresh process, as a reviewer runs it: imports included."""
    env = dict(os.environ)
    if chart_cache is not None:
        env[CACHE_ENV] = str(chart_cache)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "infra.cli", "plan", stack], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed(stack: str, path: Path | None = None, repeat: int = 3) -> float:
    """One more plan in a process that has planned before (imports already paid)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run_plan(load_stack_file(stack, path))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def with_models(count: int, directory: Path) -> Path:
    """The staging stack with its catalog grown to ``count`` copies of its first model."""
    document = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    template = document["config"]["neurodock:models"][0]
    models = []
    for i in range(count):
        model = copy.deepcopy(template)
        model["name"] = f"model-{i}"
        model["servedName"] = f"model-{i}"
        models.append(model)
    document["config"]["neurodock:models"] = models
    path = directory / f"Pulumi.bench{count}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is kept")
    args = parser.parse_args()

    ok = True
    missing = [ref.package for ref in CHARTS if cached(ref) is None]
    if missing:
        print(f"the chart cache {cache_dir()} lacks {', '.join(missing)}: set {CACHE_ENV} (../shared/charts)")
        return 2
    print("stack        fresh process   in process (warm)")
    for stack in stack_names():
        fresh = cold(stack, repeat=args.repeat)
        run_plan(load_stack_file(stack))  # pay this stack's imports once
        warm = timed(stack, repeat=args.repeat)
        print(f"{stack:<12} {fresh:10.3f} s   {warm:10.3f} s")
        if stack == "dev" and fresh > DEV_TARGET_S:
            ok = False
            print(f"  dev is over its {DEV_TARGET_S} s target")

    with tempfile.TemporaryDirectory() as empty:
        without = cold("prod", repeat=args.repeat, chart_cache=Path(empty))
    with_charts = cold("prod", repeat=args.repeat)
    added = with_charts - without
    print(f"\nprod, fresh process: {with_charts:.3f} s rendering its charts, {without:.3f} s without; "
          f"rendering adds {added:.3f} s (target <= {RENDER_TARGET_S} s)")
    if added > RENDER_TARGET_S:
        ok = False

    with tempfile.TemporaryDirectory() as tmp:
        results = {n: timed(f"bench{n}", with_models(n, Path(tmp)), args.repeat) for n in (1, 10, 50)}
    print("\nmodels in catalog  median wall time")
    for n, seconds in results.items():
        print(f"{n:>17}  {seconds:6.3f} s")
    per_model = (results[50] - results[1]) / 49
    print(f"\nmarginal cost per model: {per_model * 1000:.1f} ms (target < {PER_MODEL_TARGET_S * 1000:.0f} ms)")
    if per_model > PER_MODEL_TARGET_S:
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

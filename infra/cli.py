"""The ``neurodock`` command (also ``python -m infra.cli``).

Exit codes: 0 success; 2 invalid configuration or usage; 1 anything else.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import json
import os
import re
import sys
import traceback
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
CHART_CACHE_ENV = "NEURODOCK_CHART_CACHE"
"""Kept equal to ``infra.charts.CACHE_ENV`` (a test says so): importing that here would slow ``--help``."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader left early (`neurodock plan dev --json | head`): not the command's error
        with contextlib.suppress(AttributeError, OSError, ValueError):  # output that is no file (a test's)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        return EXIT_FAILURE
    except Exception as exc:
        if os.environ.get("NEURODOCK_DEBUG"):
            traceback.print_exc()
        print(f"neurodock: error: {exc}", file=sys.stderr)
        print("neurodock: set NEURODOCK_DEBUG=1 for a traceback", file=sys.stderr)
        return EXIT_FAILURE


def version() -> str:
    """The installed package's version (pyproject.toml's ``version``), as package metadata records it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("neurodock")
    except PackageNotFoundError:  # run from a checkout that was never `pip install -e .`'d
        return "unknown (not installed: pip install -e .)"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _progress(args: argparse.Namespace, message: str):
    """A spinner with ``message`` on stderr while slow work runs: only when stderr is a terminal, and
    never with ``--json`` or ``NEURODOCK_NO_PROGRESS``, so CI logs and piped output stay clean."""
    if getattr(args, "json", False) or os.environ.get("NEURODOCK_NO_PROGRESS") or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(file=sys.stderr).status(message)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurodock",
        description="NeuroDock: LLM inference on Kubernetes (EKS, GKE, kind) as one Pulumi program.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("neurodock stacks", "neurodock plan dev", "neurodock check staging",
                         "neurodock charts pull", "neurodock COMMAND --help"),
    )
    parser.add_argument("--version", action="version", version=f"neurodock {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    plan = commands.add_parser(
        "plan", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("neurodock plan dev                 # the summary, then the details",
                         "neurodock plan staging --tree      # with the full component tree",
                         "neurodock plan prod --json > plan.json",
                         "neurodock plan prod --out /tmp/prod-plan --require-charts"),
        help="preview a stack offline: what `pulumi up -s STACK` would create",
        description="Validate stacks/Pulumi.STACK.yaml and run the stack program in process under Pulumi's "
        "mocks. Needs no credentials and no Pulumi CLI; creates nothing. Prints a summary first (resources by "
        "component, models, cost, warnings grouped), then the details and how to reach the gateway.",
    )
    _stack_arguments(plan)
    plan.add_argument("--out", type=Path, metavar="DIR",
                      help="write resources.json, outputs.json, manifests/ (with manifests/RELEASE/ per Helm "
                      "release) and helm-releases.yaml to DIR, replacing DIR as a whole, all or nothing. DIR must "
                      "be new, empty or an earlier plan's --out (it holds resources.json); checked before planning")
    plan.add_argument("--tree", action="store_true", help="also print the full component tree")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON instead of text (always complete; "
                      "with 'summary' and 'endpoint')")
    plan.set_defaults(run=_plan)

    check = commands.add_parser(
        "check", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("neurodock check staging", "neurodock check prod --level mandatory",
                         "neurodock check prod --policy-config policy-config.json --json"),
        help="run the policy pack on a stack offline: what reviewers run on a pull request",
        description="Plan the stack offline (as `neurodock plan`) and run every policy of the CrossGuard pack "
        "in policies/neurodock on it, in process. Each violation names the stack-config key its resource came "
        "from, where one did. Exit 1 on a mandatory violation, 2 on invalid config.",
    )
    _stack_arguments(check)
    check.add_argument("--policy-config", type=Path, metavar="PATH",
                       help="policy config JSON, the file `pulumi preview --policy-pack-config` takes: "
                       "enforcement levels and policy properties")
    check.add_argument("--level", choices=("mandatory", "advisory"), default="advisory",
                       help="list violations down to this level: 'mandatory' hides advisory ones (the summary still "
                       "counts them; exit codes are unchanged); default 'advisory': all")
    check.add_argument("--json", action="store_true", help="print the violations as JSON")
    check.set_defaults(run=_check)

    diff = commands.add_parser(
        "diff", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("neurodock diff prod prod-dr --location-only",
                         "neurodock diff prod prod --stack-file prod=edited.yaml",
                         "neurodock diff --files old.yaml new.yaml --json"),
        help="compare two stacks' offline plans resource by resource",
        description="Plan stacks A and B (or two stack files, --files) offline and list the resources added, "
        "removed and changed, with each changed value and whether stack B's location (region, zones, project) "
        "explains it.",
    )
    diff.add_argument("a", metavar="A", nargs="?", help="first stack (stacks/Pulumi.A.yaml); not with --files")
    diff.add_argument("b", metavar="B", nargs="?", help="second stack (stacks/Pulumi.B.yaml); not with --files")
    diff.add_argument("--files", nargs=2, type=Path, metavar=("A.yaml", "B.yaml"),
                      help="compare these two stack files instead of stacks A and B; each stack's name comes from its "
                      "file name (Pulumi.prod.yaml: prod; else the name without .yaml), and both may be of one stack")
    diff.add_argument("--stack-file", action="append", default=[], metavar="STACK=PATH",
                      help="read this file for STACK instead of stacks/Pulumi.STACK.yaml (once per stack); when A and "
                      "B are the same stack, the file is B: what would this edit change?")
    diff.add_argument("--a-plan", type=Path, metavar="FILE",
                      help="read side A from FILE, the output of `neurodock plan A --json` saved earlier (on the "
                      "main branch, say): what does this code change do to stack A? Resources B keeps under an "
                      "alias show as moved")
    diff.add_argument("--location-only", action="store_true",
                      help="exit 1 unless every difference is explained by the location (a DR stack's check)")
    diff.add_argument("--full", action="store_true",
                      help="show changed values in full (by default the text cuts long ones short)")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON (always in full)")
    _chart_arguments(diff)
    diff.set_defaults(run=_diff)

    chart_command = commands.add_parser(
        "charts", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("neurodock charts list", "neurodock charts pull",
                         "neurodock charts pull --mirror https://charts.example.com/mirror",
                         f"{CHART_CACHE_ENV}=/srv/charts neurodock charts list"),
        help="the chart cache: what each stack's Helm releases need, and fetching it",
        description="Helm charts are rendered offline from a cache of packaged charts (<chart>-<version>.tgz), "
        f"and `pulumi up` installs those same files. The cache is ${CHART_CACHE_ENV}, else charts/ in your "
        "user cache directory.",
    )
    chart_actions = chart_command.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = chart_actions.add_parser(
        "list", help="each pinned chart: which stacks need it, and whether it is cached",
        description="Each pinned chart and CRD bundle, the stacks that need it and whether it is cached. What a "
        "stack needs is learned by planning it once (without rendering charts) and kept in the user cache "
        "directory, keyed by the stack file and the program's code, so later runs do not plan again.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("neurodock charts list", "neurodock charts list prod --json"))
    listing.add_argument("stacks", nargs="*", metavar="STACK", help="only these stacks (default: every shipped stack)")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    _chart_cache_argument(listing)
    listing.set_defaults(run=_charts_list)
    pull = chart_actions.add_parser(
        "pull", help="fetch the charts the stacks need into the cache (needs network)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("neurodock charts pull", "neurodock charts pull prod --chart-cache /srv/charts",
                         "neurodock charts pull --mirror https://charts.example.com/mirror"))
    pull.add_argument("stacks", nargs="*", metavar="STACK", help="only the charts of these stacks (default: every "
                      "pinned chart)")
    pull.add_argument("--mirror", metavar="URL", type=_mirror_url,
                      help="an HTTP chart repository that mirrors the upstream charts (http:// or https://), used "
                      "instead of each chart's own repository")
    pull.add_argument("--force", action="store_true", help="fetch again even when a package is cached")
    _chart_cache_argument(pull)
    pull.set_defaults(run=_charts_pull)

    stacks = commands.add_parser(
        "stacks", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("neurodock stacks", "neurodock stacks --json | jq -r '.[].stack'"),
        help="list the shipped stacks with their cloud, region and environment",
        description="Validate every stacks/Pulumi.*.yaml and list it. CI builds its per-stack jobs from "
        "`neurodock stacks --json`, so a new stack file is previewed without editing a workflow.",
    )
    stacks.add_argument("--json", action="store_true", help="print a JSON list")
    stacks.set_defaults(run=_stacks)

    from infra import rollout  # its own module (docs/rollouts.md); it imports nothing heavy at load

    rollout.register(commands)
    return parser


def _mirror_url(value: str) -> str:
    """``--mirror``: Helm fetches a chart repository's index.yaml over HTTP, so only an http(s) URL with a host
    names one; anything else is a usage error (exit 2) before any network call."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value
        _ = parts.port  # a port that is not a number raises
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(
            f"must be the http:// or https:// URL of a chart repository, e.g. https://charts.example.com/mirror "
            f"(got {value!r})")
    return value


def _stack_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments that name one stack, as ``_load_and_plan`` reads them."""
    command.add_argument("stack", metavar="STACK", help="stack name: reads stacks/Pulumi.STACK.yaml")
    command.add_argument("--stack-file", type=Path, metavar="PATH", help="read this stack file instead")
    command.add_argument("--bootstrap", action="store_true",
                         help="the state-backend project (infra/bootstrap): STACK is aws or gcp")
    _chart_arguments(command)


def _chart_cache_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--chart-cache", type=Path, metavar="DIR",
                         help=f"the chart cache directory (default: ${CHART_CACHE_ENV}, else charts/ in your user "
                         "cache directory)")


def _chart_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments that say where charts come from, as ``_load_and_plan`` reads them."""
    _chart_cache_argument(command)
    command.add_argument("--require-charts", action="store_true",
                         help="exit 2 when a Helm release's chart is not cached (by default the plan warns and leaves "
                         "that release's objects out)")


def _plan(args: argparse.Namespace) -> int:
    # Imported here so that `neurodock --help` stays instant.
    from infra.plan import render

    # Before planning, which takes seconds: a bad path costs nothing and creates nothing.
    if args.out is not None and (problem := render.out_problem(args.out)):
        print(f"neurodock: --out {args.out}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    with _progress(args, f"planning stack {args.stack} offline…"):
        plan = _load_and_plan(args)
    if isinstance(plan, int):
        return plan
    if args.json:
        from infra.plan.summary import endpoint_json, summary_json

        document = render.as_json(plan)
        document |= {"summary": summary_json(plan, document), "endpoint": endpoint_json(plan)}
        print(json.dumps(document, indent=2))
    else:
        sys.stdout.write(render.text(plan, tree=args.tree))
    if args.out:
        try:
            written = render.write_out(plan, args.out)
        except OSError as exc:
            print(f"neurodock: --out {args.out}: writing the plan failed, so nothing was written and {args.out} is "
                  f"as it was: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        if not args.json:
            print(f"\nWrote {', '.join(str(p) for p in written.values())}")
    return EXIT_OK


def _use_chart_cache(args: argparse.Namespace) -> int | None:
    """Point the program and the renderer at ``--chart-cache``; an exit code when it is unusable."""
    directory = getattr(args, "chart_cache", None)
    if directory is None:
        return None
    if not directory.is_dir():
        print(f"neurodock: --chart-cache {directory}: no such directory; create it, or fill it with "
              f"`neurodock charts pull --chart-cache {directory}`", file=sys.stderr)
        return EXIT_USAGE
    # The stack program reads the cache from the environment, as it does under `pulumi up`.
    os.environ[CHART_CACHE_ENV] = str(directory.resolve())
    return None


def _load_stack(args: argparse.Namespace, *, root: Path | None = None):
    """The stack file ``args.stack`` (or ``args.stack_file``) names, or the usage exit code after saying why."""
    from infra.plan.stackfile import REPO_ROOT, StackFileError, load_stack_file

    try:
        return load_stack_file(args.stack, args.stack_file, root=root or REPO_ROOT)
    except StackFileError as exc:
        print(f"neurodock: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _load_and_plan(args: argparse.Namespace, *, render_charts: bool = True):
    """The stack's offline plan, or an exit code when it cannot be had."""
    from infra.config import ConfigError
    from infra.plan.engine import BOOTSTRAP_DIR, AdmissionError, ProgramError, run_plan
    from infra.plan.stackfile import REPO_ROOT

    if (code := _use_chart_cache(args)) is not None:
        return code
    stack = _load_stack(args, root=BOOTSTRAP_DIR if getattr(args, "bootstrap", False) else REPO_ROOT)
    if isinstance(stack, int):
        return stack
    from infra import charts

    try:
        plan = run_plan(stack, render_charts=render_charts)
    except ConfigError as exc:
        _print_config_error(stack.path, exc)
        return EXIT_USAGE
    except charts.NotCached as exc:
        print(f"neurodock: {stack.stack}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AdmissionError as exc:
        print(f"neurodock: {stack.stack}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ProgramError as exc:
        print(f"neurodock: the stack program failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if getattr(args, "require_charts", False) and plan.missing_charts:
        noun = "chart is" if len(plan.missing_charts) == 1 else "charts are"
        print(f"neurodock: {stack.stack}: {len(plan.missing_charts)} {noun} not in the chart cache "
              f"{charts.cache_dir()} (--require-charts):", file=sys.stderr)
        for missing in plan.missing_charts:
            what = f"{missing.ref.name} {missing.ref.version}" if missing.ref else f"{missing.chart} {missing.version}"
            print(f"  release '{missing.release}': chart {what}", file=sys.stderr)
        print(f"neurodock: fetch them with `{charts.PULL_HINT}`, or point --chart-cache (or {CHART_CACHE_ENV}) at a "
              "directory that holds them", file=sys.stderr)
        return EXIT_USAGE
    return plan


def _check(args: argparse.Namespace) -> int:
    from neurodock_policies import POLICIES

    from infra.check import PASSES, PolicyConfigError, check, load_policy_config

    settings = {}
    if args.policy_config:
        # Before planning, so a typo in the file costs nothing.
        try:
            settings = load_policy_config(args.policy_config, POLICIES)
        except PolicyConfigError as exc:
            print(f"neurodock: --policy-config {args.policy_config}: {len(exc.problems)} problem(s):", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return EXIT_USAGE
    with _progress(args, f"planning stack {args.stack} and running {len(POLICIES)} policies…"):
        plan = _load_and_plan(args)
        if isinstance(plan, int):
            return plan
        report = check(plan, lambda: _first_preview(plan), POLICIES, settings)
    violations, mandatory = report.violations, report.mandatory
    listed = mandatory if args.level == "mandatory" else violations
    if args.json:
        print(json.dumps({"stack": args.stack, "policies": [p.name for p in POLICIES], "level": args.level,
                          "counts": {"mandatory": len(mandatory), "advisory": len(violations) - len(mandatory)},
                          "violations": [v.to_json() for v in listed],
                          "notApplicable": report.not_applicable,
                          "firstPreview": [g.to_json() for g in report.preview_gaps]}, indent=2))
    else:
        for pass_name, title in PASSES.items():
            found = [v for v in listed if v.found_by == pass_name]
            if found:
                print(f"{title}:")
            # Grouped by policy, mandatory ones first: 28 advisories of one policy read as one finding.
            by_policy: dict[str, list] = {}
            for v in sorted(found, key=lambda v: v.enforcement != "mandatory"):
                by_policy.setdefault(v.policy, []).append(v)
            for policy, items in by_policy.items():
                print(f"{items[0].enforcement:9}  {policy}: {len(items)} violation{'s' if len(items) > 1 else ''}")
                for v in items:
                    print(f"  {v.urn}\n    {v.message}")
                    if v.config:
                        print(f"    config: {v.config}")
        for name, reason in report.not_applicable.items():
            print(f"not applicable under CrossGuard: {name}: {reason}")
        if report.preview_gaps:
            print("On the first `pulumi preview` of a new stack (outputs not known yet), these mandatory checks "
                  "do not hold:")
            for gap in report.preview_gaps:
                print(f"  {gap.policy}  {gap.urn or ''}\n    {gap.why}")
        hidden = " (advisory ones not listed: --level mandatory)" if len(listed) < len(violations) else ""
        print(f"{args.stack}: {len(POLICIES)} policies, {len(mandatory)} mandatory and "
              f"{len(violations) - len(mandatory)} advisory violations{hidden}")
        counted = Counter((v.enforcement, v.policy) for v in violations)
        for (level, policy), n in sorted(counted.items(), key=lambda kv: (kv[0][0] != "mandatory", -kv[1], kv[0][1])):
            print(f"  {n:>4}  {level:9}  {policy}")
    return EXIT_FAILURE if mandatory else EXIT_OK


def _first_preview(plan):
    """``plan``'s stack planned as its first `pulumi preview` sees it."""
    from infra.plan.engine import run_plan

    return run_plan(plan.stack, render_charts=False, first_preview=True)


def _diff(args: argparse.Namespace) -> int:
    from infra.diff import SavedPlanError, diff_plans, render, saved_plan

    sides = _diff_sides(args)
    if isinstance(sides, int):
        return sides
    plans = []
    for stack, file in sides:
        plan = _load_and_plan(argparse.Namespace(stack=stack, stack_file=file, chart_cache=args.chart_cache,
                                                 require_charts=args.require_charts))
        if isinstance(plan, int):
            return plan
        plans.append(plan)
    if args.a_plan is not None:
        try:
            plans[0] = saved_plan(json.loads(args.a_plan.read_text()), plans[0])
        except (OSError, ValueError, SavedPlanError) as exc:
            print(f"neurodock: --a-plan {args.a_plan}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    result = diff_plans(*plans)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        sys.stdout.write(render(result, full=args.full))
    return EXIT_FAILURE if args.location_only and result.other else EXIT_OK


def _diff_sides(args: argparse.Namespace) -> list[tuple[str, Path | None]] | int:
    """Each side's stack name and stack file (None: stacks/Pulumi.STACK.yaml), or an exit code."""
    if args.files:
        if args.a is not None or args.stack_file:
            print("neurodock: --files takes the two stack files to compare: pass either stacks A B (with "
                  "--stack-file) or --files A.yaml B.yaml, not both", file=sys.stderr)
            return EXIT_USAGE
        for path in args.files:
            if not path.is_file():
                print(f"neurodock: --files {path}: no such file; pass two stack files", file=sys.stderr)
                return EXIT_USAGE
        # Pulumi.prod.yaml is stack prod; a copy named otherwise (edit.yaml) is stack "edit".
        # Any other character (a space: "my edit.yaml") becomes '-', as a stack name cannot hold it.
        return [(re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem.removeprefix("Pulumi.")) or "stack", path)
                for path in args.files]
    if args.b is None:
        print("neurodock: diff compares two stacks: pass A B, or --files A.yaml B.yaml", file=sys.stderr)
        return EXIT_USAGE
    files: dict[str, Path] = {}
    for item in args.stack_file:
        stack, sep, path = item.partition("=")
        if not sep or stack not in (args.a, args.b) or not path:
            print(f"neurodock: --stack-file {item!r}: write it as STACK=PATH with STACK one of "
                  f"{args.a!r}, {args.b!r}", file=sys.stderr)
            return EXIT_USAGE
        if stack in files:
            print(f"neurodock: --stack-file {item!r}: stack {stack!r} already reads {files[stack]}; pass one "
                  "--stack-file per stack (to compare two files of one stack, use --files A.yaml B.yaml)",
                  file=sys.stderr)
            return EXIT_USAGE
        files[stack] = Path(path)
    # `neurodock diff prod prod --stack-file prod=edited.yaml`: the file is the B side.
    return [(args.a, None if args.a == args.b else files.get(args.a)), (args.b, files.get(args.b))]


def _stacks(args: argparse.Namespace) -> int:
    from infra.config import ConfigError
    from infra.plan.engine import validate
    from infra.plan.stackfile import REPO_ROOT, StackFileError, load_stack_file, stack_names

    rows = []
    for name in stack_names():  # validation only: fast, no progress display needed
        try:
            stack = load_stack_file(name)
            config = validate(stack)
        except StackFileError as exc:
            print(f"neurodock: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except ConfigError as exc:
            _print_config_error(stack.path, exc)
            return EXIT_USAGE
        rows.append({"stack": name, "provider": str(config.cloud.provider),
                     "region": getattr(config.cloud, "region", None), "environment": config.environment,
                     "runsOn": config.deploy.runs_on, "file": str(stack.path.relative_to(REPO_ROOT))})
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'STACK':12} {'CLOUD':5} {'REGION':16} ENVIRONMENT")
        for row in rows:
            print(f"{row['stack']:12} {row['provider']:5} {row['region'] or '-':16} {row['environment']}")
    return EXIT_OK


def _stack_charts(names: Sequence[str], args: argparse.Namespace | None = None) -> dict[str, list[str]] | int:
    """Chart package -> the stacks whose releases install it, from each stack's offline plan (charts
    not rendered), kept per stack by ``_needs_cached``; an exit code when a stack cannot be planned."""
    from infra.plan.stackfile import stack_names

    needs: dict[str, list[str]] = {}
    for name in names or stack_names():
        with _progress(args or argparse.Namespace(), f"learning which charts stack {name} needs (planned once, "
                       "then cached)…"):
            keys = _needs_cached(name)
        if isinstance(keys, int):
            return keys
        for key in keys:
            needs.setdefault(key, []).append(name)
    return needs


def _needs_cached(name: str) -> list[str] | int:
    """The chart packages and CRD bundle folders stack ``name`` needs. Planning a stack takes seconds, and
    the answer only depends on the stack file and the program's code: it is kept on disk under a digest of
    both (in the render cache's directory; ``NEURODOCK_RENDER_CACHE=off`` keeps nothing)."""
    import hashlib

    from infra import charts
    from infra.plan.stackfile import REPO_ROOT

    stack_file = REPO_ROOT / "stacks" / f"Pulumi.{name}.yaml"
    directory = charts.render_cache_dir()
    path = None
    if directory is not None and stack_file.is_file():
        digest = hashlib.sha256(stack_file.read_bytes())
        for folder in ("infra", "components"):
            for source in sorted((REPO_ROOT / folder).rglob("*")):
                if source.is_file() and "__pycache__" not in source.parts:
                    digest.update(str(source.relative_to(REPO_ROOT)).encode() + b"\0" + source.read_bytes())
        path = directory / f"chart-needs-{name}-{digest.hexdigest()[:32]}.json"
        with contextlib.suppress(OSError, ValueError):
            return list(json.loads(path.read_text()))
    keys = _stack_needs(name)
    if path is not None and not isinstance(keys, int):
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(keys))
    return keys


def _stack_needs(name: str) -> list[str] | int:
    """What ``_needs_cached`` keeps: learned from the stack's offline plan."""
    from components.charts import ChartRef
    from infra import charts

    # The releases' chart inputs say which charts; no need to render them. What the program
    # renders or reads itself is recorded as it goes.
    with charts.listing() as read:
        plan = _load_and_plan(argparse.Namespace(stack=name, stack_file=None), render_charts=False)
    if isinstance(plan, int):
        return plan
    refs = [charts.ref_of(str(r.inputs.get("chart")), r.inputs.get("version")) for r in plan.helm_releases]
    return list(dict.fromkeys([ref.package for ref in refs if ref is not None]
                              + [w.package if isinstance(w, ChartRef) else w.directory for w in read]))


def _charts_list(args: argparse.Namespace) -> int:
    from components.versions import CHARTS, CRD_BUNDLES
    from infra import charts

    if (code := _use_chart_cache(args)) is not None:
        return code
    needs = _stack_charts(args.stacks, args)
    if isinstance(needs, int):
        return needs
    directory = charts.cache_dir()
    rows = [{"chart": ref.name, "version": ref.version, "repository": ref.repository,
             "stacks": needs.get(ref.package, []),
             "cached": str(path) if (path := charts.cached(ref, directory)) else None} for ref in CHARTS]
    rows += [{"chart": f"{b.name} CRDs", "version": b.version, "repository": b.url,
              "stacks": needs.get(b.directory, []),
              "cached": str(directory / b.directory) if all((directory / b.directory / f).is_file() for f in b.files)
              else None} for b in CRD_BUNDLES]
    if args.json:
        print(json.dumps({"cache": str(directory), "charts": rows}, indent=2))
        return EXIT_OK
    print(f"chart cache: {directory}")
    for row in rows:
        state = "cached" if row["cached"] else "MISSING"
        print(f"  {row['chart']:24} {row['version']:9} {state:8} stacks: {', '.join(row['stacks']) or '-'}")
    missing = [r for r in rows if r["stacks"] and not r["cached"]]
    if missing:
        print(f"{len(missing)} needed chart(s) missing: run `{charts.PULL_HINT}`")
    return EXIT_OK


def _charts_pull(args: argparse.Namespace) -> int:
    from components.versions import CHARTS, CRD_BUNDLES
    from infra import charts

    if args.chart_cache is not None:
        args.chart_cache.mkdir(parents=True, exist_ok=True)
    if (code := _use_chart_cache(args)) is not None:
        return code
    wanted: tuple = (*CHARTS, *CRD_BUNDLES)
    if args.stacks:
        needs = _stack_charts(args.stacks, args)
        if isinstance(needs, int):
            return needs
        wanted = (*(ref for ref in CHARTS if ref.package in needs), *(b for b in CRD_BUNDLES if b.directory in needs))
    directory = charts.cache_dir()
    failed = []
    for ref in wanted:
        try:
            with _progress(args, f"fetching {ref}…"):
                pulled = (charts.pull(ref, directory, mirror=args.mirror, force=args.force) if ref in CHARTS
                          else charts.pull_crds(ref, directory, mirror=args.mirror, force=args.force))
        except charts.PullError as exc:
            failed.append(ref)
            print(f"neurodock: cannot fetch {exc}", file=sys.stderr)
            continue
        print(f"{'fetched' if pulled.fetched else 'cached '}  {ref}  {pulled.path}")
    if failed:
        print(f"neurodock: {len(failed)} of {len(wanted)} chart(s) not fetched into the cache {directory}:",
              file=sys.stderr)
        for ref in failed:
            print(f"  {ref}", file=sys.stderr)
        source = f"the mirror {args.mirror}" if args.mirror else "their repositories"
        print(f"neurodock: this machine could not reach {source}. Either pass --mirror URL (an HTTP chart repository "
              f"that holds the same packages, and crds/NAME-VERSION/ for the CRD bundles), or copy the packages from "
              f"a machine that has them and point {CHART_CACHE_ENV} (or --chart-cache) at that directory",
              file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _print_config_error(path: Path, exc: Exception) -> None:
    problems = getattr(exc, "problems", [])
    noun = "problem" if len(problems) == 1 else "problems"
    print(f"neurodock: {path}: {len(problems)} configuration {noun}:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script and ``python -m infra.cli``: ``main``, in a process set up for a command that
    builds a large, long-lived object graph and then ends (``without_collector``, ``end``)."""
    without_collector()
    end(main(argv))


def without_collector() -> None:
    """Turn the cycle collector off for the rest of the process. Every command is a batch that ends (none
    polls or waits), and what it allocates lives until then: the imports before a plan, then the plan's
    own heap (the plan turns the collector off while it runs, ``infra.plan.engine.run_plan``, but put back
    on, its first pass over the plan's heap took 0.2-0.4 s for prod, to free a few megabytes). A command
    that plans several stacks still frees each plan before the next (``run_plan`` collects first when a
    plan ran before it with the collector off). A command that runs for long must turn it back on."""
    gc.disable()


def end(code: int | None) -> NoReturn:
    """End the process with ``code`` (None is 0, as for ``sys.exit``) without the interpreter's teardown. A
    plan leaves about two million objects; Python's own exit frees them one by one, which took 0.5-0.7 s of
    a 2.5-3.5 s `neurodock plan dev` here, for memory the OS takes back at once. What must happen at exit
    still does: the exit handlers run (``logging``'s, the SDK's tracer's when ``TRACEPARENT`` is set) and the
    standard streams are flushed. Every file and temporary directory ``main`` opened is closed by then (each
    is a ``with`` block). Under a profiler, tracer or coverage tool, which write their results after the
    program returns, the process exits the usual way."""
    code = 0 if code is None else code
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # the reader left early (``main`` says nothing of it either)
            pass
        except OSError as exc:  # a full disk under a redirect, say: the output is not whole
            with contextlib.suppress(OSError):
                print(f"neurodock: error: writing the output: {exc}", file=sys.__stderr__, flush=True)
            code = code or EXIT_FAILURE
    os._exit(code)


if __name__ == "__main__":
    run()

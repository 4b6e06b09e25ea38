"""The eval gate: a Job that runs a promptfoo-style suite (``eval_runner.py``) against one model version's own
Service, before the model's route gives that version any traffic.

Why a Job gates the route: pulumi-kubernetes awaits a ``batch/v1`` Job until its ``Complete`` condition is
``True`` and fails the resource as soon as a ``Failed`` condition is (reasons ``BackoffLimitExceeded``,
``DeadlineExceeded``), within the resource's ``customTimeouts`` (default 10 minutes); it also reports the Job's
pods' errors, a terminated container's ``message`` among them (pulumi/pulumi-kubernetes
``provider/pkg/await/job.go``, ``provider/pkg/await/checker/job/check.go``, ``provider/pkg/await/checker/pod/
check.go`` ``containerTerminatedError``; docs/upstream.md). A route that ``dependsOn`` the Job is therefore
created or updated only after the suite passed, and a failing suite fails ``pulumi up`` with the route as it was.
``terminationMessagePolicy: FallbackToLogsOnError`` makes the end of the runner's log (its ``FAIL`` lines) that
message, so the failing cases appear in ``pulumi up``'s error as well as in ``kubectl logs``.

Comparing (``max_regression`` set), the Job asks the stable version's own Service the same suite first
(``--baseline-url``) and fails when the version passes more than ``max_regression`` cases fewer; it then waits for
the stable version's server too, and the stable version's NetworkPolicy must admit the Job's pods
(:func:`eval_pod_labels`), as the version's does.

The Job's name carries a revision (a hash of the version's settings and the suite): a new canary, or a changed
suite, replaces the Job and runs the suite again; a weight step alone does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.errors import InputProblems
from components.k8s import PART_OF_VALUE, restricted_container_security_context, script_job
from components.versions import EVAL_RUNNER_IMAGE

RUNNER = Path(__file__).with_name("eval_runner.py")
MOUNT = "/eval"
NAME_VALUE = "eval-gate"
"""The Job pods' ``app.kubernetes.io/name``: the version's NetworkPolicy admits pods with these labels."""


def eval_pod_labels(version: str) -> dict[str, str]:
    """The labels of the eval Job's pods for one version (``<model>-canary``): the version's server admits them."""
    return {labels.NAME: NAME_VALUE, labels.INSTANCE: version}


@dataclass(frozen=True, kw_only=True)
class EvalGateArgs:
    suite: str
    """The suite file's text (promptfoo-style JSON, checked by the config)."""
    cases: int
    """How many cases the suite holds (prompts x tests): sizes the deadline."""
    pass_rate: float
    """Share of cases that must pass, 0-1."""
    max_regression: int | None
    """Cases the version may pass fewer than the stable version, asked the same suite; None: no comparison."""
    request_timeout_s: int
    """Longest one answer may take."""
    revision: str
    """Changes whenever the version or the suite changes; part of the Job's name."""
    node_selector: dict[str, str]
    """Where the Job runs: the system pool."""


@dataclass(frozen=True, kw_only=True)
class EvalTarget:
    """The version the suite is run against, known once its server exists."""

    version: str
    """The version's resource-name prefix (``<model>-canary``)."""
    namespace: str
    service: pulumi.Input[str]
    """The version's own Service (not the gateway)."""
    port: int
    served_name: str
    """The OpenAI ``model`` the version serves."""
    baseline_service: pulumi.Input[str] | None = None
    """The stable version's own Service, in the same namespace on the same port; required when comparing."""


def deadline_s(args: EvalGateArgs) -> int:
    """The Job's ``activeDeadlineSeconds``: every case at its longest (twice when the stable version is asked
    too), and two minutes to pull and start."""
    runs = 1 if args.max_regression is None else 2
    return runs * args.cases * args.request_timeout_s + 120


def eval_job(name: str, args: EvalGateArgs, target: EvalTarget, *, parent: pulumi.Resource,
             wait_for: list[pulumi.Resource]) -> k8s.batch.v1.Job:
    """The runner and suite as a ConfigMap, and the Job that runs them against ``target`` once ``wait_for``
    (the version's server: its Deployment awaited ready) exists."""
    problems = InputProblems()
    if args.cases < 1:
        problems.add("cases", "EvalGateArgs.cases must be at least 1: a suite without cases gates nothing")
    if not 0 < args.pass_rate <= 1:
        problems.add("pass_rate", f"EvalGateArgs.pass_rate must be in (0, 1] (got {args.pass_rate})")
    if args.max_regression is not None and args.max_regression < 0:
        problems.add("max_regression", f"EvalGateArgs.max_regression must be 0 or more (got {args.max_regression})")
    if args.max_regression is not None and target.baseline_service is None:
        problems.add("baseline_service", "EvalTarget.baseline_service is required when EvalGateArgs.max_regression "
                     "is set: the stable version's Service to compare with")
    problems.raise_any()
    object_labels = {**eval_pod_labels(target.version), labels.PART_OF: PART_OF_VALUE,
                     labels.COMPONENT: "serving"}
    files = k8s.core.v1.ConfigMap(
        f"{name}-suite",
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=target.namespace, labels=object_labels),
        data={"eval_runner.py": RUNNER.read_text(), "suite.json": args.suite},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    active_s = deadline_s(args)
    def url(service: pulumi.Input[str]) -> pulumi.Output[str]:
        return pulumi.Output.format("http://{0}.{1}.svc.cluster.local:{2}", service, target.namespace, target.port)

    compare: list[pulumi.Input[str]] = []
    if args.max_regression is not None:
        compare = ["--baseline-url", url(target.baseline_service), "--max-regression", str(args.max_regression)]
    return script_job(
        f"{name}-job", name=f"{target.version[:40]}-eval-{args.revision[:10]}", namespace=target.namespace,
        object_labels=object_labels, revision=args.revision, active_s=active_s,
        node_selector=args.node_selector, parent=parent, depends_on=wait_for,
        container=k8s.core.v1.ContainerArgs(
            name="eval",
            image=EVAL_RUNNER_IMAGE,
            command=["python", f"{MOUNT}/eval_runner.py", "--suite", f"{MOUNT}/suite.json",
                     "--base-url", url(target.service), "--model", target.served_name,
                     "--pass-rate", f"{args.pass_rate:g}", "--timeout", str(args.request_timeout_s), *compare],
            env=[k8s.core.v1.EnvVarArgs(name="PYTHONDONTWRITEBYTECODE", value="1")],
            # The runner's last lines (each failing case, then the tally) become the terminated container's
            # message, which the provider puts in `pulumi up`'s error.
            termination_message_policy="FallbackToLogsOnError",
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="eval", mount_path=MOUNT, read_only=True)],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"}),
            security_context=restricted_container_security_context(),
        ),
        volumes=[k8s.core.v1.VolumeArgs(name="eval", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
            name=files.metadata.name))],
    )

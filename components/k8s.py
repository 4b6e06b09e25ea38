"""Small builders for Kubernetes objects every layer needs: namespaces with Pod Security labels and
the security contexts of the Pod Security Standard "restricted" profile."""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_kubernetes as k8s

from components import labels

PART_OF_VALUE = "neurodock"


def checksum(document: object) -> str:
    """A short digest of a JSON-able document, for a pod annotation that restarts the pod when what
    it reads once at its start (a configuration file) changes."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def namespace(
    resource_name: str,
    name: str,
    *,
    parent: pulumi.Resource,
    pod_security: str = "restricted",
    component: str,
) -> k8s.core.v1.Namespace:
    """A namespace enforcing a Pod Security Standard (``restricted`` unless a node agent needs more).

    The name is fixed on purpose: other stacks, dashboards and runbooks refer to it.
    """
    return k8s.core.v1.Namespace(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name,
            labels={
                labels.PART_OF: PART_OF_VALUE,
                labels.COMPONENT: component,
                labels.PSA_ENFORCE: pod_security,
                labels.PSA_ENFORCE_VERSION: "latest",
                labels.PSA_AUDIT: "restricted",
                labels.PSA_WARN: "restricted",
            },
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def restricted_pod_security_context(uid: int = 1000) -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def restricted_container_security_context() -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


SCRIPT_UID = 65532
"""The user NeuroDock's own scripts run as (the smoke test, the eval gate, the rollback relay): the Python image's
default user is root, which Pod Security "restricted" refuses, so an unprivileged uid is set."""


def script_job(resource_name: str, *, name: pulumi.Input[str], namespace: pulumi.Input[str],
               object_labels: dict[str, str], revision: str, active_s: int,
               node_selector: pulumi.Input[dict[str, str]] | None, container: k8s.core.v1.ContainerArgs,
               volumes: list[k8s.core.v1.VolumeArgs], parent: pulumi.Resource,
               depends_on: list[pulumi.Resource] | None = None) -> k8s.batch.v1.Job:
    """A Job that runs one script once to a verdict (the gateway's smoke test, a canary's eval gate): one pod,
    restricted (as ``SCRIPT_UID``), no service-account token; replaced by the next `pulumi up` when it failed,
    and run again when ``revision`` changes. Past ``active_s`` the Job fails itself (DeadlineExceeded); Pulumi's
    await outlasts it, so the failure and its message, not a bare timeout, is what `pulumi up` reports."""
    return k8s.batch.v1.Job(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=namespace, labels=object_labels,
            annotations={"pulumi.com/replaceUnready": "true", "neurodock.io/revision": revision},
        ),
        spec=k8s.batch.v1.JobSpecArgs(
            # A second pod would only repeat the first: one verdict.
            backoff_limit=0,
            active_deadline_seconds=active_s,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                spec=k8s.core.v1.PodSpecArgs(
                    restart_policy="Never",
                    automount_service_account_token=False,
                    security_context=restricted_pod_security_context(SCRIPT_UID),
                    node_selector=node_selector,
                    containers=[container],
                    volumes=volumes,
                ),
            ),
        ),
        opts=pulumi.ResourceOptions(
            parent=parent, depends_on=depends_on,
            custom_timeouts=pulumi.CustomTimeouts(create=f"{active_s + 60}s", update=f"{active_s + 60}s")),
    )


# The same profiles as plain dicts, for Helm values and custom resources (EnvoyProxy).
RESTRICTED_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                 "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


CRITICAL_PRIORITY_CLASSES = ("system-node-critical", "system-cluster-critical")
"""Priority classes GKE admits only in a namespace with a ResourceQuota scoped to them."""


def critical_pods_quota(resource_name: str, namespace_name: pulumi.Input[str], *,
                        parent: pulumi.Resource) -> k8s.core.v1.ResourceQuota:
    """The ResourceQuota GKE requires before it admits a ``system-node-critical`` or
    ``system-cluster-critical`` pod outside kube-system: its API server lists pods of those classes as
    a limited resource, and refuses them ("insufficient quota to match these scopes") in a namespace
    without a quota matching them (docs/upstream.md). The quota admits rather than limits: like GKE's
    own ``gcp-critical-pods`` in kube-system, its ceiling is never reached."""
    return k8s.core.v1.ResourceQuota(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name="critical-pods", namespace=namespace_name,
                                            labels={labels.PART_OF: PART_OF_VALUE}),
        spec=k8s.core.v1.ResourceQuotaSpecArgs(
            hard={"pods": "1G"},
            scope_selector=k8s.core.v1.ScopeSelectorArgs(match_expressions=[
                k8s.core.v1.ScopedResourceSelectorRequirementArgs(
                    scope_name="PriorityClass", operator="In", values=list(CRITICAL_PRIORITY_CLASSES))]),
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )

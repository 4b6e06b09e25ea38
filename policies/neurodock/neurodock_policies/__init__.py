"""NeuroDock's CrossGuard policies for GPU/LLM stacks, one per module.

``POLICIES`` builds them without starting a policy server; ``__main__.py`` of the pack hands them
to ``PolicyPack``, and ``neurodock check`` runs them in process on an offline plan.
"""

from __future__ import annotations

from neurodock_policies import (
    alerts_reach_a_receiver,
    container_resources,
    deploy_reaches_api,
    eks_cluster_hardening,
    eks_node_hardening,
    gke_cluster_hardening,
    gke_control_plane_reaches_webhooks,
    gpu_node_pools_tainted,
    gpu_workloads,
    helm_charts_pinned,
    images_pinned,
    images_pinned_by_digest,
    in_cluster_wiring,
    model_fits_gpu,
    model_server_probes,
    model_server_resilience,
    no_plaintext_secrets,
    no_public_exposure,
    pod_security_restricted,
    prod_gpu_pools_not_spot_only,
    prod_stateful_resources_retained,
    stack_within_budget,
)

PACK_NAME = "neurodock"
MODULES = (
    pod_security_restricted, images_pinned, images_pinned_by_digest, container_resources, gpu_workloads,
    gpu_node_pools_tainted, model_server_probes, model_server_resilience, no_public_exposure, eks_cluster_hardening,
    eks_node_hardening, gke_cluster_hardening, no_plaintext_secrets, prod_gpu_pools_not_spot_only,
    prod_stateful_resources_retained, helm_charts_pinned, model_fits_gpu, in_cluster_wiring, alerts_reach_a_receiver,
    gke_control_plane_reaches_webhooks, deploy_reaches_api, stack_within_budget,
)
POLICIES = [m.POLICY for m in MODULES]

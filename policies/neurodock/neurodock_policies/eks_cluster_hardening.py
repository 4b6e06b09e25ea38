"""eks-cluster-hardening: EKS encrypts Secrets with KMS, keeps its API endpoint private or limited
to an allow-list, and ships its control-plane logs."""

from __future__ import annotations

from collections.abc import Mapping

from neurodock_policies.support import UNKNOWN, all_known, dig, known, resource_policy

NAME = "eks-cluster-hardening"
REQUIRED_LOGS = ("api", "audit", "authenticator")


def check(resource_type, props, name, config) -> list[str]:
    if resource_type != "aws:eks/cluster:Cluster":
        return []
    what = f"EKS cluster '{name}'"
    out = []
    encryption = props.get("encryptionConfig")
    if known(encryption) and all_known(encryption) and (
            "secrets" not in list(dig(encryption, "resources") or []) or not dig(encryption, "provider", "keyArn")):
        out.append(f"{what} does not encrypt Secrets with a KMS key; set encryptionConfig with resources "
                   "['secrets'] and a customer-managed key.")
    vpc = props.get("vpcConfig")
    public, cidrs = (vpc.get("endpointPublicAccess", True), vpc.get("publicAccessCidrs")) if isinstance(
        vpc, Mapping) else (UNKNOWN, UNKNOWN)  # an unknown vpcConfig is judged once known
    if known(public) and public is not False and known(cidrs) and (not cidrs or "0.0.0.0/0" in list(cidrs)):
        out.append(f"{what} has a public API endpoint open to the internet; set vpcConfig.endpointPublicAccess to "
                   "false or list your CIDRs in vpcConfig.publicAccessCidrs.")
    logs = props.get("enabledClusterLogTypes")
    if known(logs) and all_known(logs):
        missing = [t for t in REQUIRED_LOGS if t not in list(logs or [])]
        if missing:
            out.append(f"{what} does not log {', '.join(missing)}; add them to enabledClusterLogTypes.")
    return out


POLICY = resource_policy(
    NAME,
    "EKS: Secrets encryption, a private or allow-listed endpoint, control-plane logs.",
    check,
)

"""Where the stack's `pulumi up` runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field, StringConstraints

from components.cluster.base import is_private_range
from infra.config.base import Cidr, Model, Problem, cidr_problem, key_path

if TYPE_CHECKING:
    from infra.config.stack import StackConfig


class Deploy(Model):
    """Where `pulumi up` and `pulumi preview` of this stack run: ``neurodock check`` proves that place can
    reach the API server, and the workflows run there."""

    runs_on: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default=["ubuntu-24.04"], min_length=1)
    """GitHub Actions runner labels of the stack's deploy and preview jobs (default ``[ubuntu-24.04]``,
    a GitHub-hosted runner: any egress address, no way into a VPC)."""
    in_vpc: bool = False
    """The runner sits in the cluster's network (or one routed to it) and reaches a private endpoint
    (default false)."""
    egress_cidrs: list[Cidr] = []
    """The runner's fixed public egress addresses (a self-hosted runner behind NAT, a larger runner with
    static IPs), to be allow-listed on a public endpoint (default none)."""
    private_cidrs: list[Cidr] = []
    """EKS, with ``inVpc``: the runner's private addresses (its subnet, or the range of a network connected to the
    VPC), which the cluster's security group admits on port 443; EKS's own rules admit only the cluster itself
    (required with ``inVpc`` on EKS; default none)."""


def deploy_problems(config: StackConfig) -> list[Problem]:
    deploy = config.deploy
    out = [Problem(key_path(("deploy", key, i)), problem)
           for key, cidrs in (("egressCidrs", deploy.egress_cidrs), ("privateCidrs", deploy.private_cidrs))
           for i, cidr in enumerate(cidrs) if (problem := cidr_problem(cidr))]
    if out:
        return out
    for i, cidr in enumerate(deploy.private_cidrs):
        if cidr in deploy.private_cidrs[:i]:
            out.append(Problem(key_path(("deploy", "privateCidrs", i)), f"lists {cidr} twice"))
        elif not is_private_range(cidr):
            out.append(Problem(key_path(("deploy", "privateCidrs", i)), (
                f"{cidr} is not a private range (RFC 1918, or RFC 6598's 100.64.0.0/10): the runner reaches the "
                "private endpoint from inside the VPC or a network connected to it; list its private addresses "
                "(public egress goes in deploy.egressCidrs)")))
    eks = config.cloud.provider == "eks"
    if deploy.private_cidrs and not (eks and deploy.in_vpc):
        out.append(Problem(key_path(("deploy", "privateCidrs")), (
            "is read only on EKS with deploy.inVpc true, where the cluster's security group admits these ranges; "
            "remove it, or set deploy.inVpc" if eks else
            "is read only on EKS (the cluster's security group admits these ranges); remove it")))
    if eks and deploy.in_vpc and not deploy.private_cidrs:
        out.append(Problem(key_path(("deploy", "privateCidrs")), (
            "is required with deploy.inVpc on EKS: the cluster's security group admits only the cluster itself, so a "
            "runner in the VPC cannot reach the API server until its range is admitted on port 443; list the "
            "runner's subnet, e.g. ['10.0.32.0/20']")))
    return out


__all__ = [
    "Deploy", "deploy_problems"
]

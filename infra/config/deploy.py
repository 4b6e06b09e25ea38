"""Where the stack's `pulumi up` runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field, StringConstraints

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


def deploy_problems(config: StackConfig) -> list[Problem]:
    return [Problem(key_path(("deploy", "egressCidrs", i)), problem)
            for i, cidr in enumerate(config.deploy.egress_cidrs) if (problem := cidr_problem(cidr))]


__all__ = [
    "Deploy", "deploy_problems"
]

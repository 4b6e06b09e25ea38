"""What a running cloud holds, for tests of the program's live checks (``infra.plan.mocks.LIVE``)."""

from __future__ import annotations

from typing import Any

from components.cluster.eks import subnet_cidrs
from infra.config.cloud import EksCloud
from infra.plan import mocks
from infra.plan.mocks import digest


def running_eks(monkeypatch, document: dict[str, Any], version: str, **created_with: Any) -> None:
    """The stack's EKS cluster running at ``version``, in the VPC and subnets the stack created for it: as
    ``document``'s cloud says, unless ``created_with`` names other cloud keys (``zones``, ``vpcCidr``) it was created
    with."""
    config = document["config"]
    cloud = {**config["neurodock:cloud"], **created_with}
    name = f"neurodock-{config['neurodock:environment']}"
    vpc_cidr = cloud.get("vpcCidr", EksCloud.model_fields["vpc_cidr"].default)
    if existing := cloud.get("existingVpc"):  # its subnets in the stack's zones, in turn
        vpc_id = existing["vpcId"]
        subnets = {subnet_id: {"availabilityZone": cloud["zones"][i % len(cloud["zones"])],
                               "cidrBlock": f"10.1.{16 * i}.0/20", "vpcId": vpc_id}
                   for i, subnet_id in enumerate(existing["privateSubnetIds"])}
    else:
        vpc_id = f"vpc-{digest(name, length=17)}"
        subnets = {f"subnet-{digest(name, zone, length=17)}": {"availabilityZone": zone, "cidrBlock": ranges.private,
                                                                 "vpcId": vpc_id}
                   for zone, ranges in subnet_cidrs(vpc_cidr, cloud["zones"]).items()}
    monkeypatch.setitem(mocks.LIVE, "eksClusters", {name: {"version": version, "vpcId": vpc_id,
                                                           "subnetIds": sorted(subnets)}})
    monkeypatch.setitem(mocks.LIVE, "awsSubnets", {**mocks.LIVE.get("awsSubnets", {}), **subnets})
    monkeypatch.setitem(mocks.LIVE, "awsVpcs", {**mocks.LIVE.get("awsVpcs", {}),
                                                vpc_id: {"cidrBlock": vpc_cidr}})

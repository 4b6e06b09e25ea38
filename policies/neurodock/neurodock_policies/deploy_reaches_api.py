"""deploy-reaches-api: the place the stack says `pulumi up` runs from (stack output ``deploy``, from
``neurodock:deploy``) can reach the cluster's API server. Otherwise the cluster is created and the
update fails at the first Kubernetes object, twenty minutes in.

- GKE with the DNS-based endpoint open to external traffic: reachable from anywhere (IAM decides).
- A public endpoint with an allow-list (EKS ``publicAccessCidrs``, GKE master authorised networks):
  every runner egress address must be inside it. A GitHub-hosted runner has no fixed address.
- A private endpoint only: the runner must sit in the cluster's network (``deploy.inVpc``), which a
  stack that creates its own VPC cannot offer on its first `pulumi up`.
- EKS, with the runner in the VPC: the cluster's security group admits only itself (EKS User Guide,
  sec-group-reqs.adoc), so ingress rules on it must admit the runner's ranges (``deploy.privateCidrs``) on 443.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from neurodock_policies.support import all_known, describe, dig, known, stack_policy

NAME = "deploy-reaches-api"
GITHUB_HOSTED_PREFIXES = ("ubuntu-", "windows-", "macos-")
"""Labels of GitHub-hosted runners, whose egress addresses are Azure's, change and cannot be
allow-listed (GitHub docs, "About GitHub-hosted runners", IP addresses)."""


def _outside(cidrs: Sequence[str], allowed: Sequence[str]) -> list[str]:
    nets = [ipaddress.ip_network(a, strict=False) for a in allowed if known(a)]
    return [c for c in cidrs if not any(ipaddress.ip_network(c, strict=False).subnet_of(n) for n in nets)]


def _reach(public: bool, allowed: list[str], deploy: dict, creates_vpc: bool, what: str) -> str | None:
    runs_on = deploy.get("runsOn") or []
    hosted = any(str(label).startswith(GITHUB_HOSTED_PREFIXES) for label in runs_on)
    egress = deploy.get("egressCidrs") or []
    if deploy.get("inVpc"):
        if creates_vpc:
            return (f"{what} is private and the deploy runner is declared inside the VPC, but this stack creates "
                    "that VPC: no runner can be in it on the first `pulumi up`. Set cloud.existingVpc to the "
                    "runner's VPC, or make the endpoint public with the runner's egress allow-listed.")
        return None
    if not public:
        return (f"{what} has a private endpoint only, and the deploy runner ({', '.join(runs_on)}) is not in the "
                "VPC (neurodock:deploy.inVpc false): `pulumi up` cannot reach it. Run the deploy inside the VPC "
                "(deploy.inVpc, deploy.runsOn), or allow-list its egress on a public endpoint.")
    if hosted and not egress:
        return (f"{what} allows {allowed} only, and the deploy runs on a GitHub-hosted runner ({', '.join(runs_on)}), "
                "whose egress addresses are not fixed: `pulumi up` cannot reach it. Run the deploy on a runner "
                "with fixed egress (neurodock:deploy.runsOn, deploy.egressCidrs) and allow-list that.")
    if not egress:
        return (f"{what} allows {allowed} only, and neurodock:deploy.egressCidrs does not say where the deploy "
                "runner comes from; list its egress addresses.")
    outside = _outside(egress, allowed)
    if outside:
        return (f"{what} allows {allowed}, but the deploy runner's egress {outside} is outside it: add it to "
                "cloud.endpoint.allowedCidrs.")
    return None


def _security_group_admits(cluster, resources, deploy: dict, what: str) -> str | None:
    """For a runner in the VPC: ingress rules on the cluster's security group (or on one not known yet, at a first
    preview) admit each of its private ranges on port 443."""
    if not deploy.get("inVpc"):
        return None
    group = dig(cluster.props, "vpcConfig", "clusterSecurityGroupId")
    admitted = []
    for rule in resources:
        if rule.resource_type != "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
            continue
        props = rule.props
        target, cidr = props.get("securityGroupId"), props.get("cidrIpv4")
        if known(target) and known(group) and target != group:
            continue
        low, high = props.get("fromPort"), props.get("toPort")
        any_port = str(props.get("ipProtocol")) == "-1"
        # Numbers arrive as CrossGuard sends them: a protobuf Struct holds only doubles (443.0).
        numbers = isinstance(low, (int, float)) and isinstance(high, (int, float))
        if known(cidr) and (any_port or (str(props.get("ipProtocol")) in ("tcp", "6")
                                         and numbers and low <= 443 <= high)):
            admitted.append(cidr)
    private = [c for c in deploy.get("privateCidrs") or [] if known(c)]
    if not private:
        return (f"{what} is reached from inside the VPC (neurodock:deploy.inVpc), but the cluster's security group "
                "admits only the cluster itself, and neurodock:deploy.privateCidrs names no runner range to admit on "
                "port 443: `pulumi up` would time out at the first Kubernetes object. List the runner's subnet there.")
    outside = _outside(private, admitted)
    if outside:
        return (f"{what} is reached from inside the VPC, but no ingress rule on the cluster's security group admits "
                f"the runner's {outside} on port 443; the stack makes one per neurodock:deploy.privateCidrs entry.")
    return None


def check(resources, config) -> list[tuple[str, str]]:
    stack = next((r for r in resources if r.resource_type == "pulumi:pulumi:Stack"), None)
    deploy = stack.props.get("deploy") if stack is not None else None
    if not isinstance(deploy, dict):
        return []
    creates_vpc = any(r.resource_type == "aws:ec2/vpc:Vpc" for r in resources)
    out = []
    for r in resources:
        what = describe(r.resource_type, r.props, r.name) + "'s API endpoint"
        problem = None
        if r.resource_type == "aws:eks/cluster:Cluster":
            public = dig(r.props, "vpcConfig", "endpointPublicAccess")
            allowed = dig(r.props, "vpcConfig", "publicAccessCidrs") or ["0.0.0.0/0"]
            if not all_known([public, allowed, deploy], secrets=False):
                continue
            problem = _reach(public is True, list(allowed), deploy, creates_vpc, what) or \
                _security_group_admits(r, resources, deploy, what)
        elif r.resource_type == "gcp:container/cluster:Cluster":
            if dig(r.props, "controlPlaneEndpointsConfig", "dnsEndpointConfig", "allowExternalTraffic") is True:
                continue
            public = dig(r.props, "privateClusterConfig", "enablePrivateEndpoint") is not True
            blocks = dig(r.props, "masterAuthorizedNetworksConfig", "cidrBlocks") or []
            if not all_known([blocks, deploy], secrets=False) or not all(isinstance(b, dict) for b in blocks):
                continue
            allowed = [b.get("cidrBlock") for b in blocks] if blocks else ["0.0.0.0/0"]
            if not all_known(allowed, secrets=False):
                continue
            problem = _reach(public, allowed, deploy, creates_vpc, what)
        if problem:
            out.append((r.urn, problem))
    return out


POLICY = stack_policy(
    NAME,
    "The stack's deploy runner (neurodock:deploy) can reach the cluster's API server.",
    check,
)

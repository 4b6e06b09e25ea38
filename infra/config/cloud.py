"""Where the cluster runs: kind, EKS or GKE, with its network, API endpoint and tags, and what those
clouds would refuse."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field

from components.cluster.base import EKS_SUBNET_PREFIX, RFC1918, EksSupportType, GkeReleaseChannel
from components.versions import CLUSTER_AUTOSCALER_IMAGE_TAGS, KIND_NODE_IMAGES
from infra.config.base import (
    AwsRegion,
    Cidr,
    GcpProject,
    GcpRegion,
    KubernetesVersion,
    Model,
    Name,
    Problem,
    Timestamp,
    allowlist_breadth_problem,
    cidr_problem,
    key_path,
    pattern,
)
from infra.config.offerings import (
    aws_region_problem,
    eks_version_problem,
    gcp_region_problem,
    gcp_zone_problem,
    gke_version_problem,
)

if TYPE_CHECKING:
    from infra.config.stack import StackConfig


# --------------------------------------------------------------------------------------------
# Cloud targets
# --------------------------------------------------------------------------------------------


class EndpointAccess(Model):
    """Who may reach the Kubernetes API server."""

    public: bool = False
    """Expose the API endpoint's IP on the internet (default false: private endpoint only)."""
    allowed_cidrs: list[Cidr] = []
    """CIDRs allowed to reach a public endpoint; required when ``public`` is true."""


class GkeEndpointAccess(EndpointAccess):
    """Who may reach GKE's API server, and how."""

    dns: bool = True
    """Serve the API on GKE's DNS-based endpoint: reachable from any network, every request
    authorised by IAM (``container.clusters.connect``) before it reaches the cluster; the kubeconfig
    uses it. With false, the deploy must reach the IP endpoint (default true)."""


Recurrence = pattern(r"^FREQ=(DAILY|WEEKLY|MONTHLY)(;[A-Z]+=[A-Z0-9,+-]+)*$",
                     "an RFC 5545 recurrence rule, daily, weekly or monthly", "FREQ=WEEKLY;BYDAY=SA,SU")


class GkeMaintenanceWindow(Model):
    """When GKE may upgrade the control plane and the nodes (a recurring window)."""

    start_time: Timestamp = "2026-01-03T01:00:00Z"
    """First window's start, RFC 3339 UTC (default a Saturday, 01:00 UTC)."""
    end_time: Timestamp = "2026-01-03T09:00:00Z"
    """First window's end, RFC 3339 UTC (default 09:00 UTC the same day: eight hours, so any 32 days hold at
    least GKE's minimum 48 hours)."""
    recurrence: Recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
    """RFC 5545 RRULE repeating the window (default every Saturday and Sunday)."""




class KindCloud(Model):
    """A local kind cluster: for laptops and CI, no cloud account."""

    provider: Literal["kind"]
    kubernetes_version: KubernetesVersion = "1.33"
    """Kubernetes minor version of the kind node image (default 1.33)."""
    cluster_name: Name | None = None
    """kind cluster name (default ``neurodock-<environment>``)."""
    existing_context: str | None = None
    """Use this kubeconfig context instead of creating a cluster (default: create one)."""


VpcId = pattern(r"^vpc-[0-9a-f]{8,17}$", "a VPC id", "vpc-0a1b2c3d4e5f67890")
SubnetId = pattern(r"^subnet-[0-9a-f]{8,17}$", "a subnet id", "subnet-0a1b2c3d4e5f67890")


class ExistingVpc(Model):
    """A VPC the stack uses instead of creating one."""

    vpc_id: VpcId
    """The VPC id."""
    private_subnet_ids: list[SubnetId] = Field(min_length=2)
    """Private subnets (with a route to a NAT) in at least two zones, for the cluster and nodes."""


RoleArn = pattern(r"^arn:aws[-a-z]*:iam::[0-9]{12}:role/.+$", "an IAM role ARN",
                  "arn:aws:iam::123456789012:role/platform-admins")


class EksCloud(Model):
    """Amazon EKS."""

    provider: Literal["eks"]
    region: AwsRegion
    """AWS region, for example ``us-west-2``."""
    zones: list[str] = Field(min_length=2)
    """Availability zones for subnets and node groups: at least two, all in ``region``."""
    kubernetes_version: KubernetesVersion = "1.35"
    """EKS Kubernetes version, one in EKS standard support (default 1.35, in standard support until 2027-03-27:
    infra/config/data/eks_versions.json; see docs/operations.md, "Kubernetes versions")."""
    support_type: EksSupportType = "STANDARD"
    """At the end of standard support, ``STANDARD`` lets EKS upgrade the control plane; ``EXTENDED`` keeps the
    version for up to 12 more months at an extra hourly charge (default STANDARD)."""
    vpc_cidr: Cidr = "10.0.0.0/16"
    """CIDR of the VPC the stack creates (default 10.0.0.0/16)."""
    existing_vpc: ExistingVpc | None = None
    """Use this VPC and its private subnets instead of creating a VPC (default: create one)."""
    endpoint: EndpointAccess = EndpointAccess()
    """API server access (default: private only)."""
    admin_role_arns: list[RoleArn] = []
    """IAM roles granted cluster-admin through EKS access entries; not the role that creates the cluster, which EKS
    gives an entry of its own (default none)."""
    preview_role_arns: list[RoleArn] = []
    """IAM roles granted read-only Kubernetes access (``AmazonEKSViewPolicy``, cluster scope) through EKS access
    entries: the pull-request preview's role (default none)."""


class GkeCloud(Model):
    """Google Kubernetes Engine (Standard)."""

    provider: Literal["gke"]
    project: GcpProject
    """GCP project id."""
    region: GcpRegion
    """GCP region, for example ``europe-west4``; the cluster is regional."""
    zones: list[str] = Field(min_length=1)
    """Zones for node pools, all in ``region``."""
    kubernetes_version: KubernetesVersion | None = None
    """Minimum GKE master version; it must still be offered by the release channel (default: the
    channel's default version, which GKE then keeps in support)."""
    release_channel: GkeReleaseChannel = "REGULAR"
    """GKE release channel (default REGULAR)."""
    subnet_cidr: Cidr = "10.10.0.0/20"
    """Primary range of the nodes' subnet (default 10.10.0.0/20)."""
    pods_cidr: Cidr = "10.16.0.0/14"
    """Secondary range for pods (default 10.16.0.0/14)."""
    services_cidr: Cidr = "10.20.0.0/20"
    """Secondary range for services (default 10.20.0.0/20)."""
    master_cidr: Cidr = "172.16.0.0/28"
    """/28 range of the private control plane (default 172.16.0.0/28)."""
    endpoint: GkeEndpointAccess = GkeEndpointAccess()
    """API server access (default: the IAM-gated DNS endpoint, and a private IP endpoint)."""
    deletion_protection: bool = True
    """The cluster is protected twice: Pulumi's `protect`, so `pulumi destroy` fails in its preview before it
    deletes anything, and GKE's own flag, so nothing else deletes it; set false (and `pulumi up`) before a
    planned destroy such as a DR drill's teardown (default true)."""
    maintenance_window: GkeMaintenanceWindow = GkeMaintenanceWindow()
    """When GKE may upgrade the cluster and its pools (default weekends, 01:00-09:00 UTC)."""


Cloud = Annotated[Union[KindCloud, EksCloud, GkeCloud], Field(discriminator="provider")]  # noqa: UP007


def cloud_problems(config: StackConfig) -> list[Problem]:
    """The cloud's own facts: a pinned image for the Kubernetes version, zones of the region, the API
    endpoint's allow-list, network ranges, the maintenance window, tags."""
    problems: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(key_path(loc), message))

    cloud = config.cloud
    provider = cloud.provider

    # Cloud-level facts.
    pinned = {"kind": KIND_NODE_IMAGES, "eks": CLUSTER_AUTOSCALER_IMAGE_TAGS}.get(provider)
    if pinned is not None and cloud.kubernetes_version not in pinned:
        what = "kind node image" if provider == "kind" else "Cluster Autoscaler image"
        add(("cloud", "kubernetesVersion"), f"no pinned {what} for {cloud.kubernetes_version!r}; "
            f"supported: {', '.join(sorted(pinned))} (components/versions.py)")
    if isinstance(cloud, (EksCloud, GkeCloud)):
        region = (aws_region_problem if isinstance(cloud, EksCloud) else gcp_region_problem)(cloud.region)
        if region is not None:
            add(("cloud", "region"), region)  # its zones cannot be judged against it
        for i, zone in enumerate(cloud.zones if region is None else []):
            if (problem := _zone_problem(cloud, zone)) is not None:
                add(("cloud", "zones", i), problem)
        if len(set(cloud.zones)) != len(cloud.zones):
            add(("cloud", "zones"), "lists a zone twice")
        version = (eks_version_problem(cloud.kubernetes_version, cloud.support_type) if isinstance(cloud, EksCloud)
                   else gke_version_problem(cloud.kubernetes_version) if cloud.kubernetes_version else None)
        if version is not None:
            add(("cloud", "kubernetesVersion"), version)
        problems.extend(_endpoint_problems(cloud))
        problems.extend(_network_problems(config))
        if isinstance(cloud, GkeCloud):
            problems.extend(_maintenance_window_problems(cloud.maintenance_window))
    problems.extend(_tag_problems(config))
    if isinstance(cloud, EksCloud):
        problems.extend(_access_entry_problems(cloud))
    subnets = cloud.existing_vpc.private_subnet_ids if isinstance(cloud, EksCloud) and cloud.existing_vpc else []
    if len(set(subnets)) != len(subnets):
        add(("cloud", "existingVpc", "privateSubnetIds"), "lists a subnet twice")
    return problems


def cloud_warnings(config: StackConfig) -> list[Problem]:
    cloud = config.cloud
    if isinstance(cloud, EksCloud) and cloud.existing_vpc is not None and "vpc_cidr" in cloud.model_fields_set:
        return [Problem(key_path(("cloud", "vpcCidr")), "is unused: existingVpc names the VPC")]
    return []


def _endpoint_problems(cloud: EksCloud | GkeCloud) -> list[Problem]:
    """Who may reach the API server: an allow-list that is required, not the internet, and not ignored."""
    out: list[Problem] = []
    endpoint = cloud.endpoint

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(("cloud", "endpoint", *loc)), message))

    if endpoint.public and not endpoint.allowed_cidrs:
        add(("allowedCidrs",), "a public API endpoint needs an allow-list; list the CIDRs allowed to reach it, or set "
            "endpoint.public to false")
    if isinstance(cloud, EksCloud) and not endpoint.public and endpoint.allowed_cidrs:
        # EKS applies publicAccessCidrs to the public endpoint only (components/cluster/eks.py passes none without
        # it); GKE's authorised networks guard its private endpoint too.
        add(("allowedCidrs",), "is ignored: EKS applies the allow-list to a public endpoint only, and "
            "endpoint.public is false (the private endpoint is reached from inside the VPC, as its security group "
            "allows); remove allowedCidrs, or set endpoint.public to true")
    for i, cidr in enumerate(endpoint.allowed_cidrs):
        if (problem := cidr_problem(cidr)) is not None:
            add(("allowedCidrs", i), problem)
        elif cidr.endswith("/0"):
            add(("allowedCidrs", i), "0.0.0.0/0 opens the API server to the internet; list your own CIDRs")
        elif isinstance(cloud, EksCloud) and endpoint.public and any(
                ipaddress.IPv4Network(cidr).subnet_of(n) for n in RFC1918):
            add(("allowedCidrs", i), f"{cidr} is a private (RFC 1918) range, which never reaches a public EKS "
                "endpoint: a request from a VPC or an office leaves through a NAT gateway with a public address; list "
                "that public address, or reach the private endpoint from inside the VPC (endpoint.public: false)")
    wide = allowlist_breadth_problem(endpoint.allowed_cidrs, "the API server")
    if wide is not None and not any(c.endswith("/0") for c in endpoint.allowed_cidrs):
        add(("allowedCidrs",), wide)
    return out


def _access_entry_problems(cloud: EksCloud) -> list[Problem]:
    """EKS takes one access entry per IAM principal (EKS User Guide, "Grant IAM users access to Kubernetes with EKS
    access entries": "An IAM principal can't be included in more than one access entry"), so a role is listed once,
    as an admin or a preview role; entries are named after the role, so the roles of each list have distinct names."""
    out: list[Problem] = []
    for key, arns in (("adminRoleArns", cloud.admin_role_arns), ("previewRoleArns", cloud.preview_role_arns)):
        names: dict[str, str] = {}
        what = "admin" if key == "adminRoleArns" else "preview"
        for i, arn in enumerate(arns):
            name = arn.rsplit("/", 1)[-1]
            if arn in arns[:i]:
                out.append(Problem(key_path(("cloud", key, i)), f"lists {arn} twice"))
            elif key == "previewRoleArns" and arn in cloud.admin_role_arns:
                out.append(Problem(key_path(("cloud", key, i)), (
                    f"{arn} is in adminRoleArns too; an IAM role has one EKS access entry: list it in one of the two")))
            elif names.setdefault(name, arn) != arn:
                out.append(Problem(key_path(("cloud", key, i)), (
                    f"{arn} has the same role name as {names[name]}; {what} roles need distinct names")))
    return out


def _maintenance_window_problems(window: GkeMaintenanceWindow) -> list[Problem]:
    """Both times are real instants, and the window is long enough to count towards GKE's 48 hours."""
    out: list[Problem] = []
    times: dict[str, datetime] = {}
    for key, value in (("startTime", window.start_time), ("endTime", window.end_time)):
        try:
            times[key] = datetime.fromisoformat(value)
        except ValueError as exc:
            out.append(Problem(key_path(("cloud", "maintenanceWindow", key)), (
                f"{value!r} is not a date and time that exists ({exc}); give an RFC 3339 time in UTC, e.g. "
                "'2026-01-03T01:00:00Z'")))
    if len(times) == 2:
        hours = (times["endTime"] - times["startTime"]).total_seconds() / 3600
        if hours < 4:
            out.append(Problem(key_path(("cloud", "maintenanceWindow", "endTime")), (
                f"must be at least 4 hours after startTime (got {hours:g} h): GKE counts only windows of 4 hours or "
                "more towards the 48 hours it needs in any 32 days")))
    return out


def _zone_problem(cloud: EksCloud | GkeCloud, zone: str) -> str | None:
    """An AWS zone is its region and a letter (``us-west-2a``; which letters exist is mapped per account in the
    oldest regions, so only the form is checked); a Google Cloud zone is one of its region's
    (``infra.config.offerings``)."""
    region = cloud.region
    if isinstance(cloud, GkeCloud):
        return gcp_zone_problem(region, zone)
    if re.fullmatch(re.escape(region) + r"[a-z]", zone):
        return None
    if re.fullmatch(r"[a-z]{3,5}[0-9]+-az[0-9]+", zone):
        return f"{zone!r} is a zone ID; give the zone's name, the region and a letter, e.g. '{region}a'"
    if zone.startswith(region + "-"):
        return f"{zone!r} is a Local or Wavelength Zone: EKS cannot put the cluster's network interfaces there, " \
               f"and the stack's subnets serve the cluster and its nodes alike; use the region's zones, e.g. " \
               f"'{region}a'"
    return f"zone {zone!r} is not a zone of region {region!r}; AWS zones are the region and a letter, e.g. " \
           f"'{region}a'"


MAX_USER_TAGS = 45
"""AWS and Google Cloud take 50 and 64 tags or labels per resource; the stack adds up to 5 of its own
(``Name``, ``neurodock:*``, the subnets' ``kubernetes.io/*`` tags)."""
RESERVED_TAGS = {"eks": ("aws:", "neurodock:", "kubernetes.io/", "k8s.io/"), "gke": ("neurodock-",)}
"""Tag keys (lowercased; on GKE as labels) AWS reserves (``aws:``) or the stack sets itself, with ``Name`` on
EKS."""
AWS_TAG_CHARACTERS = "_.:/=+-@ "
"""Besides letters and digits, what every tagged AWS service accepts (IAM's and CloudWatch Logs' pattern)."""


def gcp_label_key(tag: str) -> str:
    """A tag's key as a Google Cloud label's: lowercase, ':' as '-' (labels take neither); values are lowercased."""
    return tag.replace(":", "-").lower()


def gcp_labels(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags as Google Cloud labels."""
    return {gcp_label_key(k): v.lower() for k, v in tags.items()}


def _gcp_label_ok(text: str, *, key: bool) -> bool:
    """Google Cloud's label rule: at most 63 lowercase letters (international ones too), digits, '_' and '-';
    a key is not empty and starts with a letter."""
    if len(text) > 63 or (key and not text):
        return False
    letter = ("Ll", "Lo")
    return all(unicodedata.category(c) in letter or c.isdigit() or c in "_-" for c in text) and \
        (not key or unicodedata.category(text[0]) in letter)


def _tag_problems(config: StackConfig) -> list[Problem]:
    """``tags`` are valid AWS tags (EKS) or Google Cloud labels (GKE), and leave the stack's own alone."""
    provider = config.cloud.provider
    tags = config.tags
    out: list[Problem] = []

    def add(key: str | None, message: str) -> None:
        out.append(Problem(key_path(("tags", key) if key is not None else ("tags",)), message))

    if provider == "kind":
        return out
    if len(tags) > MAX_USER_TAGS:
        add(None, f"{len(tags)} tags; a cloud resource takes at most {MAX_USER_TAGS} besides the stack's own")
    seen: dict[str, str] = {}
    for key, value in tags.items():
        if not key.strip():
            add(None, f"has a tag with an empty key ({key!r}); give the tag a name")
            continue
        folded = key.lower() if provider == "eks" else gcp_label_key(key)
        if folded in seen:
            why = "IAM refuses tag keys that differ only in case" if provider == "eks" else \
                "both become the Google Cloud label " + repr(folded)
            add(key, f"collides with tag {seen[folded]!r}: {why}; keep one")
            continue
        seen[folded] = key
        if (provider == "eks" and key == "Name") or folded.startswith(RESERVED_TAGS[provider]):
            own = "Name, neurodock:* and kubernetes.io/*" if provider == "eks" else "neurodock-*"
            add(key, f"is a key {'AWS reserves or ' if provider == 'eks' else ''}the stack sets itself ({own}); "
                "choose another")
        elif provider == "eks":
            for what, text, limit in (("key", key, 127), ("value", value, 256)):
                bad = sorted({c for c in text if not (c.isalnum() or c in AWS_TAG_CHARACTERS)})
                if len(text) > limit or bad or (what == "value" and text.lower().startswith("aws:")):
                    add(key, f"the {what} {text!r} is not a valid AWS tag {what}: at most {limit} letters, digits, "
                        f"spaces and {AWS_TAG_CHARACTERS.strip()}" + (f" (not {''.join(bad)!r})" if bad else "")
                        + (", not starting with aws:" if what == "value" else ""))
        else:
            label_value = value.lower()
            if not _gcp_label_ok(folded, key=True):
                add(key, f"becomes the Google Cloud label key {folded!r}, which Google Cloud refuses: at most 63 "
                    "lowercase letters, digits, '_' and '-', starting with a letter, e.g. 'cost-center'")
            elif not _gcp_label_ok(label_value, key=False):
                add(key, f"the value {value!r} becomes the Google Cloud label value {label_value!r}, which Google "
                    "Cloud refuses: at most 63 lowercase letters, digits, '_' and '-', e.g. 'ml-platform'")
    return out


DOCKER_BRIDGE = ipaddress.IPv4Network("172.17.0.0/16")
"""GKE refuses a control-plane range inside it (its error: "reserved for the Docker bridge network")."""
GKE_POD_RANGE_PER_NODE_PREFIX = 24
"""GKE gives each node a /24 of the pods range at its default of 110 pods per node, which the stack keeps."""


def _network_problems(config: StackConfig) -> list[Problem]:
    """The ranges a stack creates are valid, large enough for what it carves out of them and disjoint."""
    cloud = config.cloud
    out: list[Problem] = []

    def add(key: str, message: str) -> None:
        out.append(Problem(key_path(("cloud", key)), message))

    keys = {"eks": ["vpcCidr"], "gke": ["subnetCidr", "podsCidr", "servicesCidr", "masterCidr"]}.get(cloud.provider, [])
    networks: dict[str, ipaddress.IPv4Network] = {}
    for key in keys:
        problem = cidr_problem(getattr(cloud, _snake(key)))
        if problem:
            add(key, problem)
        else:
            networks[key] = ipaddress.IPv4Network(getattr(cloud, _snake(key)))
    for n, (key, network) in enumerate(networks.items()):
        for other, earlier in list(networks.items())[:n]:
            if network.overlaps(earlier):
                add(key, f"{network} overlaps {other} {earlier}; the ranges of a cluster must be disjoint")
    if isinstance(cloud, EksCloud) and "vpcCidr" in networks and cloud.existing_vpc is None:
        vpc = networks["vpcCidr"]
        if not 16 <= vpc.prefixlen <= 28:
            add("vpcCidr", f"AWS VPCs are /16 to /28 (got /{vpc.prefixlen}); use a /16 such as 10.0.0.0/16")
        else:
            subnets = 2 * len(cloud.zones)
            largest = EKS_SUBNET_PREFIX - (subnets - 1).bit_length()
            if vpc.prefixlen > largest:
                add("vpcCidr", f"{vpc} cannot hold the {subnets} /{EKS_SUBNET_PREFIX} subnets the stack makes (a "
                    f"private and a public one in each of {len(cloud.zones)} zones); use a /{largest} or larger, "
                    "e.g. 10.0.0.0/16")
    if isinstance(cloud, GkeCloud):
        master = networks.get("masterCidr")
        if master is not None and master.prefixlen != 28:
            add("masterCidr", f"must be a /28 range: GKE's private control plane takes exactly 16 addresses (got "
                f"/{master.prefixlen}), e.g. 172.16.0.0/28")
        elif master is not None and (not any(master.subnet_of(n) for n in RFC1918) or master.overlaps(DOCKER_BRIDGE)):
            add("masterCidr", f"{master} must be a private (RFC 1918) /28 outside {DOCKER_BRIDGE}, which GKE keeps "
                "for the Docker bridge, e.g. 172.16.0.0/28")
        # Every node at once, and the one more a surge upgrade adds.
        nodes = sum(p.max_nodes for p in config.node_pools) + 1
        if (pods := networks.get("podsCidr")) is not None:
            room = pods.num_addresses // 2 ** (32 - GKE_POD_RANGE_PER_NODE_PREFIX)
            if room < nodes:
                want = GKE_POD_RANGE_PER_NODE_PREFIX - (nodes - 1).bit_length()
                add("podsCidr", f"{pods} holds the pods of {room} nodes (GKE takes a /{GKE_POD_RANGE_PER_NODE_PREFIX} "
                    f"per node for its 110 pods); the node pools' maxNodes add up to {nodes - 1}, and an upgrade "
                    f"adds one: use a /{want} or larger")
        if (subnet := networks.get("subnetCidr")) is not None and subnet.num_addresses - 4 < nodes:
            add("subnetCidr", f"{subnet} has {subnet.num_addresses - 4} usable addresses (Google Cloud reserves 4), "
                f"fewer than the {nodes} nodes the pools may reach with an upgrade's surge node; use a "
                f"/{32 - (nodes + 3).bit_length()} or larger")
    return out


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


__all__ = [
    "AWS_TAG_CHARACTERS",
    "DOCKER_BRIDGE",
    "GKE_POD_RANGE_PER_NODE_PREFIX",
    "MAX_USER_TAGS",
    "RESERVED_TAGS",
    "RFC1918",
    "Cloud",
    "EksCloud",
    "EndpointAccess",
    "ExistingVpc",
    "GkeCloud",
    "GkeEndpointAccess",
    "GkeMaintenanceWindow",
    "KindCloud",
    "Recurrence",
    "RoleArn",
    "SubnetId",
    "VpcId",
    "cloud_problems",
    "cloud_warnings",
    "gcp_label_key",
    "gcp_labels"
]

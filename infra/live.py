"""What already exists in the cloud, read while the program runs, before anything is registered.

Two things the program cannot decide from config alone:

- a re-created GKE stack (disaster recovery) finds its Secrets key ring and key left behind by the
  last destroy (``retainOnDelete``; Cloud KMS never deletes either) and must adopt them, or creating
  them again fails on their fixed names;
- an EKS managed node group's desired size belongs to the Cluster Autoscaler, except when a raised
  ``minNodes`` is above it: EKS then rejects the update unless the desired size is raised with it;
- a running EKS cluster stays in the VPC and the zones it was created in, and each zone's subnet ranges follow
  its place in ``cloud.zones``: an edit of either would replace subnets or the VPC under the cluster;
- a re-created EKS stack finds its control-plane log group left behind (``retainOnDelete``) and adopts it;
- each EKS add-on's version is EKS's default for the configured Kubernetes version, which only EKS knows.
- which availability zones offer an EKS node group's instance types, which only EC2 knows, per account.
- a running GKE cluster keeps what it was created with (its control-plane, pod and service ranges, its
  network and datapath): an edit of one would replace the cluster, which fails on its fixed name.

Each lookup answers "nothing there" when the cluster or project does not exist yet (a first
`pulumi up`), or when the lookup itself fails: the program then plans a plain create, and the cloud's
own error, if any, names the conflict. Under ``neurodock plan`` the mocks answer (``infra/plan/mocks.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from components.cluster.eks import MANAGED_ADDONS, EksClusterLogGroup, control_plane_log_group
from components.cluster.gke import CRYPTO_KEY_NAME, key_ring_name
from components.labels import POOL_TAG
from components.retained import Retained


@dataclass(frozen=True)
class NodeGroupFacts:
    name: str
    pool: str | None
    """The pool the program tagged the group with (None for a group it did not create)."""
    desired_size: int | None
    version: str | None
    """The group's Kubernetes minor version."""


def eks_node_groups(cluster_name: str, region: str, provider: pulumi.ProviderResource) -> list[NodeGroupFacts] | None:
    """The cluster's managed node groups: ``[]`` when the cluster does not exist, None when they could not be read
    (with a warning: desired sizes are then left alone, and versions not compared)."""
    opts = pulumi.InvokeOptions(provider=provider)
    found: list[NodeGroupFacts] = []
    try:
        names = aws.eks.get_node_groups(cluster_name=cluster_name, region=region, opts=opts).names
        for name in names:
            group = aws.eks.get_node_group(cluster_name=cluster_name, node_group_name=name, region=region, opts=opts)
            found.append(NodeGroupFacts(
                name=name, pool=(group.tags or {}).get(POOL_TAG),
                desired_size=group.scaling_configs[0].desired_size if group.scaling_configs else None,
                version=group.version))
    except Exception as error:
        if "ResourceNotFoundException" in str(error):
            return []  # no cluster yet: every group is new
        pulumi.log.warn(f"could not read the node groups of {cluster_name} ({_first_line(error)}); "
                        "their desired sizes are left as they are")
        return None
    return found


def group_sizes(groups: list[NodeGroupFacts] | None) -> dict[str, int] | None:
    """Each pool's current desired size, by pool name (the largest, mid-replacement); None when the groups could not
    be read (the program then leaves the desired size alone)."""
    if groups is None:
        return None
    sizes: dict[str, int] = {}
    for group in groups:
        if group.pool and group.desired_size is not None:
            sizes[group.pool] = max(sizes.get(group.pool, 0), group.desired_size)
    return sizes


@dataclass(frozen=True)
class EksRunningCluster:
    """What a running EKS cluster keeps from its creation: its VPC (for good), and the zones of its subnets."""

    version: str
    vpc_id: str
    vpc_cidr: str | None
    """The VPC's primary range; None when it cannot be read."""
    subnets: dict[str, Subnet] | None
    """The cluster's own subnets (its ``vpc_config``) by id; None when they cannot be read."""


@dataclass(frozen=True)
class Subnet:
    zone: str
    cidr: str
    vpc_id: str


def eks_cluster(cluster_name: str, region: str, provider: pulumi.ProviderResource) -> EksRunningCluster | None:
    """The running cluster, or None when there is none (or it cannot be read)."""
    opts = pulumi.InvokeOptions(provider=provider)
    try:
        cluster = aws.eks.get_cluster(name=cluster_name, region=region, opts=opts)
    except Exception as error:
        _nothing(f"EKS cluster {cluster_name}", error)
        return None
    vpc_id = cluster.vpc_config.vpc_id
    try:
        vpc_cidr = aws.ec2.get_vpc(id=vpc_id, region=region, opts=opts).cidr_block
    except Exception as error:
        pulumi.log.warn(f"could not read the VPC {vpc_id} of the running cluster {cluster_name} "
                        f"({_first_line(error)}); an edit of cloud.vpcCidr is not caught before `pulumi up`")
        vpc_cidr = None
    subnets = aws_subnets(list(cluster.vpc_config.subnet_ids or []), region, provider,
                          why=f"of the running cluster {cluster_name}; an edit of cloud.zones is not caught before "
                              "`pulumi up`")
    return EksRunningCluster(version=cluster.version, vpc_id=vpc_id, vpc_cidr=vpc_cidr, subnets=subnets)


def aws_subnets(subnet_ids: list[str], region: str, provider: pulumi.ProviderResource, *,
                why: str) -> dict[str, Subnet] | None:
    """Each subnet's zone, range and VPC, by id; None, with a warning ending in ``why``, when one cannot be read."""
    opts = pulumi.InvokeOptions(provider=provider)
    found: dict[str, Subnet] = {}
    for subnet_id in subnet_ids:
        try:
            subnet = aws.ec2.get_subnet(id=subnet_id, region=region, opts=opts)
        except Exception as error:
            pulumi.log.warn(f"could not read the subnet {subnet_id} ({_first_line(error)}) {why}")
            return None
        found[subnet_id] = Subnet(zone=subnet.availability_zone, cidr=subnet.cidr_block, vpc_id=subnet.vpc_id)
    return found


def eks_log_group(cluster_name: str, region: str, provider: pulumi.ProviderResource) -> EksClusterLogGroup | None:
    """The cluster's control-plane log group, if it exists: a destroyed stack of the same cluster name left it."""
    name = control_plane_log_group(cluster_name)
    try:
        group = aws.cloudwatch.get_log_group(name=name, region=region, opts=pulumi.InvokeOptions(provider=provider))
    except Exception as error:
        # The provider answers "empty result" for a missing group (terraform-provider-aws internal/service/logs
        # group_data_source.go: findLogGroupByName, tfresource.AssertSingleValueResult).
        if "empty result" not in str(error):
            pulumi.log.warn(f"could not read the log group {name} ({_first_line(error)}); it is created, which fails "
                            "if it exists")
        else:
            _nothing(f"log group {name}", error)
        return None
    return EksClusterLogGroup(name=name, retention_in_days=group.retention_in_days or 0, tags=dict(group.tags or {}))


def eks_addon_versions(kubernetes_version: str, region: str, provider: pulumi.ProviderResource) -> dict[str, str]:
    """Each managed add-on's default version for ``kubernetes_version``: what EKS would install on a new cluster of
    that version (``aws.eks.get_addon_version`` with ``most_recent=False``: the version whose compatibility says
    ``defaultVersion``; terraform-provider-aws internal/service/eks/addon_version_data_source.go,
    findAddonVersionByTwoPartKey). An add-on whose version cannot be read is left out, with a warning: created at
    EKS's default, an existing one stays where it is."""
    opts = pulumi.InvokeOptions(provider=provider)
    versions: dict[str, str] = {}
    for addon in MANAGED_ADDONS:
        try:
            versions[addon] = aws.eks.get_addon_version(addon_name=addon, kubernetes_version=kubernetes_version,
                                                        most_recent=False, region=region, opts=opts).version
        except Exception as error:
            pulumi.log.warn(f"could not read the default version of the EKS add-on {addon} for Kubernetes "
                            f"{kubernetes_version} ({_first_line(error)}); it stays at the version it runs, and a new "
                            "one gets EKS's default")
    return versions


def eks_instance_type_zones(instance_types: list[str], region: str,
                            provider: pulumi.ProviderResource) -> dict[str, frozenset[str]] | None:
    """The availability zones of ``region`` that offer each of ``instance_types``, by zone name, as this account
    names them: EC2's DescribeInstanceTypeOfferings with ``LocationType=availability-zone``, the only source of a
    zone's types ("To see if an instance type is available in a Region, use the describe-instance-type-offerings
    command", EC2 User Guide, ec2-instance-topology-prerequisites; zone names map to different physical zones in
    different accounts of older Regions, so no table from elsewhere would do). The data source answers parallel
    lists, empty ones when nothing matches (terraform-provider-aws internal/service/ec2/
    ec2_instance_type_offerings_data_source.go): a type the region does not offer maps to no zone. None when the
    lookup fails in a preview, with a warning: node groups then use every zone; in a deployment it is an error."""
    try:
        found = aws.ec2.get_instance_type_offerings(
            location_type="availability-zone", region=region,
            filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type",
                                                                values=sorted(set(instance_types)))],
            opts=pulumi.InvokeOptions(provider=provider))
    except Exception as error:
        if not pulumi.runtime.is_dry_run():
            # Every zone would change a running group's subnet_ids (ForceNew): a replaced GPU node group. Fail closed.
            raise RuntimeError(
                f"could not read which zones of {region} offer {', '.join(sorted(set(instance_types)))} "
                f"({_first_line(error)}): the deploying role needs ec2:DescribeInstanceTypeOfferings; placing node "
                "groups in every zone instead would replace running ones, so nothing was changed") from error
        pulumi.log.warn(f"could not read which zones of {region} offer {', '.join(sorted(set(instance_types)))} "
                        f"({_first_line(error)}); node groups are placed in every zone of the stack")
        return None
    zones: dict[str, set[str]] = {t: set() for t in instance_types}
    for kind, location in zip(found.instance_types or [], found.locations or [], strict=True):
        zones.setdefault(kind, set()).add(location)
    return {kind: frozenset(where) for kind, where in zones.items()}


def aws_deploying_role(provider: pulumi.ProviderResource) -> str | None:
    """The IAM role this run's AWS credentials are a session of (STS GetCallerIdentity, then the session's issuer:
    ``aws.iam.get_session_context``), or None for an IAM user or when it cannot be read."""
    opts = pulumi.InvokeOptions(provider=provider)
    try:
        caller = aws.get_caller_identity(opts=opts).arn
        if ":assumed-role/" not in caller:
            return None
        return aws.iam.get_session_context(arn=caller, opts=opts).issuer_arn or None
    except Exception as error:
        pulumi.log.warn(f"could not read which IAM role this run is ({_first_line(error)}); an adminRoleArns entry for "
                        "the role that creates the cluster is not caught before `pulumi up`: the deploying role needs "
                        "sts:GetCallerIdentity and iam:GetRole")
        return None


@dataclass(frozen=True, kw_only=True)
class VpcDns:
    """What an existing VPC's DNS gives its nodes (EC2 DescribeVpcs, DescribeVpcAttribute, DescribeDhcpOptions)."""

    hostnames: bool
    support: bool
    name_servers: tuple[str, ...] | None
    """The DHCP options' domain name servers; None for the VPC's default options (``AmazonProvidedDNS``)."""


def aws_vpc_dns(vpc_id: str, region: str, provider: pulumi.ProviderResource) -> VpcDns | None:
    """The DNS settings of the existing VPC ``vpc_id``, or None (with a warning) when they cannot be read."""
    opts = pulumi.InvokeOptions(provider=provider)
    try:
        vpc = aws.ec2.get_vpc(id=vpc_id, region=region, opts=opts)
        servers = None
        if vpc.dhcp_options_id and vpc.dhcp_options_id != "default":
            options = aws.ec2.get_vpc_dhcp_options(dhcp_options_id=vpc.dhcp_options_id, region=region, opts=opts)
            servers = tuple(options.domain_name_servers or ())
    except Exception as error:
        pulumi.log.warn(f"could not read the DNS settings of {vpc_id} ({_first_line(error)}); a VPC whose nodes "
                        "cannot resolve the cluster's endpoint is not caught before `pulumi up`")
        return None
    return VpcDns(hostnames=bool(vpc.enable_dns_hostnames), support=bool(vpc.enable_dns_support), name_servers=servers)


def aws_zone_ids(region: str, provider: pulumi.ProviderResource) -> dict[str, str] | None:
    """Each availability zone's ID, by the zone's name in this account (EC2 DescribeAvailabilityZones: names map to
    different physical zones in different accounts, IDs do not). None, with a warning, when it cannot be read: the
    zones are then not checked, and a zone EKS refuses fails the cluster's create instead."""
    try:
        found = aws.get_availability_zones(region=region, opts=pulumi.InvokeOptions(provider=provider))
    except Exception as error:
        pulumi.log.warn(f"could not read the availability zones of {region} ({_first_line(error)}); a zone EKS does "
                        "not take is not caught before `pulumi up`: the deploying role needs "
                        "ec2:DescribeAvailabilityZones")
        return None
    return dict(zip(found.names or [], found.zone_ids or [], strict=True))


def gke_retained_keys(project: str, region: str, cluster_name: str, provider: pulumi.ProviderResource) -> Retained:
    """The Secrets key ring and key of a destroyed stack of the same cluster name, if they exist."""
    return gcp_retained_kms(project, region, key_ring_name(cluster_name), CRYPTO_KEY_NAME, provider)


def gcp_retained_kms(project: str, location: str, ring_name: str, key_name: str,
                     provider: pulumi.ProviderResource) -> Retained:
    """The Cloud KMS key ring ``ring_name`` of ``location`` and its key ``key_name``, if an earlier stack left them
    (Cloud KMS never deletes either)."""
    opts = pulumi.InvokeOptions(provider=provider)
    try:
        rings = gcp.kms.get_key_rings(project=project, location=location, opts=opts).key_rings
    except Exception as error:
        # Nothing to adopt where Cloud KMS's API is not yet enabled (a first `pulumi up`, which enables it). Any
        # other failure (a denied permission, a transient error) may hide a retained ring whose name a create
        # would then collide with: said, so that the 409 that follows has its cause beside it.
        if _api_not_enabled(error):
            _nothing(f"Cloud KMS key rings of {project}/{location}", error)
        else:
            pulumi.log.warn(f"could not list the Cloud KMS key rings of {project}/{location} ({_first_line(error)}); "
                            f"a key ring {ring_name} retained by an earlier stack is not adopted, and creating it "
                            "again fails with 409: the deploying identity needs cloudkms.keyRings.list")
        return Retained()
    ring = _named(rings, ring_name)
    if ring is None:
        return Retained()
    key = _named(gcp.kms.get_crypto_keys(key_ring=ring, opts=opts).keys, key_name)
    pulumi.log.info(f"adopting the retained key ring {ring}" + (f" and key {key}" if key else ""))
    return Retained(key_ring_id=ring, crypto_key_id=key)


def gke_channels_offering(minor: str, project: str, region: str, provider: pulumi.ProviderResource) -> set[str] | None:
    """The release channels (RAPID, REGULAR, STABLE, EXTENDED) whose valid versions in ``region`` include a patch of
    Kubernetes ``minor`` (GKE's server config, as ``gcp.container.get_engine_versions`` filters it by prefix:
    terraform-provider-google ``data_source_google_container_engine_versions.go``, ``release_channel_latest_version``
    holds a channel only where one of its valid versions has the prefix). None when it cannot be read (with a warning,
    except where GKE's API is not enabled yet: a first `pulumi up` enables it)."""
    try:
        found = gcp.container.get_engine_versions(location=region, project=project, version_prefix=f"{minor}.",
                                                  opts=pulumi.InvokeOptions(provider=provider))
    except Exception as error:
        if _api_not_enabled(error):
            _nothing(f"GKE versions of {project}/{region}", error)
        else:
            pulumi.log.warn(f"could not read the GKE versions of {region} ({_first_line(error)}); a kubernetesVersion "
                            "the release channel does not offer is not caught before `pulumi up`")
        return None
    return set(found.release_channel_latest_version or {})


def gcp_subnet_regions(project: str, network: str, subnet: str, provider: pulumi.ProviderResource) -> list[str] | None:
    """The regions where the VPC network ``network`` has a subnet named ``subnet`` (its self links name the region:
    ``.../regions/R/subnetworks/N``); ``[]`` when there is no such network, None (with a warning) when it cannot be
    read."""
    try:
        found = gcp.compute.get_network(name=network, project=project, opts=pulumi.InvokeOptions(provider=provider))
    except Exception as error:
        if " not found" in str(error) or _api_not_enabled(error):
            _nothing(f"VPC network {network}", error)
            return []
        pulumi.log.warn(f"could not read the VPC network {network} ({_first_line(error)}); moving the stack to another "
                        "region (cloud.region) is not caught before `pulumi up`")
        return None
    regions = []
    for link in found.subnetworks_self_links or []:
        parts = link.split("/")
        if parts[-1] == subnet and "regions" in parts:
            regions.append(parts[parts.index("regions") + 1])
    return sorted(regions)


@dataclass(frozen=True, kw_only=True)
class GkeRunningCluster:
    """What a running GKE cluster was created with and GKE cannot change in place: the inputs terraform-provider-google
    marks ForceNew (``resource_container_cluster.go`` at e03b7622: ``private_cluster_config.master_ipv4_cidr_block``,
    ``datapath_provider``, ``network``, ``subnetwork``, ``ip_allocation_policy``), as its data source reads them back
    (the cluster's ``networkConfig`` and ``ipAllocationPolicy``). Networks are by name."""

    name: str
    master_cidr: str | None
    datapath_provider: str | None
    network: str | None
    subnetwork: str | None
    pods_range_name: str | None
    services_range_name: str | None
    pods_cidr: str | None
    services_cidr: str | None
    subnet_cidr: str | None = None
    """The node subnet's primary range (``google_compute_subnetwork``'s ``ip_cidr_range``): None when unread."""
    master_version: str | None = None
    """The control plane's current version (``1.34.1-gke.1234``)."""


class Unread:
    """A lookup that failed (with a warning): neither "there is one" nor "there is none"."""

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD = Unread()


def gke_cluster(project: str, region: str, cluster_name: str,
                provider: pulumi.ProviderResource) -> GkeRunningCluster | Unread | None:
    """The running cluster of this name, None when there is none, ``UNREAD`` when it could not be read. The data
    source fails with "<path> not found" for a missing cluster (terraform-provider-google
    ``data_source_google_container_cluster.go``); any other failure but a disabled GKE API is a warning: the checks
    against the running cluster are then skipped, and an edit GKE cannot apply in place fails at `pulumi up`
    instead."""
    try:
        cluster = gcp.container.get_cluster(name=cluster_name, location=region, project=project,
                                            opts=pulumi.InvokeOptions(provider=provider))
    except Exception as error:
        # No cluster: none of that name, or GKE's API not yet enabled in the project (a first `pulumi up`, which
        # enables it), as Google's APIs report it ("SERVICE_DISABLED", "has not been used in project").
        if " not found" in str(error) or _api_not_enabled(error):
            _nothing(f"GKE cluster {cluster_name}", error)
        else:
            pulumi.log.warn(f"could not read the GKE cluster {cluster_name} ({_first_line(error)}); an edit that would "
                            "replace it (masterCidr, podsCidr, servicesCidr, region) or a kubernetesVersion its "
                            "release channel lacks is not caught before `pulumi up`")
            return UNREAD
        return None
    private = (cluster.private_cluster_configs or [None])[0]
    ranges = (cluster.ip_allocation_policies or [None])[0]
    subnetwork = cluster.subnetwork.rsplit("/", 1)[-1] if cluster.subnetwork else None
    return GkeRunningCluster(
        name=cluster_name,
        master_cidr=private.master_ipv4_cidr_block if private else None,
        datapath_provider=cluster.datapath_provider or None,
        network=cluster.network.rsplit("/", 1)[-1] if cluster.network else None,
        subnetwork=subnetwork,
        pods_range_name=ranges.cluster_secondary_range_name if ranges else None,
        services_range_name=ranges.services_secondary_range_name if ranges else None,
        pods_cidr=ranges.cluster_ipv4_cidr_block if ranges else None,
        services_cidr=ranges.services_ipv4_cidr_block if ranges else None,
        subnet_cidr=_subnet_cidr(project, region, subnetwork, provider) if subnetwork else None,
        master_version=cluster.master_version or None,
    )


def _subnet_cidr(project: str, region: str, name: str, provider: pulumi.ProviderResource) -> str | None:
    """The primary range of the running cluster's subnet, or None (with a warning) when it cannot be read."""
    try:
        subnet = gcp.compute.get_subnetwork(name=name, region=region, project=project,
                                            opts=pulumi.InvokeOptions(provider=provider))
    except Exception as error:
        pulumi.log.warn(f"could not read the subnet {name} ({_first_line(error)}); an edit of subnetCidr that would "
                        "replace it is not caught before `pulumi up`")
        return None
    return subnet.ip_cidr_range or None


def _named(items, name: str) -> str | None:
    """The id of the KMS object called ``name`` (its id is a path ending in the name)."""
    return next((i.id for i in items if i.id.rsplit("/", 1)[-1] == name or i.name == name), None)


def _api_not_enabled(error: Exception) -> bool:
    """Whether a Google Cloud API answered that it is not enabled in the project, as Google's APIs report it."""
    return any(sign in str(error) for sign in ("SERVICE_DISABLED", "has not been used in project"))


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _nothing(what: str, error: Exception) -> None:
    pulumi.log.debug(f"{what}: none found ({_first_line(error)})")

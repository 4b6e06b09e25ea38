"""An EKS cluster built from plain pulumi-aws resources, hardened by default.

Plain resources rather than the pulumi-eks component: every child is then visible to
``neurodock plan``, the policy pack and reviewers, offline.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.cluster.base import (
    EKS_SUBNET_PREFIX,
    Capacity,
    EksSupportType,
    NodePoolArgs,
    PoolFacts,
    PoolRole,
    is_private_range,
    pool_facts,
    pool_resource_name,
)
from components.cluster.eks_addons import CLUSTER_TAG, STORAGE_CLASS
from components.errors import InputProblems
from components.labels import POOL_TAG

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
LOG_RETENTION_DAYS = 90
"""Days the control-plane log group keeps events. A group EKS creates itself keeps them forever (CloudWatch Logs'
default retention), which is why the stack creates the group first."""
MANAGED_ADDONS = ("vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver")
"""EKS add-ons the stack manages, each at the version ``EksClusterArgs.addon_versions`` gives. EKS installs the
first three itself, self-managed, and never updates them: "Amazon EKS doesn't automatically update an add-on when
new versions are released or after you update your cluster to a new Kubernetes minor version" (EKS User Guide,
"Update an Amazon EKS add-on"; awsdocs/amazon-eks-user-guide 4d52b4d latest/ug/workloads/eks-add-ons.adoc:1776)."""
ADMIN_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
"""Kubernetes cluster-admin (access-policy-reference.adoc:122-127, same commit as below)."""
VIEW_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
"""Read most Kubernetes objects (get, list, watch); no Secrets, no writes (EKS User Guide, "Access policy
permissions"; awsdocs/amazon-eks-user-guide 4d52b4d
latest/ug/manage-access/k8s-access/access-policy-reference.adoc:267-318)."""
AUTOSCALER_GPU_LABEL = "k8s.amazonaws.com/accelerator"
"""The Cluster Autoscaler's AWS GPU label (cloudprovider/aws/aws_cloud_provider.go, ``GPULabel``): a
node carrying it counts as not ready until its GPUs are allocatable, so a scale-up is not undone
while the device plugin starts."""

_AMI_TYPES = {
    # AL2023 images: the NVIDIA variant ships the driver, the container toolkit and EFA support.
    PoolRole.GPU: "AL2023_x86_64_NVIDIA",
    PoolRole.CPU: "AL2023_x86_64_STANDARD",
    PoolRole.SYSTEM: "AL2023_x86_64_STANDARD",
}


@dataclass(frozen=True, kw_only=True)
class EksClusterArgs:
    cluster_name: str
    """EKS cluster name; fixed, because kubeconfigs and IAM policies refer to it."""
    region: str
    """AWS region, used in the kubeconfig's token command."""
    zones: tuple[str, ...]
    """Availability zones: one public and one private subnet in each (at least two)."""
    kubernetes_version: str
    """EKS version (``major.minor``)."""
    support_type: EksSupportType
    """``STANDARD``: EKS upgrades the control plane at the end of standard support; ``EXTENDED``: keep the
    version longer, at a charge."""
    vpc_cidr: str
    """VPC range; split into /20 subnets (unused with ``existing_private_subnet_ids``)."""
    existing_private_subnet_ids: tuple[str, ...] = ()
    """Use these private subnets of an existing VPC instead of creating a VPC (default: create one)."""
    public_endpoint: bool
    """Expose the API server publicly."""
    public_access_cidrs: tuple[str, ...] = ()
    """CIDRs allowed to a public endpoint (required when it is public)."""
    admin_role_arns: tuple[str, ...] = ()
    """IAM roles given cluster-admin through access entries (default none)."""
    node_pools: tuple[NodePoolArgs, ...] = ()
    """Managed node groups to create."""
    live_sizes: Mapping[str, int] | None = field(default_factory=dict)
    """Each existing pool's current desired size (``infra.live``): empty on a first `pulumi up`; None
    when it could not be read."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every taggable resource (default none)."""
    cluster_tags: dict[str, str] = field(default_factory=dict)
    """Tags for the EKS cluster alone, on top of ``tags`` (default none): the stack's budget, which the policy
    pack reads there (``components.cost.budget``)."""
    addon_versions: Mapping[str, str] = field(default_factory=dict)
    """Version of each of ``MANAGED_ADDONS`` (``infra.live.eks_addon_versions``: EKS's default for
    ``kubernetes_version``). An add-on missing here is created at EKS's default then left at its version (default:
    none given)."""
    existing_log_group: EksClusterLogGroup | None = None
    """The control-plane log group as it exists before `pulumi up` (``infra.live.eks_log_group``): a destroyed stack
    of this cluster name left it (``retainOnDelete``), and it is adopted (``import``) instead of created (default:
    none, create it)."""
    instance_type_zones: Mapping[str, frozenset[str]] | None = None
    """The availability zones of ``region`` that offer each instance type of the node pools
    (``infra.live.eks_instance_type_zones``: EC2's DescribeInstanceTypeOfferings, the only source AWS gives for a
    zone's types). A node group then gets the private subnets of the zones of ``zones`` that offer one of its types,
    and a pool none of them offers is refused. None (default): not known, every zone; with
    ``existing_private_subnet_ids`` the subnets' zones are not known, and every subnet is used."""
    preview_role_arns: tuple[str, ...] = ()
    """IAM roles given read-only Kubernetes access (``AmazonEKSViewPolicy``, cluster scope) through access entries:
    the pull-request preview's identity (default none)."""
    api_source_cidrs: tuple[str, ...] = ()
    """Private ranges (IPv4) admitted to the API server's private endpoint on port 443: a deploy runner inside the VPC
    or a network connected to it. The cluster security group EKS creates admits only itself (default none)."""


@dataclass(frozen=True, kw_only=True)
class EksClusterLogGroup:
    """The control-plane log group as CloudWatch Logs reports it."""

    name: str
    retention_in_days: int
    """0 when the group never expires events (a group EKS created itself)."""
    tags: Mapping[str, str]


def control_plane_log_group(cluster_name: str) -> str:
    """The log group EKS sends control-plane logs to: ``/aws/eks/<cluster>/cluster`` (EKS User Guide, "Send control
    plane logs to CloudWatch Logs"; awsdocs/amazon-eks-user-guide 4d52b4d
    latest/ug/observability/control-plane-logs.adoc:147)."""
    return f"/aws/eks/{cluster_name}/cluster"


class EksCluster(pulumi.ComponentResource):
    """VPC, KMS-encrypted EKS control plane with all logs, OIDC provider and managed node groups."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    kube_context: str | None = None
    cluster_identifier: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    autoscaler_role_arn: pulumi.Output[str]
    """IAM role for the Cluster Autoscaler's ServiceAccount (IRSA)."""
    pools: tuple[PoolFacts, ...]
    storage_class: str = STORAGE_CLASS
    """Created by :class:`~components.cluster.eks_addons.EksAddons` on the EBS CSI driver."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:cluster:EksCluster", name, None, opts)
        _validate(args)
        self._name = name
        self._args = args
        self._tags = {**args.tags, CLUSTER_TAG: args.cluster_name}
        self.pools = tuple(pool_facts(p, real_gpus=True) for p in args.node_pools)

        key = self._create_kms_key()
        private_subnets = list(args.existing_private_subnet_ids) or [s.id for s in self._create_network()]
        # The created subnets are in zone order; an existing VPC's subnets' zones are unknown here.
        self._subnets_by_zone = (None if args.existing_private_subnet_ids
                                 else dict(zip(args.zones, private_subnets, strict=True)))
        cluster = self._create_control_plane(key, private_subnets)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=cluster.identities[0].oidcs[0].issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=self._tags,
            opts=self._child(),
        )
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer_url = oidc.url
        self._create_access_entries(cluster)
        self._admit_api_sources(cluster)
        groups = self._create_node_groups(cluster, private_subnets)
        self._create_managed_addons(cluster, oidc, groups)
        self.autoscaler_role_arn = self._create_autoscaler_role(oidc)

        self.cluster_name = cluster.name
        # Unique to this cluster (a replacement of the same name gets another issuer id): the
        # Kubernetes provider is replaced exactly when the cluster is.
        self.cluster_identifier = cluster.identities[0].oidcs[0].issuer.apply(lambda url: f"eks:{url}")
        self.endpoint = cluster.endpoint
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
                lambda a: _kubeconfig(a[0], a[1], a[2], args.region)
            )
        )
        self.register_outputs({
            "clusterName": self.cluster_name,
            "endpoint": self.endpoint,
            "kubeconfig": self.kubeconfig,
            "oidcProviderArn": self.oidc_provider_arn,
            "autoscalerRoleArn": self.autoscaler_role_arn,
        })

    def _child(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _create_kms_key(self) -> aws.kms.Key:
        # Envelope encryption of Secrets in etcd. The key outlives the cluster: data encrypted
        # with it (etcd backups) stays readable after a replacement.
        return aws.kms.Key(
            f"{self._name}-secrets",
            description=f"EKS Secrets envelope encryption for {self._args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=self._tags,
            opts=self._child(retain_on_delete=True),
        )

    def _create_network(self) -> list[aws.ec2.Subnet]:
        args = self._args
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        vpc = aws.ec2.Vpc(
            f"{self._name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**self._tags, "Name": f"{args.cluster_name}"},
            opts=self._child(),
        )
        # Lock down the default security group: nothing should rely on it.
        aws.ec2.DefaultSecurityGroup(f"{self._name}-default-sg", vpc_id=vpc.id, tags=self._tags,
                                     opts=self._child())
        igw = aws.ec2.InternetGateway(f"{self._name}-igw", vpc_id=vpc.id, tags=self._tags, opts=self._child())
        public_rt = aws.ec2.RouteTable(
            f"{self._name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**self._tags, "Name": f"{args.cluster_name}-public"},
            opts=self._child(),
        )
        ranges = subnet_cidrs(args.vpc_cidr, args.zones)
        private: list[aws.ec2.Subnet] = []
        for zone in args.zones:
            public = aws.ec2.Subnet(
                f"{self._name}-public-{zone}",
                vpc_id=vpc.id,
                cidr_block=ranges[zone].public,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**self._tags, **cluster_tag, "Name": f"{args.cluster_name}-public-{zone}",
                      "kubernetes.io/role/elb": "1"},
                opts=self._child(),
            )
            aws.ec2.RouteTableAssociation(f"{self._name}-public-{zone}", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=self._child())
            # One NAT gateway per zone: losing a zone never cuts the others off image registries.
            eip = aws.ec2.Eip(f"{self._name}-nat-{zone}", domain="vpc", tags=self._tags, opts=self._child())
            nat = aws.ec2.NatGateway(f"{self._name}-nat-{zone}", subnet_id=public.id, allocation_id=eip.id,
                                     tags=self._tags, opts=self._child(depends_on=[igw]))
            private_rt = aws.ec2.RouteTable(
                f"{self._name}-private-{zone}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags={**self._tags, "Name": f"{args.cluster_name}-private-{zone}"},
                opts=self._child(),
            )
            subnet = aws.ec2.Subnet(
                f"{self._name}-private-{zone}",
                vpc_id=vpc.id,
                cidr_block=ranges[zone].private,
                availability_zone=zone,
                tags={**self._tags, **cluster_tag, "Name": f"{args.cluster_name}-private-{zone}",
                      "kubernetes.io/role/internal-elb": "1"},
                opts=self._child(),
            )
            aws.ec2.RouteTableAssociation(f"{self._name}-private-{zone}", subnet_id=subnet.id,
                                          route_table_id=private_rt.id, opts=self._child())
            private.append(subnet)
        return private

    def _create_control_plane(self, key: aws.kms.Key, subnets: list[pulumi.Input[str]]) -> aws.eks.Cluster:
        args = self._args
        role = aws.iam.Role(
            f"{self._name}-cluster",
            assume_role_policy=_assume_role("eks.amazonaws.com"),
            tags=self._tags,
            opts=self._child(),
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{self._name}-cluster-policy",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=self._child(),
        )
        logs = self._create_log_group()
        return aws.eks.Cluster(
            f"{self._name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=subnets,
                endpoint_private_access=True,
                endpoint_public_access=args.public_endpoint,
                public_access_cidrs=list(args.public_access_cidrs) if args.public_endpoint else None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=args.support_type),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                # The identity running `pulumi up` needs access to deploy the workloads.
                bootstrap_cluster_creator_admin_permissions=True,
            ),
            tags={**self._tags, **args.cluster_tags},
            opts=self._child(depends_on=[attachment, logs]),
        )

    def _create_log_group(self) -> aws.cloudwatch.LogGroup:
        """The control-plane log group, created before the cluster (which depends on it) so that EKS writes into a
        group with a retention period instead of creating one that keeps events forever.

        Kept on delete: while the cluster is deleted, EKS's service-linked role (AWSServiceRoleForAmazonEKS) writes
        its last events and creates the group again if it is gone, so a deleted group comes back and the next create
        of the same cluster name fails with "log group already exists" (terraform-aws-modules/terraform-aws-eks#2486,
        #2763, #2446: a Deny on the cluster role does not stop the service-linked role). A re-created stack finds the
        group it left (``existing_log_group``) and adopts it (``import``) with the inputs it was created with."""
        args = self._args
        existing = args.existing_log_group
        if existing is not None and existing.tags.get(CLUSTER_TAG) != args.cluster_name:
            pulumi.log.warn(
                f"{existing.name} exists without this stack's tag {CLUSTER_TAG}={args.cluster_name} (retention: "
                f"{existing.retention_in_days or 'never expire'}): most likely EKS created it again while an earlier "
                "stack of this cluster name was destroyed, before stacks kept their group. The stack adopts it and "
                "sets its retention and tags (the Pulumi CLI imports a resource whose inputs differ, then updates it, "
                "since v3.174.0, pulumi/pulumi#19339); with an older CLI the import fails: then, once no cluster of "
                "this name exists, delete it (`aws logs delete-log-group "
                f"--region {args.region} --log-group-name {existing.name}`) and run `pulumi up` again "
                "(docs/disaster-recovery.md)", resource=self)
        elif existing is not None:
            pulumi.log.info(f"adopting the retained control-plane log group {existing.name}", resource=self)
        return aws.cloudwatch.LogGroup(
            f"{self._name}-logs",
            name=control_plane_log_group(args.cluster_name),
            retention_in_days=LOG_RETENTION_DAYS,
            tags=self._tags,
            opts=self._child(retain_on_delete=True, import_=existing.name if existing else None),
        )

    def _create_access_entries(self, cluster: aws.eks.Cluster) -> None:
        # Named by the role, not by position: removing or reordering roles leaves the others' entries alone. By
        # position, an entry would change principal (ForceNew), and its replacement, created before the old entry
        # is deleted, would be refused while another entry still held that principal (EKS takes one per principal).
        # Admin entries were once named by position: each keeps that name as an alias, so a stack of that time
        # adopts its entries as they are, provided its first update under this name does not also reorder them.
        for i, arn in enumerate(self._args.admin_role_arns):
            self._access_entry(f"{self._name}-admin-{_role_name(arn)}", cluster, arn, ADMIN_ACCESS_POLICY,
                               was=f"{self._name}-admin-{i}")
        for arn in self._args.preview_role_arns:
            self._access_entry(f"{self._name}-preview-{_role_name(arn)}", cluster, arn, VIEW_ACCESS_POLICY)

    def _admit_api_sources(self, cluster: aws.eks.Cluster) -> None:
        """Port 443 of the private endpoint, from each of ``api_source_cidrs``. EKS's cluster security group admits
        only itself (EKS User Guide, sec-group-reqs.adoc 24-45), and a network reaching a private-only endpoint needs
        "rules to allow ingress traffic on port 443" in it (cluster-endpoint.adoc 241). One rule per range, named by
        it: adding or removing a range leaves the others alone."""
        for cidr in self._args.api_source_cidrs:
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-api-from-{cidr.replace('.', '-').replace('/', '-')}",
                security_group_id=cluster.vpc_config.cluster_security_group_id,
                cidr_ipv4=cidr,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="NeuroDock: the deploy runner to the Kubernetes API",
                tags=self._tags,
                opts=self._child(),
            )

    def _access_entry(self, name: str, cluster: aws.eks.Cluster, principal_arn: str, policy_arn: str,
                      was: str | None = None) -> None:
        aliases = [pulumi.Alias(name=was)] if was else None
        entry = aws.eks.AccessEntry(name, cluster_name=cluster.name, principal_arn=principal_arn, tags=self._tags,
                                    opts=self._child(aliases=aliases))
        aws.eks.AccessPolicyAssociation(
            name,
            cluster_name=cluster.name,
            principal_arn=principal_arn,
            policy_arn=policy_arn,
            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
            opts=self._child(depends_on=[entry], aliases=aliases),
        )

    def _create_node_groups(
        self, cluster: aws.eks.Cluster, subnets: list[pulumi.Input[str]]
    ) -> list[aws.eks.NodeGroup]:
        role = aws.iam.Role(
            f"{self._name}-node",
            assume_role_policy=_assume_role("ec2.amazonaws.com"),
            tags=self._tags,
            opts=self._child(),
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{self._name}-node-{policy}",
                role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=self._child(),
            )
            for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                           "AmazonEC2ContainerRegistryReadOnly")
        ]
        groups = []
        for pool in self._args.node_pools:
            template = aws.ec2.LaunchTemplate(
                pool_resource_name(self._name, pool.name),
                description=f"{self._args.cluster_name} pool {pool.name}",
                # IMDSv2 only, one hop: pods cannot reach the node's credentials through IMDS. The
                # one node agent that needs IMDS (EBS CSI, for attach limits) runs on the host network.
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled",
                    http_tokens="required",
                    http_put_response_hop_limit=1,
                ),
                block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=pool.disk_size_gib,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )],
                tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type=kind, tags={**self._tags, POOL_TAG: pool.name},
                ) for kind in ("instance", "volume")],
                tags=self._tags,
                opts=self._child(),
            )
            desired, ignore = _desired_size(pool, self._args.live_sizes)
            group = aws.eks.NodeGroup(
                pool_resource_name(self._name, pool.name),
                cluster_name=cluster.name,
                node_group_name_prefix=f"{pool.name}-",
                node_role_arn=role.arn,
                # Only the subnets of zones that offer one of the pool's instance types: the group's Auto Scaling
                # group would otherwise keep trying, and failing, to launch in the others. ForceNew in the provider
                # (terraform-provider-aws internal/service/eks/node_group.go, docs/upstream.md):
                # a zone that starts offering the type replaces the group (its name is a prefix, so the new one
                # comes up before the old one is drained), shown as a replace in the preview.
                subnet_ids=self._pool_subnets(pool, subnets),
                ami_type=_AMI_TYPES[pool.role],
                instance_types=list(pool.instance_types),
                capacity_type="SPOT" if pool.capacity is Capacity.SPOT else "ON_DEMAND",
                # Follows the control plane: a version bump rolls the nodes too (UpdateNodegroupVersion,
                # max_unavailable at a time), after the control plane is upgraded.
                version=cluster.version,
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                    min_size=pool.min_nodes, max_size=pool.max_nodes,
                    desired_size=desired,
                ),
                labels=eks_node_labels(pool),
                taints=[aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=t.cloud_effect)
                        for t in pool.taints()],
                launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str),
                ),
                **_update_behaviour(pool),
                tags={**self._tags, POOL_TAG: pool.name},
                opts=self._child(
                    depends_on=attachments,
                    ignore_changes=ignore,
                    custom_timeouts=pulumi.CustomTimeouts(update=f"{_update_minutes(pool)}m"),
                ),
            )
            self._tag_for_scale_from_zero(pool, group)
            groups.append(group)
        return groups

    def _pool_subnets(self, pool: NodePoolArgs, subnets: list[pulumi.Input[str]]) -> list[pulumi.Input[str]]:
        if self._subnets_by_zone is None:
            return subnets
        return [self._subnets_by_zone[z] for z in pool_zones(pool.instance_types, self._args.zones,
                                                             self._args.instance_type_zones)]

    def _tag_for_scale_from_zero(self, pool: NodePoolArgs, group: aws.eks.NodeGroup) -> None:
        """Node-template tags on the group's Auto Scaling group.

        EKS puts the autoscaler's discovery tags on the ASG but not the pool's labels, taints and
        GPUs. With no node running, the Cluster Autoscaler reads these tags to know that a new node
        would carry the GPU label, tolerate-able taint and ``nvidia.com/gpu`` capacity a pending pod
        asks for, and so scales the pool up from zero.
        """
        asg = group.resources[0].autoscaling_groups[0].name
        template = "k8s.io/cluster-autoscaler/node-template"
        tags = {f"{template}/label/{k}": v for k, v in eks_node_labels(pool).items()}
        tags.update({f"{template}/taint/{t.key}": f"{t.value}:{t.effect}" for t in pool.taints()})
        if pool.gpu_count:
            tags[f"{template}/resources/nvidia.com/gpu"] = str(pool.gpu_count)
        for key, value in sorted(tags.items()):
            aws.autoscaling.Tag(
                # Named by the tag key, so adding a label never renames the other tags.
                f"{pool_resource_name(self._name, pool.name)}-asg-{key.removeprefix(template + '/')}",
                autoscaling_group_name=asg,
                tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                opts=self._child(),
            )

    def _irsa_role(self, role_name: str, oidc: aws.iam.OpenIdConnectProvider, namespace: str,
                   service_account: str) -> aws.iam.Role:
        """A role only the given ServiceAccount can assume, through the cluster's OIDC provider."""
        policy = irsa_trust_policy(oidc.arn, oidc.url, namespace, service_account)
        return aws.iam.Role(f"{self._name}-{role_name}", assume_role_policy=policy, tags=self._tags,
                            opts=self._child())

    def _create_managed_addons(self, cluster: aws.eks.Cluster, oidc: aws.iam.OpenIdConnectProvider,
                               groups: list[aws.eks.NodeGroup]) -> None:
        """The EKS add-ons of ``MANAGED_ADDONS``, at ``addon_versions``: a ``kubernetes_version`` bump moves each in
        place (the provider's ``addon_version`` is updatable: UpdateAddon) in the same `pulumi up`.

        After the node groups, on create and on update alike: AWS's upgrade order is the control plane, then the nodes,
        then the VPC CNI, CoreDNS and kube-proxy add-ons (EKS User Guide, "Update existing cluster to new Kubernetes
        version", update-cluster.adoc:225 and :241), kube-proxy never newer than the nodes' kubelet (Kubernetes version
        skew policy, as eks-networking-add-ons.adoc:4532 says), and the CoreDNS and EBS CSI controllers need nodes to
        run on before they report ACTIVE. On a new cluster the nodes join on the self-managed copies EKS installs."""
        args = self._args
        role = self._irsa_role("ebs-csi", oidc, "kube-system", "ebs-csi-controller-sa")
        attachment = aws.iam.RolePolicyAttachment(
            f"{self._name}-ebs-csi",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
            opts=self._child(),
        )
        settings: dict[str, dict] = {
            # Over EKS's self-managed copy of the same add-on: adopted (OVERWRITE on create, eks-add-ons.adoc:1726),
            # and kept on the cluster if the add-on ever leaves the program (preserve: deleting it would delete the
            # pod network, DNS or Services' routing with it; eks-add-ons.adoc:2090, :2116).
            # NetworkPolicies are enforced only with this (EKS User Guide, eks-networking-add-ons.adoc 1456-1475,
            # "Enable the network policy parameter for the add-on"; VPC CNI 1.14 or later, kernel 5.10, both met by
            # AL2023): without it every NetworkPolicy of the stack is accepted and ignored. Its node agent takes
            # ports 8162 and 8163 on each node (the same page, 1450).
            "vpc-cni": {"preserve": True, "configuration_values": json.dumps({"enableNetworkPolicy": "true"})},
            "kube-proxy": {"preserve": True},
            "coredns": {"preserve": True},
            "aws-ebs-csi-driver": {
                "service_account_role_arn": role.arn,
                # The driver reads the attached ENIs and volumes from IMDS to compute each node's attach
                # limit; with IMDS' hop limit 1 a pod-network container cannot reach it, and the
                # Kubernetes fallback assumes one ENI and no volume, over-counting free attachments. Host
                # networking is the driver's documented alternative to raising the hop limit for every pod
                # (aws-ebs-csi-driver v1.64.0 docs/install.md, metadata section; docs/upstream.md).
                "configuration_values": json.dumps({"node": {"hostNetwork": True}}),
            },
        }
        logical = {"aws-ebs-csi-driver": "ebs-csi"}  # the name it had before the other add-ons joined
        for addon in MANAGED_ADDONS:
            aws.eks.Addon(
                f"{self._name}-{logical.get(addon, addon)}",
                cluster_name=cluster.name,
                addon_name=addon,
                addon_version=args.addon_versions.get(addon),
                resolve_conflicts_on_create="OVERWRITE",
                # The program owns each add-on's configuration (EKS's defaults, or configuration_values): an update
                # resets what was changed by hand instead of failing on it (eks-add-ons.adoc:1947).
                resolve_conflicts_on_update="OVERWRITE",
                tags=self._tags,
                opts=self._child(depends_on=[*groups, *([attachment] if addon == "aws-ebs-csi-driver" else [])]),
                **settings[addon],
            )

    def _create_autoscaler_role(self, oidc: aws.iam.OpenIdConnectProvider) -> pulumi.Output[str]:
        role = self._irsa_role("autoscaler", oidc, "kube-system", "cluster-autoscaler")
        owned = {f"aws:ResourceTag/{k}": v for k, v in autoscaler_discovery_tags(self._args.cluster_name).items()
                 if v == "owned"}
        # Least privilege, as the autoscaler's AWS guide lists it: read everything it needs to
        # simulate scale-ups, change only the ASGs of this cluster.
        aws.iam.RolePolicy(
            f"{self._name}-autoscaler",
            role=role.id,
            policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Resource": "*", "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        "eks:DescribeNodegroup",
                    ]},
                    {"Effect": "Allow", "Resource": "*", "Action": [
                        "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup",
                    ], "Condition": {"StringEquals": owned}},
                ],
            }),
            opts=self._child(),
        )
        return role.arn


def _desired_size(pool: NodePoolArgs, live: Mapping[str, int] | None) -> tuple[int, list[str]]:
    """The group's desired size, and whether to leave it to the autoscaler.

    The autoscaler owns the desired size, but the AWS provider sends min, max and desired together on
    any scaling change, and EKS rejects a minimum above the desired size. So the program reads the
    live size each run and sends it back, clamped into the new bounds: raising minNodes raises it,
    lowering maxNodes lowers it, and nothing else moves it. A new group starts at minNodes. Only when
    the live size could not be read is the desired size left as it is (``ignoreChanges``)."""
    if live is None:
        return pool.min_nodes, ["scalingConfig.desiredSize"]
    current = live.get(pool.name)
    if current is None:
        return pool.min_nodes, []
    return min(max(current, pool.min_nodes), pool.max_nodes), []


def eks_node_labels(pool: NodePoolArgs) -> dict[str, str]:
    """The pool's labels, plus the autoscaler's GPU label on GPU pools."""
    labels = pool.node_labels()
    if pool.gpu_type:
        labels[AUTOSCALER_GPU_LABEL] = pool.gpu_type
    return labels


def autoscaler_discovery_tags(cluster_name: str) -> dict[str, str]:
    """The tags EKS puts on every managed node group's Auto Scaling group for the Cluster Autoscaler's
    auto-discovery (EKS User Guide, "Managed node groups": "tagged for auto-discovery by the Kubernetes
    Cluster Autoscaler"; values as in the autoscaler's AWS README, "Auto-discovery setup")."""
    return {"k8s.io/cluster-autoscaler/enabled": "true", f"k8s.io/cluster-autoscaler/{cluster_name}": "owned"}


def irsa_trust_policy(oidc_provider_arn: pulumi.Input[str], oidc_issuer_url: pulumi.Input[str], namespace: str,
                      service_account: str) -> pulumi.Output[str]:
    """An IAM trust policy that lets exactly one Kubernetes ServiceAccount assume the role (IRSA)."""
    def render(arn: str, url: str) -> str:
        issuer = url.removeprefix("https://")
        return json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                    f"{issuer}:aud": "sts.amazonaws.com",
                }},
            }],
        })

    return pulumi.Output.all(oidc_provider_arn, oidc_issuer_url).apply(lambda a: render(a[0], a[1]))


def pool_zones(instance_types: tuple[str, ...] | list[str], zones: tuple[str, ...],
               offered: Mapping[str, frozenset[str]] | None) -> tuple[str, ...]:
    """The zones of ``zones`` where a node group of ``instance_types`` is placed: those that offer at least one of
    them (the group's Auto Scaling group launches whichever type a zone has), in the stack's order; every one when
    the offerings are not known (``offered`` None)."""
    if offered is None:
        return tuple(zones)
    return tuple(z for z in zones if any(z in offered.get(t, frozenset()) for t in instance_types))


def _validate(args: EksClusterArgs) -> None:
    problems = InputProblems()
    if len(args.zones) < 2 and not args.existing_private_subnet_ids:
        problems.add("zones", "EksClusterArgs.zones needs at least two zones (EKS requires subnets in two)")
    if args.public_endpoint and not args.public_access_cidrs:
        problems.add("public_access_cidrs",
                     "EksClusterArgs.public_access_cidrs is required when public_endpoint is true")
    for i, pool in enumerate(args.node_pools):
        if not pool.instance_types:
            problems.add(("node_pools", i, "instance_types"), f"node pool {pool.name!r} needs instance_types")
        elif (offered := args.instance_type_zones) is not None and not args.existing_private_subnet_ids \
                and not pool_zones(pool.instance_types, args.zones, offered):
            there = sorted({z for t in pool.instance_types for z in offered.get(t, ())})
            problems.add(("node_pools", i, "instance_types"), (
                f"node pool {pool.name!r}: no zone of {', '.join(args.zones)} offers {', '.join(pool.instance_types)} "
                f"(EC2 DescribeInstanceTypeOfferings); {args.region}'s zones that do: {', '.join(there) or 'none'}. "
                "Add such a zone to cloud.zones, or choose instance types these zones offer"))
    unknown = sorted(set(args.addon_versions) - set(MANAGED_ADDONS))
    if unknown:
        problems.add("addon_versions", f"EksClusterArgs.addon_versions names add-ons the cluster does not manage "
                     f"({', '.join(unknown)}); use {', '.join(MANAGED_ADDONS)}")
    for i, cidr in enumerate(args.api_source_cidrs):
        try:
            private = is_private_range(cidr)
        except ValueError as error:
            problems.add(("api_source_cidrs", i), f"EksClusterArgs.api_source_cidrs[{i}] {cidr!r}: {error}")
            continue
        if not private:
            problems.add(("api_source_cidrs", i), f"EksClusterArgs.api_source_cidrs[{i}] {cidr} is not a private "
                         "range: the private endpoint is reached from inside the VPC or a network connected to it")
    admins: dict[str, str] = {}
    for i, arn in enumerate(args.admin_role_arns):
        if admins.setdefault(_role_name(arn), arn) != arn:
            problems.add(("admin_role_arns", i), f"EksClusterArgs.admin_role_arns[{i}] {arn} has the name of "
                         f"{admins[_role_name(arn)]}; give admin roles distinct names (entries are named by role)")
    names: dict[str, str] = {}
    for i, arn in enumerate(args.preview_role_arns):
        # EKS takes one access entry per IAM principal (EKS User Guide, "Grant IAM users access to Kubernetes with
        # EKS access entries", grant-k8s-access.adoc:202).
        if arn in args.admin_role_arns:
            problems.add(("preview_role_arns", i), f"EksClusterArgs.preview_role_arns[{i}] {arn} is an admin role too; "
                         "a principal has one access entry: list it in one of the two")
        elif names.setdefault(_role_name(arn), arn) != arn:
            problems.add(("preview_role_arns", i), f"EksClusterArgs.preview_role_arns[{i}] {arn} has the name of "
                         f"{names[_role_name(arn)]}; give preview roles distinct names")
    problems.raise_any()


EKS_DISALLOWED_ZONE_IDS: dict[str, frozenset[str]] = {
    "us-east-1": frozenset({"use1-az3"}),
    "us-west-1": frozenset({"usw1-az2"}),
    "ca-central-1": frozenset({"cac1-az3"}),
}
"""Availability Zone IDs a cluster's subnets cannot be in, by region (EKS User Guide, awsdocs/amazon-eks-user-guide at
4d52b4d0, latest/ug/networking/network-reqs.adoc 82-101, "The subnets can't reside in the following Availability
Zones"). By ID, not name: a zone's name maps to a different physical zone, and ID, in each account of these
regions."""


def _role_name(arn: str) -> str:
    """An IAM role's name: its ARN's last path segment."""
    return arn.rsplit("/", 1)[-1]


def _update_behaviour(pool: NodePoolArgs) -> dict[str, Any]:
    """How a version or launch-template update replaces the group's nodes, one at a time.

    EKS's default strategy first launches up to two new nodes per zone of the group, then drains the old ones
    (EKS User Guide, nodes/managed-node-update-behavior.adoc, "Scale up phase"): for a GPU pool that is up to six
    spare GPU machines in three zones, which capacity or quota rarely allows, and the update fails. GPU groups take
    the MINIMAL strategy instead, which terminates an old node before launching its replacement (botocore
    eks/2017-11-01 ``NodegroupUpdateStrategies``: "useful ... with hardware accelerators such as GPUs"), as GKE's
    GPU pools surge no node (``gke._upgrade_settings``).

    With no node to move to, a model with two replicas on one GPU node cannot be drained within its
    PodDisruptionBudget until a replica comes up elsewhere; EKS waits 15 minutes, then fails the update
    (``PodEvictionFailure``) unless it is forced. GPU groups force it: after those 15 minutes EKS evicts anyway,
    as GKE does after an hour, rather than leaving the group half on the old version, which blocks the next
    control-plane upgrade."""
    if pool.role is PoolRole.GPU:
        return {"update_config": aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1, update_strategy="MINIMAL"),
                "force_update_version": True}
    # Explicit: EKS reports DEFAULT for an unset strategy, which would show as a change on every preview
    # (terraform-aws-modules/terraform-aws-eks #3625).
    return {"update_config": aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1, update_strategy="DEFAULT")}


UPDATE_MINUTES_PER_NODE = 30
"""Upper bound of one node's turn in an update: up to 15 minutes of draining (EKS's own limit), then the new node
launched, joined and Ready (a GPU AMI boots in 5 to 10)."""


def _update_minutes(pool: NodePoolArgs) -> int:
    """The group's update timeout: one node at a time, each within ``UPDATE_MINUTES_PER_NODE``, never under the
    provider's default of 60 (terraform-provider-aws internal/service/eks/node_group.go ``Timeouts``). Past it
    `pulumi up` fails while EKS carries on, and the next run finds an update in progress."""
    return max(60, UPDATE_MINUTES_PER_NODE * pool.max_nodes)


@dataclass(frozen=True)
class ZoneRanges:
    private: str
    public: str


def subnet_cidrs(vpc_cidr: str, zones: tuple[str, ...] | list[str]) -> dict[str, ZoneRanges]:
    """Each zone's private and public subnet range in a VPC the stack creates. They follow the zone's place in the
    list (the private ranges first, in zone order, then the public ones), so adding, removing or reordering zones
    moves ranges between subnets: a subnet's range is ForceNew, and the new subnet, created first, overlaps the old."""
    blocks = _subnet_blocks(vpc_cidr, 2 * len(zones))
    return {zone: ZoneRanges(private=blocks[i], public=blocks[len(zones) + i]) for i, zone in enumerate(zones)}


def _subnet_blocks(vpc_cidr: str, count: int) -> list[str]:
    network = ipaddress.IPv4Network(vpc_cidr)
    prefix = max(network.prefixlen + (count - 1).bit_length(), EKS_SUBNET_PREFIX)
    return [str(s) for s in list(network.subnets(new_prefix=prefix))[:count]]


def _assume_role(service: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })


def _kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that gets short-lived tokens from ``aws eks get-token``: it holds no credential,
    and stays byte-identical across runs so the Kubernetes provider is never replaced."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", name, "--region", region, "--output", "json"],
            "interactiveMode": "Never",
        }}}],
    }, indent=2)

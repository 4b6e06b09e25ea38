"""A private, VPC-native GKE Standard cluster with GPU node pools, hardened by default."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from components.cluster.base import Capacity, NodePoolArgs, PoolFacts, SharingStrategy, pool_facts
from components.gpu.catalog import GPU_MODELS

# Least privilege for nodes: write logs and metrics, pull images. Nothing else.
NODE_SERVICE_ACCOUNT_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)


@dataclass(frozen=True, kw_only=True)
class GkeClusterArgs:
    cluster_name: str
    """GKE cluster name; fixed, because kubeconfigs and IAM bindings refer to it."""
    project: str
    """GCP project id."""
    region: str
    """Region of the (regional) cluster."""
    zones: tuple[str, ...]
    """Zones of the node pools."""
    kubernetes_version: str = "1.33"
    """Minimum master version (default 1.33)."""
    release_channel: str = "REGULAR"
    """RAPID, REGULAR or STABLE (default REGULAR)."""
    subnet_cidr: str = "10.10.0.0/20"
    """Nodes' primary range (default 10.10.0.0/20)."""
    pods_cidr: str = "10.16.0.0/14"
    """Pods' secondary range (default 10.16.0.0/14)."""
    services_cidr: str = "10.20.0.0/20"
    """Services' secondary range (default 10.20.0.0/20)."""
    master_cidr: str = "172.16.0.0/28"
    """Control plane /28 (default 172.16.0.0/28)."""
    public_endpoint: bool = False
    """Expose the API server publicly (default false: private endpoint)."""
    authorized_cidrs: tuple[str, ...] = ()
    """Master authorised networks (required with a public endpoint)."""
    node_pools: tuple[NodePoolArgs, ...] = ()
    """Node pools to create."""
    deletion_protection: bool = True
    """Refuse `pulumi destroy` of the cluster (default true)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Resource labels (default none)."""


class GkeCluster(pulumi.ComponentResource):
    """Network, KMS-encrypted private GKE cluster with Workload Identity, Shielded Nodes and pools."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    kube_context: str | None = None
    node_service_account: pulumi.Output[str]
    workload_pool: str
    pools: tuple[PoolFacts, ...]
    storage_class: str = "premium-rwo"

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:cluster:GkeCluster", name, None, opts)
        _validate(args)
        self._name = name
        self._args = args
        self._labels = {**args.labels, "neurodock-cluster": args.cluster_name}
        self.pools = tuple(pool_facts(p, real_gpus=True) for p in args.node_pools)
        self.workload_pool = f"{args.project}.svc.id.goog"

        service_account = self._create_node_service_account()
        key = self._create_kms_key()
        network, subnet = self._create_network()
        cluster = self._create_control_plane(network, subnet, key)
        for pool in args.node_pools:
            self._create_node_pool(cluster, pool, service_account)

        self.node_service_account = service_account.email
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint.apply(lambda host: f"https://{host}")
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate).apply(
                lambda a: _kubeconfig(a[0], a[1], a[2])
            )
        )
        self.register_outputs({
            "clusterName": self.cluster_name,
            "endpoint": self.endpoint,
            "kubeconfig": self.kubeconfig,
            "nodeServiceAccount": self.node_service_account,
        })

    def _child(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _create_node_service_account(self) -> gcp.serviceaccount.Account:
        args = self._args
        account = gcp.serviceaccount.Account(
            f"{self._name}-nodes",
            account_id=f"{args.cluster_name}-nodes"[:30],
            display_name=f"GKE nodes of {args.cluster_name}",
            project=args.project,
            opts=self._child(),
        )
        for role in NODE_SERVICE_ACCOUNT_ROLES:
            gcp.projects.IAMMember(
                f"{self._name}-nodes-{role.split('/')[1]}",
                project=args.project,
                role=role,
                member=account.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=self._child(),
            )
        return account

    def _create_kms_key(self) -> gcp.kms.CryptoKey:
        args = self._args
        # Key rings cannot be deleted in GCP; the key outlives the cluster on purpose.
        ring = gcp.kms.KeyRing(
            f"{self._name}-keyring",
            name=f"{args.cluster_name}-secrets",
            location=args.region,
            project=args.project,
            opts=self._child(retain_on_delete=True),
        )
        key = gcp.kms.CryptoKey(
            f"{self._name}-secrets",
            name="etcd-secrets",
            key_ring=ring.id,
            rotation_period=f"{90 * 24 * 3600}s",
            labels=self._labels,
            opts=self._child(retain_on_delete=True),
        )
        project = gcp.organizations.get_project_output(
            project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self))
        gcp.kms.CryptoKeyIAMMember(
            f"{self._name}-secrets-gke",
            crypto_key_id=key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=project.number.apply(
                lambda number: f"serviceAccount:service-{number}@container-engine-robot.iam.gserviceaccount.com"
            ),
            opts=self._child(),
        )
        return key

    def _create_network(self) -> tuple[gcp.compute.Network, gcp.compute.Subnetwork]:
        args = self._args
        network = gcp.compute.Network(
            f"{self._name}-net",
            name=args.cluster_name,
            project=args.project,
            auto_create_subnetworks=False,
            opts=self._child(),
        )
        subnet = gcp.compute.Subnetwork(
            f"{self._name}-nodes",
            name=f"{args.cluster_name}-nodes",
            project=args.project,
            region=args.region,
            network=network.id,
            ip_cidr_range=args.subnet_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name="pods", ip_cidr_range=args.pods_cidr),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name="services", ip_cidr_range=args.services_cidr),
            ],
            log_config=gcp.compute.SubnetworkLogConfigArgs(aggregation_interval="INTERVAL_5_MIN",
                                                           flow_sampling=0.5, metadata="INCLUDE_ALL_METADATA"),
            opts=self._child(),
        )
        # Private nodes have no public IP: Cloud NAT gives them egress to image registries and hubs.
        router = gcp.compute.Router(
            f"{self._name}-router", name=f"{args.cluster_name}-router", project=args.project,
            region=args.region, network=network.id, opts=self._child(),
        )
        gcp.compute.RouterNat(
            f"{self._name}-nat",
            name=f"{args.cluster_name}-nat",
            project=args.project,
            region=args.region,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=self._child(),
        )
        return network, subnet

    def _create_control_plane(
        self, network: gcp.compute.Network, subnet: gcp.compute.Subnetwork, key: gcp.kms.CryptoKey
    ) -> gcp.container.Cluster:
        args = self._args
        return gcp.container.Cluster(
            f"{self._name}-gke",
            name=args.cluster_name,
            project=args.project,
            location=args.region,
            node_locations=list(args.zones),
            min_master_version=args.kubernetes_version,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=args.release_channel),
            network=network.id,
            subnetwork=subnet.id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name="pods", services_secondary_range_name="services",
            ),
            # Dataplane V2 enforces NetworkPolicy.
            datapath_provider="ADVANCED_DATAPATH",
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=not args.public_endpoint,
                master_ipv4_cidr_block=args.master_cidr,
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                    cidr_block=cidr, display_name=f"allowed-{i}") for i, cidr in enumerate(args.authorized_cidrs)],
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=self.workload_pool,
            ),
            database_encryption=gcp.container.ClusterDatabaseEncryptionArgs(state="ENCRYPTED", key_name=key.id),
            enable_shielded_nodes=True,
            # The default pool is replaced by ours; it must exist for a moment at creation.
            remove_default_node_pool=True,
            initial_node_count=1,
            node_config=gcp.container.ClusterNodeConfigArgs(
                shielded_instance_config=gcp.container.ClusterNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True),
                workload_metadata_config=gcp.container.ClusterNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
            ),
            logging_config=gcp.container.ClusterLoggingConfigArgs(
                enable_components=["SYSTEM_COMPONENTS", "APISERVER", "CONTROLLER_MANAGER", "SCHEDULER", "WORKLOADS"],
            ),
            resource_labels=self._labels,
            deletion_protection=args.deletion_protection,
            opts=self._child(ignore_changes=["nodeConfig", "initialNodeCount"]),
        )

    def _create_node_pool(
        self, cluster: gcp.container.Cluster, pool: NodePoolArgs, account: gcp.serviceaccount.Account
    ) -> gcp.container.NodePool:
        args = self._args
        accelerators = []
        if pool.gpu_type:
            accelerators.append(gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                type=GPU_MODELS[pool.gpu_type].gke_accelerator,
                count=pool.gpu_count,
                # GKE installs and upgrades the driver itself: no driver DaemonSet to maintain.
                gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                    gpu_driver_version="LATEST",
                ),
                **_sharing(pool),
            ))
        return gcp.container.NodePool(
            f"{self._name}-{pool.name}",
            name=pool.name,
            project=args.project,
            cluster=cluster.id,
            location=args.region,
            node_locations=list(args.zones),
            initial_node_count=pool.min_nodes,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=pool.min_nodes,
                total_max_node_count=pool.max_nodes,
                # Take capacity in any zone: GPUs and spot are often short in one of them.
                location_policy="ANY",
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=pool.instance_types[0],
                disk_size_gb=pool.disk_size_gib,
                disk_type="pd-balanced",
                image_type="COS_CONTAINERD",
                service_account=account.email,
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                spot=pool.capacity is Capacity.SPOT,
                labels=pool.node_labels(),
                # GKE adds this taint to GPU nodes by itself only in some cases; setting it keeps
                # every GPU pool tainted and the state free of drift.
                taints=[gcp.container.NodePoolNodeConfigTaintArgs(
                    key=t.key, value=t.value, effect=t.cloud_effect) for t in pool.taints()],
                guest_accelerators=accelerators,
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True),
                metadata={"disable-legacy-endpoints": "true"},
                resource_labels={**self._labels, "neurodock-pool": pool.name},
            ),
            opts=self._child(ignore_changes=["initialNodeCount"]),
        )


def _sharing(pool: NodePoolArgs) -> dict:
    """GKE's GPU sharing: time-sharing through the accelerator's sharing config, MIG through its
    partition size. GKE's own device plugin then advertises the shares or slices."""
    sharing = pool.gpu_sharing
    if sharing is None:
        return {}
    if sharing.strategy is SharingStrategy.MIG:
        return {"gpu_partition_size": sharing.partition_size}
    return {"gpu_sharing_config": gcp.container.NodePoolNodeConfigGuestAcceleratorGpuSharingConfigArgs(
        gpu_sharing_strategy="TIME_SHARING", max_shared_clients_per_gpu=sharing.max_shared_clients)}


def _validate(args: GkeClusterArgs) -> None:
    problems = []
    if args.public_endpoint and not args.authorized_cidrs:
        problems.append("GkeClusterArgs.authorized_cidrs is required when public_endpoint is true")
    for pool in args.node_pools:
        if len(pool.instance_types) != 1:
            problems.append(f"node pool {pool.name!r} needs exactly one machine type")
        if pool.gpu_type and not GPU_MODELS[pool.gpu_type].gke_accelerator:
            problems.append(f"node pool {pool.name!r}: GKE has no {pool.gpu_type}")
    if problems:
        raise ValueError("; ".join(problems))


def _kubeconfig(name: str, host: str, ca_data: str) -> str:
    """A kubeconfig that gets tokens from ``gke-gcloud-auth-plugin``: no credential inside, and
    byte-identical across runs so the Kubernetes provider is never replaced."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": f"https://{host}", "certificate-authority-data": ca_data}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
            "provideClusterInfo": True,
            "interactiveMode": "Never",
        }}}],
    }, indent=2)

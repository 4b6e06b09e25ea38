"""A private, VPC-native GKE Standard cluster with GPU node pools, hardened by default."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from components.cluster.base import (
    Capacity,
    GkeReleaseChannel,
    NodePoolArgs,
    PoolFacts,
    PoolRole,
    SharingStrategy,
    pool_facts,
    pool_resource_name,
)
from components.cluster.zones import initial_nodes_per_zone, pool_zones, provenance
from components.errors import InputProblems
from components.gpu.catalog import GPU_MODELS, gke_accelerator, gke_boot_disk
from components.retained import Retained

REQUIRED_APIS = (
    "compute.googleapis.com",
    "container.googleapis.com",
    "cloudkms.googleapis.com",
    "iam.googleapis.com",
    # GKE's metadata server mints the weights readers' tokens by impersonating their Google service accounts.
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "storage.googleapis.com",
)
"""Services the cluster, its network, its Secrets key and its nodes' service account use, and the stack's weights
bucket and its IAM bindings (``storage``: on by default only for projects created with the console or gcloud, Service
Usage docs, "Services enabled by default"; a project created through the API or Pulumi may lack it). The weights
bucket waits for the cluster, and so for these (``infra/serving.py``)."""
GKE_CONTROL_PLANE_TO_NODE_PORTS = (443, 10250)
"""Ports GKE's own firewall rule opens from a private cluster's control plane to its nodes (docs/upstream.md)."""
CRYPTO_KEY_NAME = "etcd-secrets"
DATAPATH_PROVIDER = "ADVANCED_DATAPATH"
"""Dataplane V2, which enforces NetworkPolicy; fixed when GKE creates the cluster (ForceNew)."""
PODS_RANGE, SERVICES_RANGE = "pods", "services"
"""Names of the nodes' subnet's secondary ranges the cluster's pods and services take their addresses from."""
NODE_OAUTH_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
"""Nodes' access scope: ``cloud-platform``, so the node service account's IAM roles alone decide what nodes may do
(the temporary default pool and every node pool alike)."""

# Least privilege for nodes: write logs and metrics, pull images. Nothing else.
NODE_SERVICE_ACCOUNT_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)


@dataclass(frozen=True, kw_only=True)
class GkeClusterMaintenanceWindow:
    """A GKE recurring maintenance window (RFC 3339 times and an RFC 5545 RRULE)."""

    start_time: str
    end_time: str
    recurrence: str


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
    kubernetes_version: str | None = None
    """Minimum master version (default: the release channel's default)."""
    release_channel: GkeReleaseChannel
    """The release channel GKE upgrades the cluster in."""
    subnet_cidr: str
    """Nodes' primary range."""
    pods_cidr: str
    """Pods' secondary range."""
    services_cidr: str
    """Services' secondary range."""
    master_cidr: str
    """Control plane /28."""
    dns_endpoint: bool
    """Serve the API on GKE's DNS-based endpoint, reachable from anywhere but only with IAM permission
    ``container.clusters.connect``; the kubeconfig then points at it."""
    public_endpoint: bool
    """Expose the API server's IP publicly (false: a private IP endpoint)."""
    authorized_cidrs: tuple[str, ...] = ()
    """Master authorised networks (required with a public endpoint)."""
    node_pools: tuple[NodePoolArgs, ...] = ()
    """Node pools to create."""
    control_plane_ports: tuple[int, ...] = ()
    """Pod ports the API server calls (webhooks, aggregated APIs) beyond the 443 and 10250 GKE's own
    firewall rules open; a firewall rule lets the control plane reach them (default none)."""
    deletion_protection: bool
    """Refuse `pulumi destroy` of the cluster."""
    maintenance_window: GkeClusterMaintenanceWindow | None = None
    """When GKE may upgrade the control plane and nodes (default: any time)."""
    adopt: Retained = field(default_factory=Retained)
    """Retained resources with fixed names found in the project: adopted instead of created."""
    labels: dict[str, str] = field(default_factory=dict)
    """Resource labels (default none)."""
    cluster_labels: dict[str, str] = field(default_factory=dict)
    """Labels for the GKE cluster alone, on top of ``labels`` (default none): the stack's budget, which the policy
    pack reads there (``components.cost.budget``)."""


class GkeCluster(pulumi.ComponentResource):
    """Network, KMS-encrypted private GKE cluster with Workload Identity, Shielded Nodes and pools."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    kube_context: str | None = None
    cluster_identifier: pulumi.Output[str]
    node_service_account: pulumi.Output[str]
    workload_pool: pulumi.Output[str]
    pools: tuple[PoolFacts, ...]
    storage_class: str = "premium-rwo"

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:cluster:GkeCluster", name, None, opts)
        _validate(args)
        self._name = name
        self._args = args
        self._labels = {**args.labels, "neurodock-cluster": args.cluster_name}
        self.pools = tuple(pool_facts(p, real_gpus=True) for p in args.node_pools)

        apis = self._enable_apis()
        service_account, roles = self._create_node_service_account(apis)
        key, grant = self._create_kms_key(apis)
        network, subnet = self._create_network(apis)
        # The temporary default pool runs as the nodes' account, which must exist with its roles first.
        cluster = self._create_control_plane(network, subnet, key, service_account,
                                             depends_on=[*apis, grant, service_account, *roles])
        self._allow_control_plane_calls(network, service_account)
        for pool in args.node_pools:
            self._create_node_pool(cluster, pool, service_account)

        self.node_service_account = service_account.email
        # Taken from the cluster, not built from the project id: whatever binds a Kubernetes
        # ServiceAccount into the pool (weights readers) then waits for the pool to exist.
        self.workload_pool = cluster.workload_identity_config.apply(lambda c: c.workload_pool)
        self.cluster_name = cluster.name
        host = _api_host(cluster) if args.dns_endpoint else cluster.endpoint
        self.endpoint = host.apply(lambda h: f"https://{h}")
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, host, cluster.master_auth.cluster_ca_certificate).apply(
                lambda a: _kubeconfig(a[0], a[1], None if args.dns_endpoint else a[2])
            )
        )
        # The Kubernetes provider's identity of this cluster: its path and its CA, which a new cluster
        # of the same name does not share. Moving between the IP and the DNS endpoint then updates the
        # provider instead of replacing it (and with it every Kubernetes object).
        self.cluster_identifier = pulumi.Output.all(cluster.id, cluster.master_auth.cluster_ca_certificate).apply(
            lambda a: f"gke:{a[0]}:{hashlib.sha256(a[1].encode()).hexdigest()[:16]}")
        self.register_outputs({
            "clusterName": self.cluster_name,
            "endpoint": self.endpoint,
            "kubeconfig": self.kubeconfig,
            "nodeServiceAccount": self.node_service_account,
        })

    def _child(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _enable_apis(self) -> list[pulumi.Resource]:
        """The APIs the cluster needs, enabled before anything uses them. Left enabled on destroy:
        other stacks in the project may use them, and disabling one deletes its resources."""
        args = self._args
        services = {api: gcp.projects.Service(
            f"{self._name}-api-{api.split('.')[0]}",
            project=args.project,
            service=api,
            disable_on_destroy=False,
            opts=self._child(),
        ) for api in REQUIRED_APIS}
        # GKE's service agent exists only once GKE's API is enabled, and must exist before the
        # KMS key can be granted to it: create it explicitly rather than wait for it to appear.
        agent = gcp.projects.ServiceIdentity(
            f"{self._name}-gke-agent",
            project=args.project,
            service="container.googleapis.com",
            opts=self._child(depends_on=[services["container.googleapis.com"]]),
        )
        return [*services.values(), agent]

    def _create_node_service_account(
        self, apis: list[pulumi.Resource]
    ) -> tuple[gcp.serviceaccount.Account, list[gcp.projects.IAMMember]]:
        args = self._args
        account = gcp.serviceaccount.Account(
            f"{self._name}-nodes",
            # At most 30 characters, not ending in '-' (a cut may leave one).
            account_id=f"{args.cluster_name}-nodes"[:30].rstrip("-"),
            display_name=f"GKE nodes of {args.cluster_name}",
            project=args.project,
            opts=self._child(depends_on=apis),
        )
        roles = [gcp.projects.IAMMember(
            f"{self._name}-nodes-{role.split('/')[1]}",
            project=args.project,
            role=role,
            member=account.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=self._child(),
        ) for role in NODE_SERVICE_ACCOUNT_ROLES]
        return account, roles

    def _create_kms_key(self, apis: list[pulumi.Resource]) -> tuple[gcp.kms.CryptoKey, gcp.kms.CryptoKeyIAMMember]:
        args = self._args
        # Key rings and keys cannot be deleted in GCP: both outlive the stack on purpose, and a
        # re-created stack adopts them (``import_``) instead of failing with 409 on their fixed names.
        ring = gcp.kms.KeyRing(
            f"{self._name}-keyring",
            name=key_ring_name(args.cluster_name),
            location=args.region,
            project=args.project,
            opts=self._child(retain_on_delete=True, depends_on=apis, import_=args.adopt.key_ring_id),
        )
        key = gcp.kms.CryptoKey(
            f"{self._name}-secrets",
            name=CRYPTO_KEY_NAME,
            key_ring=ring.id,
            rotation_period=f"{90 * 24 * 3600}s",
            labels=self._labels,
            opts=self._child(retain_on_delete=True, import_=args.adopt.crypto_key_id),
        )
        project = gcp.organizations.get_project_output(
            project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self))
        # GKE's service agent encrypts and decrypts Secrets with the key: the cluster cannot be
        # created before the grant exists (GKE docs, "Encrypt secrets at the application layer").
        grant = gcp.kms.CryptoKeyIAMMember(
            f"{self._name}-secrets-gke",
            crypto_key_id=key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=project.number.apply(
                lambda number: f"serviceAccount:service-{number}@container-engine-robot.iam.gserviceaccount.com"
            ),
            opts=self._child(depends_on=apis),
        )
        return key, grant

    def _create_network(self, apis: list[pulumi.Resource]) -> tuple[gcp.compute.Network, gcp.compute.Subnetwork]:
        args = self._args
        network = gcp.compute.Network(
            f"{self._name}-net",
            name=args.cluster_name,
            project=args.project,
            auto_create_subnetworks=False,
            opts=self._child(depends_on=apis),
        )
        subnet = gcp.compute.Subnetwork(
            f"{self._name}-nodes",
            name=subnet_name(args.cluster_name),
            project=args.project,
            region=args.region,
            network=network.id,
            ip_cidr_range=args.subnet_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=PODS_RANGE, ip_cidr_range=args.pods_cidr),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=SERVICES_RANGE, ip_cidr_range=args.services_cidr),
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

    def _allow_control_plane_calls(self, network: gcp.compute.Network, nodes: gcp.serviceaccount.Account) -> None:
        """GKE's own firewall rules let the control plane reach nodes on 443 and 10250 only; admission
        webhooks and aggregated APIs listening elsewhere (KEDA's metrics server on 6443, webhooks on
        9443) are otherwise cut off, and every object they guard fails to apply."""
        args = self._args
        ports = sorted(set(args.control_plane_ports) - set(GKE_CONTROL_PLANE_TO_NODE_PORTS))
        if not ports:
            return
        gcp.compute.Firewall(
            f"{self._name}-control-plane-webhooks",
            name=f"{args.cluster_name}-control-plane-webhooks",
            project=args.project,
            network=network.id,
            description="GKE control plane to the webhook and aggregated-API ports of pods on the nodes",
            direction="INGRESS",
            source_ranges=[args.master_cidr],
            target_service_accounts=[nodes.email],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(p) for p in ports])],
            opts=self._child(),
        )

    def _create_control_plane(
        self, network: gcp.compute.Network, subnet: gcp.compute.Subnetwork, key: gcp.kms.CryptoKey,
        nodes: gcp.serviceaccount.Account, depends_on: list[pulumi.Resource],
    ) -> gcp.container.Cluster:
        args = self._args
        window = args.maintenance_window
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
                cluster_secondary_range_name=PODS_RANGE, services_secondary_range_name=SERVICES_RANGE,
            ),
            # Dataplane V2 enforces NetworkPolicy.
            datapath_provider=DATAPATH_PROVIDER,
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=not args.public_endpoint,
                master_ipv4_cidr_block=args.master_cidr,
            ),
            # The DNS-based endpoint: every request is authorised by IAM before it reaches the API
            # server, from any network, with no IP exposed or allow-listed.
            control_plane_endpoints_config=gcp.container.ClusterControlPlaneEndpointsConfigArgs(
                dns_endpoint_config=gcp.container.ClusterControlPlaneEndpointsConfigDnsEndpointConfigArgs(
                    allow_external_traffic=args.dns_endpoint,
                ),
            ),
            maintenance_policy=gcp.container.ClusterMaintenancePolicyArgs(
                recurring_window=gcp.container.ClusterMaintenancePolicyRecurringWindowArgs(
                    start_time=window.start_time, end_time=window.end_time, recurrence=window.recurrence),
            ) if window else None,
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                    cidr_block=cidr, display_name=f"allowed-{i}") for i, cidr in enumerate(args.authorized_cidrs)],
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.project}.svc.id.goog",
            ),
            database_encryption=gcp.container.ClusterDatabaseEncryptionArgs(state="ENCRYPTED", key_name=key.id),
            enable_shielded_nodes=True,
            # The default pool is replaced by ours; it must exist for a moment at creation. It runs as the
            # nodes' own account: without one GKE gives it the project's default compute account, and creating
            # the cluster fails where that account is deleted or disabled (terraform-provider-google #4435, open;
            # the cluster's node_config is the only place to set it, #2115, #17511). Its service_account and
            # oauth_scopes are ForceNew (node_config.go at e03b7622) and matter only at creation: a running
            # cluster, whose default pool is long gone, ignores them rather than being replaced.
            remove_default_node_pool=True,
            initial_node_count=1,
            node_config=gcp.container.ClusterNodeConfigArgs(
                service_account=nodes.email,
                oauth_scopes=list(NODE_OAUTH_SCOPES),
                shielded_instance_config=gcp.container.ClusterNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True),
                workload_metadata_config=gcp.container.ClusterNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
            ),
            # One DCGM collector per GPU node: GKE's managed DCGM metrics (on by default for clusters
            # created at 1.32.1-gke.1357000 or later, sent to Managed Prometheus) would run a second DCGM
            # host engine beside NeuroDock's exporter, which feeds the in-cluster Prometheus, its
            # dashboards and alerts. The list replaces GKE's default: without DCGM it is off.
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(enable_components=["SYSTEM_COMPONENTS"]),
            logging_config=gcp.container.ClusterLoggingConfigArgs(
                enable_components=["SYSTEM_COMPONENTS", "APISERVER", "CONTROLLER_MANAGER", "SCHEDULER", "WORKLOADS"],
            ),
            resource_labels={**self._labels, **args.cluster_labels},
            deletion_protection=args.deletion_protection,
            # GKE's flag only stops the cluster's own delete, which `pulumi destroy` reaches last: every
            # Kubernetes object, node pool, NAT and firewall rule would be gone by then. Pulumi's `protect`
            # fails the destroy's preview, before anything is deleted (pulumi pkg/resource/deploy/step.go,
            # DeleteStep.Apply, checked in preview too).
            opts=self._child(ignore_changes=["nodeConfig", "initialNodeCount"], depends_on=depends_on,
                             protect=args.deletion_protection),
        )

    def _create_node_pool(
        self, cluster: gcp.container.Cluster, pool: NodePoolArgs, account: gcp.serviceaccount.Account
    ) -> gcp.container.NodePool:
        args = self._args
        machine = pool.instance_types[0]
        accelerator = gke_accelerator(machine, pool.gpu_type) if pool.gpu_type else None
        zones = pool_zones(machine, accelerator, args.zones)
        accelerators = []
        if pool.gpu_type:
            accelerators.append(gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                # The machine's own type: the A3 Mega's H100s are not the A3 High's (catalog.gke_accelerator).
                type=accelerator,
                count=pool.gpu_count,
                # GKE installs and upgrades the driver itself: no driver DaemonSet to maintain.
                gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                    gpu_driver_version="LATEST",
                ),
                **_sharing(pool),
            ))
        return gcp.container.NodePool(
            pool_resource_name(self._name, pool.name),
            # A prefix, not a fixed name: a change that replaces the pool (GPU type or count, spot, service account:
            # docs/upstream.md; machine type and disk update in place) creates the new pool before deleting the old.
            # The new pool starts as small as the old one did (its initial size is ignored), so its nodes come from
            # the autoscaler as the old pool's pods are evicted: the deletion waits on their PodDisruptionBudgets
            # (``node_drain_configs``) instead of deleting every pod at once.
            name_prefix=f"{pool.name}-",
            project=args.project,
            cluster=cluster.id,
            location=args.region,
            # Only the stack's zones that offer the machine (components/cluster/zones.py).
            node_locations=list(zones),
            # Per zone: a GPU pool starts at or below its minimum, a CPU pool at or above it (zones.py).
            initial_node_count=initial_nodes_per_zone(gpu=pool.role is PoolRole.GPU, min_nodes=pool.min_nodes,
                                                      zone_count=len(zones)),
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=pool.min_nodes,
                total_max_node_count=pool.max_nodes,
                # Take capacity in any zone: GPUs and spot are often short in one of them.
                location_policy="ANY",
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            upgrade_settings=_upgrade_settings(pool),
            # Deleting a pool drains its nodes without regard to PodDisruptionBudgets unless told (terraform-provider-
            # google resource_container_node_pool.go ``node_drain_config``, updated in place); the provider waits up
            # to two hours for the deletion.
            node_drain_configs=[gcp.container.NodePoolNodeDrainConfigArgs(respect_pdb_during_node_pool_deletion=True)],
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=machine,
                disk_size_gb=pool.disk_size_gib,
                disk_type=gke_boot_disk(machine),
                image_type="COS_CONTAINERD",
                service_account=account.email,
                oauth_scopes=list(NODE_OAUTH_SCOPES),
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


def _upgrade_settings(pool: NodePoolArgs) -> gcp.container.NodePoolUpgradeSettingsArgs:
    """Surge upgrades, one node at a time. GPU pools take no surge node: a spare GPU machine is rarely
    available at upgrade time (and counts against quota), so a GPU node is drained before its
    replacement comes; the models' PodDisruptionBudgets keep the serving replicas up."""
    if pool.role is PoolRole.GPU:
        return gcp.container.NodePoolUpgradeSettingsArgs(strategy="SURGE", max_surge=0, max_unavailable=1)
    return gcp.container.NodePoolUpgradeSettingsArgs(strategy="SURGE", max_surge=1, max_unavailable=0)


def _api_host(cluster: gcp.container.Cluster) -> pulumi.Output[str]:
    return cluster.control_plane_endpoints_config.apply(
        lambda c: c.dns_endpoint_config.endpoint if c and c.dns_endpoint_config else None)


def subnet_name(cluster_name: str) -> str:
    """The nodes' subnet; the cluster's network is named after the cluster itself."""
    return f"{cluster_name}-nodes"


def key_ring_name(cluster_name: str) -> str:
    return f"{cluster_name}-secrets"


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
    problems = InputProblems()
    if args.public_endpoint and not args.authorized_cidrs:
        problems.add("authorized_cidrs", "GkeClusterArgs.authorized_cidrs is required when public_endpoint is true")
    for i, pool in enumerate(args.node_pools):
        if len(pool.instance_types) != 1:
            problems.add(("node_pools", i, "instance_types"), f"node pool {pool.name!r} needs exactly one machine type")
        if pool.gpu_type and not GPU_MODELS[pool.gpu_type].gke_accelerator:
            problems.add(("node_pools", i, "gpu_type"), f"node pool {pool.name!r}: GKE has no {pool.gpu_type}")
        elif len(pool.instance_types) == 1 and not pool_zones(
                machine := pool.instance_types[0], gke_accelerator(machine, pool.gpu_type or ""), args.zones):
            problems.add(("node_pools", i, "instance_types"), (
                f"node pool {pool.name!r}: no zone of {', '.join(args.zones)} offers {machine} ({provenance()}); "
                "list a zone that does in zones, or choose another machine type"))
    problems.raise_any()


def _kubeconfig(name: str, host: str, ca_data: str | None) -> str:
    """A kubeconfig that gets tokens from ``gke-gcloud-auth-plugin``: no credential inside, and
    byte-identical across runs so the Kubernetes provider is never replaced. The DNS endpoint serves
    a publicly trusted certificate, so it takes no cluster CA (``ca_data`` None)."""
    cluster = {"server": f"https://{host}"}
    if ca_data is not None:
        cluster["certificate-authority-data"] = ca_data
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
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

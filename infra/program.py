"""``build(config)``: the whole stack, wired from validated configuration.

This module turns pydantic models into component ``Args``; it is the only place that knows both.
It creates the explicit providers (the project disables default providers) and hands them to the
components, whose children inherit them.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster.base import (
    Capacity,
    Cluster,
    GpuSharing,
    NodePoolArgs,
    PoolFacts,
    PoolRole,
    SharingStrategy,
    system_node_selector,
)
from components.cluster.eks import (
    EKS_DISALLOWED_ZONE_IDS,
    EksCluster,
    EksClusterArgs,
    autoscaler_discovery_tags,
    subnet_cidrs,
)
from components.cluster.eks_addons import EksAddons, EksAddonsArgs
from components.cluster.gke import (
    DATAPATH_PROVIDER,
    PODS_RANGE,
    SERVICES_RANGE,
    GkeCluster,
    GkeClusterArgs,
    GkeClusterMaintenanceWindow,
    subnet_name,
)
from components.cluster.kind import KindCluster, KindClusterArgs
from components.cost.budget import budget_tags
from components.gateway.gateway import CONTROL_PLANE_PORTS as GATEWAY_CONTROL_PLANE_PORTS
from components.gpu.dcgm import DCGM_NAMESPACE, DcgmExporter, DcgmExporterArgs, DriverLayout
from components.gpu.device_plugin import DEVICE_PLUGIN_NAMESPACE, NvidiaDevicePlugin, NvidiaDevicePluginArgs
from components.monitoring import alertmanager
from components.monitoring.alerts import (
    ROLLBACK_LABEL,
    Agent,
    AlertRules,
    AlertRulesArgs,
    GpuPool,
    GpuThresholds,
)
from components.monitoring.stack import (
    MONITORING_NAMESPACE,
    Alerting,
    AlertingCanaryRollback,
    MonitoringStack,
    MonitoringStackArgs,
    Platform,
)
from components.serving.architectures import gated
from components.serving.catalog import ModelCatalog
from components.serving.keda import CONTROL_PLANE_PORTS as KEDA_CONTROL_PLANE_PORTS
from components.versions import (
    CLUSTER_AUTOSCALER,
    ENVOY_GATEWAY,
    INFERENCE_EXTENSION_CRDS,
    KUBE_PROMETHEUS_STACK,
    LLM_D_ROUTER,
)
from infra import charts, live, plan
from infra.config import (
    CONFIG_NAMESPACE,
    ConfigError,
    EksCloud,
    GkeCloud,
    KindCloud,
    NodePool,
    Problem,
    StackConfig,
    config_warnings,
    gcp_label_key,
    gcp_labels,
    missing_receiver_credentials,
    parse_config,
)
from infra.config.offerings import minor_version
from infra.cost import node_prices
from infra.gateway import build_gateway, build_smoke_test, stack_drain_seconds
from infra.readiness import budgets
from infra.rollout import model_target
from infra.routing import proxy_grace_seconds
from infra.secrets import StackSecrets
from infra.serving import autoscaled, build_catalog


def load_stack_config() -> StackConfig:
    """Validate the running stack's configuration (raises ``ConfigError``): every ``neurodock:*`` key, and the
    providers' keys, where a credential must not sit in plain text."""
    values = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    return parse_config(values, secret_keys=[k for k in values if pulumi.runtime.is_config_secret(k)])


def _require_program_charts(config: StackConfig) -> None:
    """What the program renders or reads itself must be cached, checked before any resource exists
    (``charts.NotCached``), so a missing chart creates nothing."""
    if config.gateway.enabled:
        # Envoy Gateway's CRDs are applied by the program (the release skips them): read from the cache,
        # whatever the release fetches, so an uncached chart cannot turn the CRD patches off.
        charts.require_all(INFERENCE_EXTENSION_CRDS, ENVOY_GATEWAY, *([LLM_D_ROUTER] if config.models else []))


class InvalidConfig(pulumi.RunError):
    """A ``ConfigError`` found while the program runs (what only the running cloud shows: an EKS version jump, a GKE
    range fixed at creation). A ``RunError``: `pulumi up` shows the message alone, no traceback; ``neurodock plan``
    reports ``error``'s problems as any other configuration error (exit 2)."""

    def __init__(self, error: ConfigError):
        self.error = error
        super().__init__(f"invalid stack configuration:\n{error}")


def build(config: StackConfig, secrets: StackSecrets) -> dict[str, pulumi.Input]:
    """Create every resource of the stack; return the stack outputs."""
    _require_receiver_credentials(config, secrets)
    _require_program_charts(config)
    _warn_gated_models(config, secrets)
    for warning in config_warnings(config):
        pulumi.log.warn(str(warning))
    cluster, cloud_provider = _cluster(config)
    kube = k8s.Provider(
        "k8s",
        kubeconfig=None if cluster.kube_context else cluster.kubeconfig,
        context=cluster.kube_context,
        # Replaced only when the cluster is: endpoint or kubeconfig changes update it in place.
        cluster_identifier=cluster.cluster_identifier,
        # Server-side apply lets controllers (autoscalers) own fields we set once, like replicas.
        enable_server_side_apply=True,
        # Workloads wait for the whole cluster, node groups included, not only its endpoint.
        opts=pulumi.ResourceOptions(depends_on=[cluster]),
    )
    k8s_opts = pulumi.ResourceOptions(providers=[kube])
    addons = _cluster_addons(config, cluster, k8s_opts)
    # Workloads need the add-ons (the storage class their volumes use, the autoscaler that
    # brings up their nodes) before they can become ready.
    k8s_opts = pulumi.ResourceOptions(providers=[kube], depends_on=addons)

    outputs: dict[str, pulumi.Input] = {
        "environment": config.environment,
        "cloud": config.cloud.provider,
        "clusterName": cluster.cluster_name,
        "clusterEndpoint": cluster.endpoint,
        "kubeconfig": cluster.kubeconfig,
        # Where `pulumi up` runs: the policy deploy-reaches-api proves it can reach the endpoint.
        "deploy": {"runsOn": config.deploy.runs_on, "inVpc": config.deploy.in_vpc,
                   "egressCidrs": config.deploy.egress_cidrs, "privateCidrs": config.deploy.private_cidrs},
    }
    if isinstance(cluster, KindCluster) and cluster.gpuless_pools:
        outputs["gpulessPools"] = list(cluster.gpuless_pools)

    # Generated secrets (Grafana's password, the smoke test's API key) live in the stack's state.
    rand = random.Provider("random")
    monitoring = None
    if config.monitoring.enabled:
        monitoring = MonitoringStack(
            "monitoring",
            MonitoringStackArgs(
                chart=charts.source(KUBE_PROMETHEUS_STACK, config.chart_mirror),
                platform=Platform(config.cloud.provider),
                storage_class=cluster.storage_class,
                retention=config.monitoring.retention,
                storage_gib=config.monitoring.storage_gib,
                grafana=config.monitoring.grafana,
                grafana_admin_password=secrets.grafana_admin_password,
                alerting=_alerting(config, secrets),
            ),
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(providers=[kube, rand])),
        )
        outputs["prometheusUrl"] = monitoring.prometheus_url
        if monitoring.grafana_url is not None:
            outputs["grafanaUrl"] = monitoring.grafana_url
            outputs["grafanaAdminPassword"] = monitoring.grafana_admin_password
    crds = monitoring.release if monitoring else None

    agents = _gpu_enablement(config, cluster, crds, k8s_opts)
    catalog = None
    if config.models:
        gateway = None
        if config.gateway.enabled:
            gateway, smoke_key = build_gateway(config, cluster, secrets, rand, crds, k8s_opts)
            outputs["gatewayUrl"] = gateway.url
        # GPU readiness: model servers start once the GPU agents are rolled out, so their GPUs
        # are advertised; their own probes and timeouts come from the readiness budgets.
        catalog_opts = pulumi.ResourceOptions.merge(
            k8s_opts, pulumi.ResourceOptions(depends_on=[c for c, _ in agents]))
        catalog = build_catalog(config, cluster, cloud_provider, secrets,
                                monitoring.prometheus_url if monitoring else None, crds, gateway, catalog_opts)
        outputs["models"] = catalog.urls
        if gateway is not None:
            build_smoke_test(config, cluster, gateway, smoke_key, catalog, k8s_opts)
    if monitoring is not None:
        _alerts(config, monitoring, catalog, [agent for _, agent in agents], cluster.pools, k8s_opts)
    return outputs


def _warn_gated_models(config: StackConfig, secrets: StackSecrets) -> None:
    """A gated model with no Hugging Face token never downloads: its replicas (or its mirror Job) fail on
    the Hub's 401 only once `pulumi up` waits for them."""
    if secrets.hf_token is not None:
        return
    for i, model in enumerate(config.models):
        for version in model.versions():
            if gated(version.source):
                where = f"models[{i}]" + (f".{version.key}" if version.variant else "")
                pulumi.log.warn(f"{where}: {version.source} is gated on Hugging Face and "
                                f"{CONFIG_NAMESPACE}:hfToken is not "
                                f"set, so its download will be refused (401); accept the licence on the model's page "
                                f"and set the token with `pulumi config set --secret {CONFIG_NAMESPACE}:hfToken`")
                break


def _require_receiver_credentials(config: StackConfig, secrets: StackSecrets) -> None:
    """Receivers without their credentials could not deliver a single alert: a preview (or an offline
    plan, where the secret is in the stack file or not at all) warns, and `pulumi up` refuses before
    it creates anything."""
    if secrets.alert_receiver_secrets is not None or not config.monitoring.alerting.credentialed():
        return
    problem = missing_receiver_credentials(config)
    if not plan.previewing():
        raise ConfigError([problem])
    pulumi.log.warn(f"{problem}; `pulumi up` refuses to run without it")


def _alerting(config: StackConfig, secrets: StackSecrets) -> Alerting:
    alerting = config.monitoring.alerting
    if not alerting.receivers:
        pulumi.log.warn("monitoring.alerting has no receivers: every alert goes to Alertmanager's 'null' receiver and "
                        "reaches nobody; add receivers and routes (docs/monitoring.md, \"Alert receivers\")")
    return Alerting(
        receivers=tuple(
            alertmanager.Receiver(
                name=r.name, kind=r.type, send_resolved=r.send_resolved, has_secret=r.needs_secret(),
                # Field names as Alertmanager spells them (``from_`` is ``from``).
                settings={k.rstrip("_"): v for k, v in r.model_dump(exclude={"name", "type", "send_resolved"}).items()},
            ) for r in alerting.receivers),
        routes=tuple(alertmanager.AlertRoute(receiver=r.receiver, severities=tuple(r.severities),
                                             models=tuple(r.models), continue_=r.continue_) for r in alerting.routes),
        default_receiver=alerting.default_receiver,
        repeat_interval=alerting.repeat_interval,
        credentials=secrets.alert_receiver_secrets,
        heartbeat=alertmanager.Heartbeat(name=alerting.heartbeat.name, interval=alerting.heartbeat.interval)
        if alerting.heartbeat else None,
        canary_rollback=AlertingCanaryRollback(
            repository=alerting.canary_rollback.repository, stack=pulumi.get_stack(),
            token_key=alerting.canary_rollback.token_key, label=ROLLBACK_LABEL,
        ) if alerting.canary_rollback else None,
    )


def _gpu_enablement(
    config: StackConfig, cluster: Cluster, crds: pulumi.Resource | None, opts: pulumi.ResourceOptions
) -> list[tuple[pulumi.Resource, Agent]]:
    """The device plugin (not on GKE, which runs its own) and the DCGM exporter, where the stack has
    GPU pools. Returns each agent with what its alert watches."""
    if not any(p.gpu_type for p in cluster.pools):
        return []
    out: list[tuple[pulumi.Resource, Agent]] = []
    gke = isinstance(config.cloud, GkeCloud)
    if not gke:
        plugin = NvidiaDevicePlugin("gpu-device-plugin", NvidiaDevicePluginArgs(pools=cluster.pools), opts=opts)
        out += [(plugin, Agent(title="NVIDIA device plugin", namespace=DEVICE_PLUGIN_NAMESPACE,
                               daemon_set=ds.metadata.name)) for ds in plugin.daemon_sets]
    dcgm = DcgmExporter(
        "gpu-dcgm",
        DcgmExporterArgs(driver_layout=DriverLayout.GKE if gke else DriverLayout.CONTAINER_RUNTIME, crds=crds),
        opts=opts,
    )
    out.append((dcgm, Agent(title="DCGM exporter", namespace=DCGM_NAMESPACE, daemon_set=dcgm.daemon_set_name)))
    return out


def _alerts(config: StackConfig, monitoring: MonitoringStack, catalog: ModelCatalog | None,
            agents: list[Agent], pools: tuple[PoolFacts, ...], opts: pulumi.ResourceOptions) -> AlertRules:
    thresholds = config.monitoring.alerts
    # MIG pools: the exporter cannot read a GPU instance's utilisation (ModelTarget.mig).
    mig_pools = {p.name for p in pools if p.gpu_sharing and p.gpu_sharing.strategy is SharingStrategy.MIG}
    return AlertRules(
        "alerts",
        AlertRulesArgs(
            namespace=MONITORING_NAMESPACE,
            crds=monitoring.release,
            models=tuple(
                model_target(config, model, deployment=catalog.deployments[model.model_name],
                             mig=model.pool in mig_pools, canary=model.canary is not None,
                             start_s=budgets(config, model).total_s)
                for model in (config.models if catalog else [])
            ),
            agents=tuple(agents),
            pools=tuple(
                GpuPool(name=p.name,
                        expected=p.gpu_count * (p.gpu_sharing.devices_per_gpu(p.gpu_type) if p.gpu_sharing else 1))
                for p in pools if p.real_gpus),
            gpu=GpuThresholds(
                memory_usage=thresholds.gpu_memory_usage,
                idle_utilisation_percent=thresholds.gpu_idle_utilisation_percent,
                idle_minutes=thresholds.gpu_idle_minutes,
            ),
            slo_min_requests=thresholds.slo_min_requests,
            # The GPU agents come with the DCGM exporter, whose ready pods must deliver GPU series.
            gpu_exporter_namespace=DCGM_NAMESPACE if agents else None,
            node_prices=node_prices(config) if config.cloud.provider != "kind" else None,
        ),
        opts=opts,
    )


def control_plane_ports(config: StackConfig) -> tuple[int, ...]:
    """Pod ports the API server will call into (webhooks, aggregated APIs) given what the stack
    installs. ``neurodock check`` proves them against the rendered objects (policy
    ``gke-control-plane-reaches-webhooks``)."""
    ports: set[int] = set()
    if any(autoscaled(m, monitoring=config.monitoring.enabled) for m in config.models):
        ports.update(KEDA_CONTROL_PLANE_PORTS)
    if config.models and config.gateway.enabled:
        ports.update(GATEWAY_CONTROL_PLANE_PORTS)
    return tuple(sorted(ports))


def _one_minor_at_a_time(running: str | None, wanted: str) -> None:
    """EKS upgrades the control plane one minor version at a time and never downgrades: refuse
    anything else before an update fails half-way."""
    if running is None or running == wanted:
        return
    (a, b), (c, d) = minor_version(running), minor_version(wanted)
    if (c, d) < (a, b) or (c, d) > (a, b + 1):
        step = f"{a}.{b + 1}"
        raise ConfigError([Problem("neurodock:cloud.kubernetesVersion", (
            f"the cluster runs {running} and EKS upgrades one minor version at a time, never down: set {step}, "
            f"`pulumi up`, then the next" if (c, d) > (a, b) else
            f"the cluster runs {running} and EKS cannot downgrade it to {wanted}; set {running} or later"))])


def _node_groups_caught_up(groups: list[live.NodeGroupFacts] | None, running: str | None, wanted: str) -> None:
    """EKS upgrades the control plane only once every managed node group runs its minor version (EKS User Guide
    clusters/update-cluster.adoc:63). A group left behind (an update that failed or timed out) would fail the bump
    half-way: refused first, with the step that finishes the groups' update."""
    if running is None or running == wanted or not groups:
        return
    behind = sorted((g for g in groups if g.version and g.version != running), key=lambda g: g.name)
    foreign = [f"{g.name} ({g.version})" for g in behind if not g.pool]
    if foreign:  # not the stack's: `pulumi up` cannot update it
        raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.kubernetesVersion", (
            f"the cluster runs {running}, but node groups this stack did not create, {', '.join(foreign)}, do not, and "
            f"EKS moves the control plane to {wanted} only once every group runs {running}: update them first "
            f"(`aws eks update-nodegroup-version`), then `pulumi up`"))])
    if behind:
        raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.kubernetesVersion", (
            f"the cluster runs {running}, but its node group{'s' if len(behind) > 1 else ''} "
            f"{', '.join(f'{g.name} ({g.version})' for g in behind)} "
            f"{'do' if len(behind) > 1 else 'does'} not, and EKS moves the control plane to {wanted} only once every "
            f"group runs {running}: set {running} and `pulumi up` to finish the groups' update, then set {wanted}"))])


def _eks_network_fixed_at_creation(running: live.EksRunningCluster | None, cloud: EksCloud, cluster_name: str,
                                   provider: pulumi.ProviderResource) -> None:
    """A running EKS cluster stays in the VPC it was created in, and takes new subnets only in the zones it was
    created with (EKS User Guide networking/network-reqs.adoc, "same set of AZs", "same VPC"). In the VPC the stack
    creates, each zone's ranges follow its place in ``cloud.zones`` (``subnet_cidrs``): an edit of the list or of
    ``vpcCidr`` replaces subnets (or the whole VPC) under the cluster, each new one created before the old is
    deleted, which EC2 refuses as overlapping, and EKS would refuse the result anyway. Refused before anything
    changes, with the running value and the way out."""
    if running is None:
        return
    recreate = "recreate the cluster: `pulumi destroy`, then `pulumi up` (docs/disaster-recovery.md)"
    if cloud.existing_vpc is not None:
        wanted = cloud.existing_vpc
        if running.vpc_id != wanted.vpc_id:
            raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.existingVpc.vpcId", (
                f"the running cluster {cluster_name} is in {running.vpc_id}, and EKS never moves a cluster to "
                f"another VPC: set {running.vpc_id}, or {recreate}"))])
        if running.subnets is None:
            return
        zones = {s.zone for s in running.subnets.values()}
        subnets = live.aws_subnets(list(wanted.private_subnet_ids), cloud.region, provider,
                                   why="; subnets in zones the running cluster was not created with are not caught "
                                       "before `pulumi up`") or {}
        problems = [Problem(f"{CONFIG_NAMESPACE}:cloud.existingVpc.privateSubnetIds[{i}]", (
            f"{subnet_id} is in {subnets[subnet_id].zone}, and EKS takes new subnets only in the zones the running "
            f"cluster {cluster_name} was created with ({', '.join(sorted(zones))}): use a subnet in one of those, "
            f"or {recreate}")) for i, subnet_id in enumerate(wanted.private_subnet_ids)
            if subnet_id in subnets and subnets[subnet_id].zone not in zones]
        if len(subnets) == len(wanted.private_subnet_ids) and (left := zones - {s.zone for s in subnets.values()}):
            problems.append(Problem(f"{CONFIG_NAMESPACE}:cloud.existingVpc.privateSubnetIds", (
                f"has no subnet in {', '.join(sorted(left))}, and EKS wants one in each zone the running cluster "
                f"{cluster_name} was created with: add one there, or {recreate}")))
        if problems:
            raise ConfigError(problems)
        return
    if running.vpc_cidr and ipaddress.ip_network(running.vpc_cidr) != ipaddress.ip_network(cloud.vpc_cidr):
        raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.vpcCidr", (
            f"the running cluster {cluster_name}'s VPC {running.vpc_id} has the range {running.vpc_cidr}; a VPC's "
            f"range is fixed, so `pulumi up` would build a second VPC, and EKS never moves a cluster to another VPC. "
            f"Set {running.vpc_cidr}, or {recreate}"))])
    if not running.subnets:
        return
    has = {s.zone: s.cidr for s in running.subnets.values()}
    wanted_ranges = {zone: r.private for zone, r in subnet_cidrs(cloud.vpc_cidr, cloud.zones).items()}
    if has != wanted_ranges:
        # The private ranges were handed out in zone order: that order is the list the cluster was created with.
        created = [zone for zone, _ in sorted(has.items(), key=lambda item: ipaddress.ip_network(item[1]))]
        raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.zones", (
            f"the running cluster {cluster_name} was created with the zones {created}, in that order: EKS takes new "
            f"subnets only in those zones, and each zone's subnet ranges follow its place in the list, so another "
            f"list would replace subnets under the cluster (EC2 refuses the new ones as overlapping). Set "
            f"{created}, or {recreate}"))])


def _admins_without_an_entry_of_their_own(config: StackConfig, provider: pulumi.ProviderResource, *,
                                          running: bool) -> None:
    """EKS gives the role that creates a cluster an access entry of its own, with cluster-admin
    (``bootstrapClusterCreatorAdminPermissions``: EKS User Guide, grant-k8s-access.adoc 153), and takes one entry per
    principal (the same page, 202): the stack's entry for that role, in ``adminRoleArns``, would fail with 409 after
    the VPC and the cluster exist. Refused on a first `pulumi up`, when the deploying role is listed. (On a running
    cluster the creator is not known: the access entry data source returns no tags to tell EKS's entry from the
    stack's, terraform-provider-aws ``access_entry_datasource.go``; docs/deploy-eks.md says what to do.)"""
    cloud = config.cloud
    assert isinstance(cloud, EksCloud)
    if running or not cloud.admin_role_arns:
        return
    role = live.aws_deploying_role(provider)
    if role in cloud.admin_role_arns:
        raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.adminRoleArns[{cloud.admin_role_arns.index(role)}]", (
            f"{role} is the role this `pulumi up` runs as, which creates the cluster: EKS gives it an access entry "
            "with cluster-admin of its own, and refuses a second one for it (409). Remove it from adminRoleArns; "
            "it keeps cluster-admin through EKS's entry"))])


def _vpc_resolves_the_endpoint(dns: live.VpcDns | None, vpc_id: str) -> None:
    """Nodes reach the API server's private endpoint through a Route 53 zone EKS associates with the VPC, which resolves
    only with the VPC's DNS hostnames and resolution on and ``AmazonProvidedDNS`` among its DHCP options' servers (EKS
    User Guide, cluster-endpoint.adoc 85; network-reqs.adoc 46: "Otherwise, nodes can't register to your cluster")."""
    if dns is None:
        return
    off = [(name, flag) for name, flag, on in (("enableDnsHostnames", "enable-dns-hostnames", dns.hostnames),
                                               ("enableDnsSupport", "enable-dns-support", dns.support)) if not on]
    if dns.name_servers is not None and "AmazonProvidedDNS" not in dns.name_servers:
        # A warning: DNS servers that forward the VPC's zones to its resolver (the VPC range's base + 2) resolve it too.
        pulumi.log.warn(f"cloud.existingVpc.vpcId: {vpc_id}'s DHCP options name the DNS servers "
                        f"{', '.join(dns.name_servers) or 'none'}, without AmazonProvidedDNS, which EKS requires for "
                        "its private endpoint; unless they forward the VPC's private zones to its resolver, nodes "
                        "cannot resolve the cluster's endpoint: add AmazonProvidedDNS to them")
    if off:
        raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.existingVpc.vpcId", (
            f"{vpc_id} has {' and '.join(name for name, _ in off)} off, so its nodes cannot resolve the cluster's "
            "endpoint and never register; turn it on, one attribute per call: " + "; ".join(
                f"`aws ec2 modify-vpc-attribute --vpc-id {vpc_id} --{flag}`" for _, flag in off)))])


def _zones_eks_takes(zone_ids: dict[str, str] | None, cloud: EksCloud) -> None:
    """EKS refuses a cluster subnet in some zones, known by ID (``EKS_DISALLOWED_ZONE_IDS``); the stack's zones are
    names, which map to IDs per account: refused against this account's map before the VPC is created, or
    CreateCluster fails with the VPC, its NAT gateways and addresses already made and billed."""
    disallowed = EKS_DISALLOWED_ZONE_IDS.get(cloud.region, frozenset())
    if zone_ids is None or not disallowed:
        return
    problems = []
    for i, zone in enumerate(cloud.zones):
        zone_id = zone_ids.get(zone)
        if zone_id in disallowed:
            others = sorted(name for name, other in zone_ids.items()
                            if other not in disallowed and name not in cloud.zones)
            problems.append(Problem(f"{CONFIG_NAMESPACE}:cloud.zones[{i}]", (
                f"{zone} is the zone {zone_id} in this account, where EKS does not put a cluster's subnets (EKS User "
                f"Guide, subnet requirements); use another zone of {cloud.region}"
                + (f": {', '.join(others)}" if others else ""))))
    if problems:
        raise ConfigError(problems)


def _cluster(config: StackConfig) -> tuple[Cluster, pulumi.ProviderResource | None]:
    """The cluster, and the cloud provider later cloud resources (weights readers) use."""
    cloud = config.cloud
    pools = tuple(_pool_args(p) for p in config.node_pools)
    tags = {"neurodock:environment": config.environment, **config.tags}
    if isinstance(cloud, KindCloud):
        local = command.Provider("command")
        cluster = KindCluster(
            "cluster",
            KindClusterArgs(
                cluster_name=config.cluster_name,
                kubernetes_version=cloud.kubernetes_version,
                node_pools=pools,
                existing_context=cloud.existing_context,
            ),
            opts=pulumi.ResourceOptions(providers=[local]),
        )
        return cluster, None
    if isinstance(cloud, EksCloud):
        provider = aws.Provider(
            "aws",
            region=cloud.region,
            # Tag everything taggable, including resources of components we do not write.
            default_tags=aws.ProviderDefaultTagsArgs(tags=tags),
        )
        running = live.eks_cluster(config.cluster_name, cloud.region, provider)
        _one_minor_at_a_time(running.version if running else None, cloud.kubernetes_version)
        groups = live.eks_node_groups(config.cluster_name, cloud.region, provider)
        _node_groups_caught_up(groups, running.version if running else None, cloud.kubernetes_version)
        _eks_network_fixed_at_creation(running, cloud, config.cluster_name, provider)
        _zones_eks_takes(live.aws_zone_ids(cloud.region, provider), cloud)
        _admins_without_an_entry_of_their_own(config, provider, running=running is not None)
        if cloud.existing_vpc is not None:
            _vpc_resolves_the_endpoint(live.aws_vpc_dns(cloud.existing_vpc.vpc_id, cloud.region, provider),
                                       cloud.existing_vpc.vpc_id)
        return EksCluster(
            "cluster",
            EksClusterArgs(
                cluster_name=config.cluster_name,
                region=cloud.region,
                zones=tuple(cloud.zones),
                kubernetes_version=cloud.kubernetes_version,
                vpc_cidr=cloud.vpc_cidr,
                existing_private_subnet_ids=tuple(cloud.existing_vpc.private_subnet_ids) if cloud.existing_vpc else (),
                public_endpoint=cloud.endpoint.public,
                public_access_cidrs=tuple(cloud.endpoint.allowed_cidrs),
                admin_role_arns=tuple(cloud.admin_role_arns),
                preview_role_arns=tuple(cloud.preview_role_arns),
                api_source_cidrs=tuple(config.deploy.private_cidrs) if config.deploy.in_vpc else (),
                node_pools=pools,
                support_type=cloud.support_type,
                live_sizes=live.group_sizes(groups),
                addon_versions=live.eks_addon_versions(cloud.kubernetes_version, cloud.region, provider),
                existing_log_group=live.eks_log_group(config.cluster_name, cloud.region, provider),
                instance_type_zones=live.eks_instance_type_zones(
                    [t for p in pools for t in p.instance_types], cloud.region, provider),
                tags=tags,
                cluster_tags=_budget_tags(config, labels=False),
            ),
            opts=pulumi.ResourceOptions(providers=[provider]),
        ), provider
    assert isinstance(cloud, GkeCloud)
    labels = gcp_labels(tags)
    for key, value in config.tags.items():
        if (key, value) != (gcp_label_key(key), value.lower()):
            pulumi.log.warn(f"tags.{key}: Google Cloud labels are lowercase, without ':'; labelled "
                            f"{gcp_label_key(key)}={value.lower()}")
    provider = gcp.Provider("gcp", project=cloud.project, region=cloud.region, default_labels=labels)
    running = live.gke_cluster(cloud.project, cloud.region, config.cluster_name, provider)
    if not isinstance(running, live.Unread):  # else the checks against the running cluster are skipped, with a warning
        if running is None:
            _gke_stays_in_its_region(live.gcp_subnet_regions(cloud.project, config.cluster_name,
                                                             subnet_name(config.cluster_name), provider),
                                     cloud, config.cluster_name)
        _gke_fixed_at_creation(running, cloud)
        _gke_version_in_channel(running, cloud, provider)
    return GkeCluster(
        "cluster",
        GkeClusterArgs(
            cluster_name=config.cluster_name,
            project=cloud.project,
            region=cloud.region,
            zones=tuple(cloud.zones),
            kubernetes_version=cloud.kubernetes_version,
            release_channel=cloud.release_channel,
            subnet_cidr=cloud.subnet_cidr,
            pods_cidr=cloud.pods_cidr,
            services_cidr=cloud.services_cidr,
            master_cidr=cloud.master_cidr,
            dns_endpoint=cloud.endpoint.dns,
            public_endpoint=cloud.endpoint.public,
            authorized_cidrs=tuple(cloud.endpoint.allowed_cidrs),
            node_pools=pools,
            control_plane_ports=control_plane_ports(config),
            deletion_protection=cloud.deletion_protection,
            maintenance_window=GkeClusterMaintenanceWindow(start_time=cloud.maintenance_window.start_time,
                                                 end_time=cloud.maintenance_window.end_time,
                                                 recurrence=cloud.maintenance_window.recurrence),
            adopt=live.gke_retained_keys(cloud.project, cloud.region, config.cluster_name, provider),
            labels=labels,
            cluster_labels=_budget_tags(config, labels=True),
        ),
        opts=pulumi.ResourceOptions(providers=[provider]),
    ), provider


def _budget_tags(config: StackConfig, *, labels: bool) -> dict[str, str]:
    """The stack's budget on its cluster resource, where the policy pack's ``stack-within-budget`` reads it."""
    budget = config.budget
    return budget_tags(budget.monthly_usd, budget.scale, labels=labels) if budget else {}


def _gke_fixed_at_creation(running: live.GkeRunningCluster | None, cloud: GkeCloud) -> None:
    """GKE sets some of a cluster's settings only when it creates it (ForceNew in terraform-provider-google:
    docs/upstream.md, "GKE placement and creation"). Changing one would make Pulumi replace the cluster, and it
    creates the replacement before deleting the old one: the new cluster's fixed name is taken, so `pulumi up` fails
    half-way. Refused against the running cluster before anything changes, each with its key and the way out.
    (Not ``delete_before_replace``: that would delete production and everything on it for a range edit, and
    ``deletionProtection`` stops the delete anyway.)"""
    if running is None:
        return
    name = running.name
    replaced = ("which GKE cannot change in place: `pulumi up` would replace the cluster, and the replacement, created "
                "first under the same name, would fail")
    recreate = ("fail serving over to the DR stack or plan an outage, set cloud.deletionProtection to false and "
                "`pulumi up`, then `pulumi destroy` and `pulumi up` (docs/disaster-recovery.md)")
    # A pod or service range lives in the subnet, under a name the cluster keeps: the provider changes a secondary
    # range by deleting it and adding it again (magic-modules #16858), under a cluster that allocates from it.
    under = "which the cluster allocates from for its life: the edit would delete and re-add the subnet's range"
    problems: list[Problem] = []
    for key, wanted, has, why in (
        ("masterCidr", cloud.master_cidr, running.master_cidr, f"its control plane's range, {replaced}"),
        ("podsCidr", cloud.pods_cidr, running.pods_cidr, f"its pods' range, {under} {PODS_RANGE!r} under it"),
        ("servicesCidr", cloud.services_cidr, running.services_cidr,
         f"its services' range, {under} {SERVICES_RANGE!r} under it"),
    ):
        if has and ipaddress.ip_network(has, strict=False) != ipaddress.ip_network(wanted, strict=False):
            problems.append(Problem(f"{CONFIG_NAMESPACE}:cloud.{key}", (
                f"the running cluster {name} was created with {has} as {why}. Set it back to {has}; to move the "
                f"cluster to {wanted}, recreate it: {recreate}")))
    # The node subnet has a fixed name too. Google Cloud widens its primary range in place; any other edit replaces
    # it (terraform-provider-google resource_compute_subnetwork.go at e03b7622: ForceNewIfChange("ip_cidr_range",
    # IsShrinkageIpCidr), an expansion being a range holding the old one's first and last address).
    if running.subnet_cidr:
        has = ipaddress.ip_network(running.subnet_cidr, strict=False)
        wanted = ipaddress.ip_network(cloud.subnet_cidr, strict=False)
        if has != wanted and not (has.version == wanted.version and has.subnet_of(wanted)):
            problems.append(Problem(f"{CONFIG_NAMESPACE}:cloud.subnetCidr", (
                f"the running cluster {name}'s node subnet {subnet_name(name)} has the range {has}, and Google Cloud "
                f"only widens a subnet's range in place: {wanted} does not contain {has}, so `pulumi up` would "
                f"replace the subnet under the running cluster, and the replacement, created first under the same "
                f"name, would fail. Set {has}, or a wider range that contains it (e.g. {has.supernet()}); to move "
                f"the cluster to {wanted}, recreate it: {recreate}")))
    built = {"datapath": (DATAPATH_PROVIDER, running.datapath_provider),
             "network": (name, running.network), "subnetwork": (subnet_name(name), running.subnetwork),
             "pod range name": (PODS_RANGE, running.pods_range_name),
             "service range name": (SERVICES_RANGE, running.services_range_name)}
    for what, (wanted, has) in built.items():
        if has and has != wanted:
            problems.append(Problem(f"{CONFIG_NAMESPACE}:cloud", (
                f"the running cluster {name} has {what} {has} where the stack builds {wanted}, {replaced}; it was not "
                f"created by this stack as it is now: recreate it ({recreate})")))
    if problems:
        raise ConfigError(problems)


def _gke_stays_in_its_region(regions: list[str] | None, cloud: GkeCloud, cluster_name: str) -> None:
    """The stack's network is global and named after the cluster; its node subnet, named after the cluster too, is
    regional. A node subnet in another region means the stack runs there: a cluster never moves region, and a
    `pulumi up` in the new one would replace the subnet under its fixed name (created first, in the same network)
    and the protected cluster with it. Refused, with the way to serve from another region."""
    moved_from = [r for r in regions or [] if r != cloud.region]
    if not moved_from:
        return
    raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.region", (
        f"the stack's cluster {cluster_name} runs in {', '.join(moved_from)} (its node subnet "
        f"{subnet_name(cluster_name)} is there), and GKE never moves a cluster to another region: set "
        f"{moved_from[0]}; to serve from {cloud.region}, bring up the DR stack there (docs/disaster-recovery.md), or "
        f"recreate this one: set cloud.deletionProtection to false and `pulumi up`, then `pulumi destroy` and "
        f"`pulumi up`"))])


def _gke_version_in_channel(running: live.GkeRunningCluster | None, cloud: GkeCloud,
                            provider: pulumi.ProviderResource) -> None:
    """A cluster enrolled in a release channel takes only versions that channel offers (GKE, "About release channels":
    a new minor comes to Rapid first, then Regular, then Stable), and the provider sends ``kubernetesVersion`` at
    create and on each change (terraform-provider-google ``resource_container_cluster.go``, ``min_master_version``).
    Checked when the cluster is created or moved to a newer minor; a running cluster GKE already upgraded past the
    setting is left alone (the setting is a floor)."""
    wanted = cloud.kubernetes_version
    if wanted is None:
        return
    has = running.master_version if running is not None else None
    if has and minor_version(wanted) <= minor_version(has):
        return
    channels = live.gke_channels_offering(wanted, cloud.project, cloud.region, provider)
    if channels is None or cloud.release_channel in channels:
        return
    offered = (f"the channels that offer it: {', '.join(sorted(channels))}" if channels
               else "no channel offers it there")
    raise ConfigError([Problem(f"{CONFIG_NAMESPACE}:cloud.kubernetesVersion", (
        f"GKE's {cloud.release_channel} channel does not offer {wanted} in {cloud.region} ({offered}); set "
        f"cloud.releaseChannel to a channel that does, or a version the {cloud.release_channel} channel offers, or "
        f"remove kubernetesVersion for the channel's default"))])


def _cluster_addons(config: StackConfig, cluster: Cluster, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    if not isinstance(cluster, EksCluster):
        # GKE runs its own autoscaler and storage classes; kind ships local-path storage.
        return []
    return [EksAddons(
        "cluster-addons",
        EksAddonsArgs(
            autoscaler_chart=charts.source(CLUSTER_AUTOSCALER, config.chart_mirror),
            cluster_name=config.cluster_name,
            discovery_tags=tuple(autoscaler_discovery_tags(config.cluster_name)),
            region=config.cloud.region,
            kubernetes_version=config.cloud.kubernetes_version,
            autoscaler_role_arn=cluster.autoscaler_role_arn,
            system_node_selector=system_node_selector(cluster),
            # A scale-down gives the gateway proxies their whole grace period (as infra/gateway.py drains them).
            max_graceful_termination_s=proxy_grace_seconds(stack_drain_seconds(config)),
        ),
        opts=opts,
    )]


def _pool_args(pool: NodePool) -> NodePoolArgs:
    return NodePoolArgs(
        name=pool.name,
        role=PoolRole(pool.role),
        instance_types=tuple(pool.instance_types),
        min_nodes=pool.min_nodes,
        max_nodes=pool.max_nodes,
        capacity=Capacity(pool.capacity),
        disk_size_gib=pool.disk_size_gib,
        gpu_type=pool.gpu.type if pool.gpu else None,
        gpu_count=pool.gpu.count if pool.gpu else 0,
        gpu_sharing=GpuSharing(
            strategy=SharingStrategy(pool.gpu.sharing.strategy),
            max_shared_clients=pool.gpu.sharing.max_shared_clients,
            partition_size=pool.gpu.sharing.partition_size,
        ) if pool.gpu and pool.gpu.sharing else None,
        extra_labels=dict(pool.labels),
    )

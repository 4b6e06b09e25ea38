"""Mock providers whose outputs look like the real ones, and a monitor that records registrations.

Every generated value is derived from a hash of the resource's type and name, so a plan is
byte-for-byte reproducible and two plans of the same program can be diffed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER

AWS_ACCOUNT_ID = "123456789012"  # AWS's documented example account
SECRET = "[secret]"
UNKNOWN = "[unknown]"

# Signatures the engine's wire format uses for special values (pulumi/sdk rpc.py).
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"

# Kubernetes resource types that are not objects sent to the API server.
_K8S_NON_OBJECTS = ("kubernetes:helm.sh/", "kubernetes:yaml", "kubernetes:kustomize")


def digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def gcp_project_number(project: str) -> str:
    """The mock's project number of a project id: 12 digits, stable per project."""
    return str(int(digest(project, length=10), 16) % 10**12).rjust(12, "1")


def is_k8s_object(type_: str) -> bool:
    return type_.startswith("kubernetes:") and not type_.startswith(_K8S_NON_OBJECTS)


def k8s_checked(type_: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What the Kubernetes provider's Check makes of an object before sending it: a generated
    ``metadata.name`` (logical name + 8 characters) when none is given, with the annotation saying
    so, and the ``app.kubernetes.io/managed-by: pulumi`` label."""
    head = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    obj = _copy({**head, **obj})
    metadata = obj.setdefault("metadata", {})
    if not metadata.get("name"):
        metadata["name"] = f"{name}-{digest(type_, name, length=8)}"
        metadata.setdefault("annotations", {})["pulumi.com/autonamed"] = "true"
    metadata.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "pulumi"
    return obj


def wire_value(value: struct_pb2.Value) -> Any:
    """A protobuf ``Value`` as plain Python (what ``json_format.MessageToDict`` gives, faster)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: wire_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [wire_value(v) for v in value.list_value.values]
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)


def _copy(value: Any) -> Any:
    """A deep copy of plain JSON data (several times faster than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def wire_to_json(value: Any, *, redact: bool = True) -> Any:
    """Turn a value in the engine's wire format into plain JSON: secrets become ``[secret]`` (or
    their value, with ``redact=False``), unknowns ``[unknown]``, resource references their URN."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            plain = wire_to_json(value.get("value"), redact=False)
            return _redact(plain) if redact else plain
        if sig == _RESOURCE_SIG:
            return value.get("urn")
        if sig == _OUTPUT_SIG:
            if "value" not in value:
                return UNKNOWN
            plain = wire_to_json(value["value"], redact=redact)
            return _redact(plain) if value.get("secret") and redact else plain
        return {k: wire_to_json(v, redact=redact) for k, v in value.items()}
    if isinstance(value, list):
        return [wire_to_json(v, redact=redact) for v in value]
    if value == UNKNOWN_MARKER:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def computed_unknown(inputs: Any, state: Any) -> Any:
    """``state`` as a provider's preview of a create shows it: what the program gave is known, and everything
    the provider computes (an id, an endpoint, a nested attribute) is unknown, as Terraform's plan shows
    "known after apply" for the bridged AWS and Google Cloud providers."""
    if isinstance(state, dict) and isinstance(inputs, dict):
        return {k: computed_unknown(inputs[k], v) if k in inputs else UNKNOWN_MARKER for k, v in state.items()}
    return inputs


def _redact(value: Any) -> Any:
    """Hide every leaf of a secret value but keep its shape, so a redacted object stays valid
    against its schema (a Secret's ``stringData`` keeps its keys)."""
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return SECRET


@dataclass
class Registration:
    """One resource as the program registered it."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    provider: str | None
    inputs: dict[str, Any]
    options: dict[str, Any]
    id: str | None = None
    manifest: dict[str, Any] | None = None
    """For Kubernetes objects: the object the provider would send."""
    aliases: list[str] = field(default_factory=list)
    """URNs the resource had before (its own ``aliases`` and those it inherits from its parents'): the
    engine moves state from one of them instead of creating the resource anew."""
    wire: dict[str, Any] = field(default_factory=dict, repr=False)
    """The inputs as the SDK sent them to the engine: secrets wrapped with their values, unknowns as
    the unknown marker, resource references as references (``infra.crossguard`` marshals them on)."""
    state: dict[str, Any] | None = field(default=None, repr=False)
    """The outputs the mock provider answered with (secrets revealed; an empty map where a first preview
    knows none)."""
    dependencies: list[str] = field(default_factory=list, repr=False)
    """Every resource the inputs or ``depends_on`` name, as the engine records them."""
    property_dependencies: dict[str, list[str]] = field(default_factory=dict, repr=False)
    additional_secret_outputs: list[str] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"urn": self.urn, "type": self.type, "name": self.name, "parent": self.parent,
                "custom": self.custom, "provider": self.provider, "id": self.id, "inputs": self.inputs,
                "options": self.options, **({"aliases": self.aliases} if self.aliases else {})}


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, recording each registration with its options, in order."""

    registrations: list[Registration]

    def __init__(self, mocks: PlanMocks):
        super().__init__(mocks)
        self.registrations = []
        self._aliases: dict[str, list[str]] = {}  # each registered URN's former URNs, for its children's
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine leaves the root stack out of its children's URNs; the SDK's mock does not.
        if parent and parent.split("::")[2].split("$")[-1] == "pulumi:pulumi:Stack":
            parent = ""
        # The engine qualifies a type by its parent's whole type chain (the SDK's mock keeps only the
        # parent's own type), so moving a component under another changes its children's URNs too.
        if parent:
            type_ = parent.split("::")[2] + "$" + type_
        return super().make_urn("", type_, name)

    def _alias_urns(self, request, urn: str) -> list[str]:
        """The URNs ``request``'s aliases name, and its own type and name under each former URN of its
        parent, as the engine derives them."""
        out: set[str] = set()
        for alias in request.aliases:
            if alias.urn:
                out.add(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            out.add(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        with self._lock:
            former_parents = self._aliases.get(request.parent, [])
        out.update(self.make_urn(p, request.type, request.name) for p in former_parents)
        out.discard(urn)
        return sorted(out)

    def RegisterResource(self, request):
        """Record the registration and answer it from ``PlanMocks``, as the SDK's mock monitor does,
        without its round trip through the SDK's own (async) property (de)serialisation: our mocks
        read and return plain JSON, which converts to and from the wire's ``Struct`` directly. That
        round trip was over half of a plan's time per resource."""
        urn = self.make_urn(request.parent, request.type, request.name)
        wire = {k: wire_value(v) for k, v in request.object.fields.items()} if request.HasField("object") else {}
        timeouts = None
        if request.HasField("customTimeouts"):
            t = request.customTimeouts
            timeouts = {k: v for k, v in (("create", t.create), ("update", t.update), ("delete", t.delete)) if v}
        registration = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            parent=request.parent or None,
            custom=bool(request.custom),
            provider=request.provider.rsplit("::", 1)[0] if request.provider else None,
            inputs=wire_to_json(wire),
            options={
                "protect": request.protect if request.HasField("protect") else False,
                "retainOnDelete": request.retainOnDelete if request.HasField("retainOnDelete") else False,
                "dependsOn": sorted(set(request.dependencies)),
                "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                "ignoreChanges": list(request.ignoreChanges),
                "replaceOnChanges": list(request.replaceOnChanges),
                "customTimeouts": timeouts,
                "import": request.importId or None,
            },
        )
        registration.aliases = self._alias_urns(request, urn)
        registration.wire = wire
        registration.dependencies = sorted(set(request.dependencies))
        registration.property_dependencies = {k: sorted(set(v.urns)) for k, v in request.propertyDependencies.items()}
        registration.additional_secret_outputs = list(request.additionalSecretOutputs)
        if request.custom and is_k8s_object(request.type) and self.mocks.checks(request.provider):
            registration.manifest = k8s_checked(request.type, request.name, registration.inputs)
        elif request.custom and is_k8s_object(request.type):
            # The provider's configuration is unknown (a first preview): the engine hands the program's
            # inputs back unchecked, without a generated name.
            registration.manifest = registration.inputs
        response = resource_pb2.RegisterResourceResponse(urn=urn)
        if request.type != "pulumi:pulumi:Stack":
            args = MockResourceArgs(typ=request.type, name=request.name, inputs=wire_to_json(wire, redact=False),
                                    provider=request.provider, resource_id=request.importId,
                                    custom=request.custom or False)
            resource_id, state = self.mocks.new_resource(args, urn=urn)
            response.id = resource_id or ""
            response.object.update(state)
            registration.state = state
            self.resources[urn] = MockMonitor.ResourceRegistration(urn, resource_id, state)
        registration.id = response.id or None
        with self._lock:
            self.registrations.append(registration)
            self._aliases[urn] = registration.aliases
        return response


LIVE: dict[str, Any] = {}
"""What the cloud already holds, for the lookups of ``infra.live``: empty (a first `pulumi up`) unless a
test says otherwise. Keys: ``eksNodeGroups`` ({cluster: {group name: {"tags", "desiredSize", and "version" if not
the cluster's}}}),
``eksClusters`` ({cluster: {"version", "vpcId", "subnetIds"}}: a running cluster;
``awsSubnets`` ({subnet id: {"availabilityZone", "cidrBlock", "vpcId"}}) and ``awsVpcs`` hold its network),
``eksError`` (a failure message for the node-group lookup),
``gcpKeyRings`` ({"projects/P/locations/L": [ring ids]}), ``gcpCryptoKeys`` ({ring id: [key ids]}),
``awsLogGroups`` ({name: {"retentionInDays", "tags"}}), ``eksAddonVersionError`` (a failure message for the add-on
version lookup), ``eksAddonVersions`` ({(add-on, minor): version}, replacing ``EKS_ADDON_DEFAULTS``' entries),
``ec2Offerings`` ({region: {instance type: [zones that offer it]}}, replacing the default: every type in zones a-d),
``ec2OfferingsError`` (a failure message for that lookup),
``gkeClusters`` ({"projects/P/locations/L/clusters/N": the running cluster as ``gcp.container.get_cluster`` answers,
camelCase: ``privateClusterConfigs``, ``ipAllocationPolicies``, ``network``, ``subnetwork``, ``datapathProvider``}),
``gcpSubnets`` ({"projects/P/regions/R/subnetworks/N": {"ipCidrRange"}}), ``gcpKeyRingsError`` (a failure message for
the key ring lookup), ``awsZoneIds`` ({region: {zone name: zone ID}}, replacing ``default_zone_ids``), ``awsZonesError``
(a failure message for that lookup), ``awsCaller`` (the caller's ARN, default an IAM user), ``awsVpcs`` ({vpc id:
fields of ``aws.ec2.get_vpc``, camelCase}), ``awsDhcpOptions`` ({options id: domain name servers}),
``gkeChannelVersions`` ({channel: [minor versions it offers]}, replacing ``_gke_channel_minors``),
``gcpNetworks`` ({"projects/P/global/networks/N": ["projects/P/regions/R/subnetworks/S", ...]})."""

_ZONE_ID_DIRECTIONS = {"east": "e", "west": "w", "north": "n", "south": "s", "central": "c", "northeast": "ne",
                       "southeast": "se", "northwest": "nw", "southwest": "sw"}


def _gke_channel_minors() -> dict[str, list[str]]:
    """The minor versions each release channel offers in this mock account: Rapid and Regular every minor of the GKE
    data in standard support (its note: "1.36 is offered by the Rapid and Regular channels"), Stable all but the
    newest (a minor reaches Stable last: GKE, "About release channels"), Extended the older ones too."""
    from datetime import date

    from infra.config.offerings import minor_version, offering, utc_today

    versions = sorted(offering("gke_versions")["versions"].items(), key=lambda item: minor_version(item[0]))
    minors = [v for v, d in versions
              if d["endOfStandardSupport"] is None or date.fromisoformat(d["endOfStandardSupport"]) > utc_today()]
    return {"RAPID": minors, "REGULAR": minors, "STABLE": minors[:-1], "EXTENDED": [v for v, _ in versions]}


def default_zone_ids(region: str) -> dict[str, str]:
    """Zones a to d of ``region``, with IDs as AWS forms them (``use1-az1``: the region's short form, then the zone's
    number). Which name is which ID differs per account; this mock account keeps the IDs EKS refuses
    (``EKS_DISALLOWED_ZONE_IDS``) off zones a to d, so stacks in those zones plan as shipped."""
    from components.cluster.eks import EKS_DISALLOWED_ZONE_IDS

    geo, direction, number = [*region.split("-"), "", ""][:3]
    prefix = f"{geo}{_ZONE_ID_DIRECTIONS.get(direction, direction[:1])}{number}"
    refused = EKS_DISALLOWED_ZONE_IDS.get(region, frozenset())
    ids = [zone_id for n in range(1, 9) if (zone_id := f"{prefix}-az{n}") not in refused]
    return dict(zip((f"{region}{letter}" for letter in "abcd"), ids, strict=False))


EKS_ADDON_DEFAULTS: dict[tuple[str, str], str] = {
    # AWS's add-on pages list the LATEST version per Kubernetes minor, not the DEFAULT one (only
    # DescribeAddonVersions' compatibilities[].defaultVersion says which that is), so these documented
    # latest versions stand in for the defaults (research/eks_addons.json, read 2026-12-06:
    # docs.amazonaws.cn/zh_cn/eks/latest/userguide/managing-kube-proxy.md, managing-coredns.md;
    # docs.amazonaws.cn/eks/latest/userguide/pod-networking.html).
    ("kube-proxy", "1.33"): "v1.33.10-eksbuild.2",
    ("kube-proxy", "1.34"): "v1.34.6-eksbuild.2",
    ("kube-proxy", "1.35"): "v1.35.3-eksbuild.2",
    ("coredns", "1.33"): "v1.13.2-eksbuild.4",
    ("coredns", "1.34"): "v1.13.2-eksbuild.4",
    ("coredns", "1.35"): "v1.13.2-eksbuild.4",
    ("vpc-cni", "1.33"): "v1.20.4-eksbuild.1",
    ("vpc-cni", "1.34"): "v1.20.4-eksbuild.1",
    # MOCK VALUES: no document gives these; shaped like EKS's versions, marked "mock" in the build.
    ("vpc-cni", "1.35"): "v1.20.5-mock.1",
    ("aws-ebs-csi-driver", "1.33"): "v1.64.0-mock.1",
    ("aws-ebs-csi-driver", "1.34"): "v1.64.0-mock.2",
    ("aws-ebs-csi-driver", "1.35"): "v1.64.0-mock.3",
}
"""EKS's default version of each add-on per Kubernetes minor, as the mock's ``aws.eks.get_addon_version`` answers."""


class PlanMocks(pulumi.runtime.Mocks):
    """Provider outputs shaped like real ones.

    With ``first_preview``, what the engine answers on the first `pulumi preview` of a new stack: nothing
    exists, so a resource's id and every output its provider computes are unknown (only its inputs are
    known), and a provider whose configuration holds an unknown (a kubeconfig made from a cluster not yet
    created) is not configured at all: the engine hands its resources' inputs back unchecked and answers
    their creation with no outputs (pulumi ``pkg/resource/plugin/provider_plugin.go``, ``Check`` and
    ``Create``: "If the configuration for this provider was not fully known ... hand back an empty property
    map").
    """

    def __init__(self, *, first_preview: bool = False) -> None:
        self.first_preview = first_preview
        self._providers: dict[str, dict[str, Any]] = {}
        """Each provider's inputs (plain JSON, unknowns as ``[unknown]``), by URN."""

    def _provider_inputs(self, reference: str | None) -> dict[str, Any]:
        """The inputs of the provider a reference (``URN::ID``) names; none for the default provider."""
        return self._providers.get((reference or "").rsplit("::", 1)[0], {})

    def checks(self, provider_reference: str | None) -> bool:
        """Whether the provider of this reference (``URN::ID``) is configured, so it checks its resources'
        inputs: always, but on a first preview where its configuration holds an unknown."""
        if not self.first_preview:
            return True
        inputs = self._provider_inputs(provider_reference)
        return UNKNOWN not in json.dumps(inputs)

    # -- resources ---------------------------------------------------------------------------

    def new_resource(self, args: MockResourceArgs, urn: str | None = None) -> tuple[str | None, dict]:
        """``args.inputs`` is plain JSON, secrets revealed (``RecordingMonitor`` converts it once)."""
        inputs = args.inputs
        typ, name = args.typ, args.name
        if typ.startswith("pulumi:providers:"):
            self._providers[urn or name] = inputs
            if self.first_preview:
                return "", inputs
            return _uuid(typ, name), inputs
        if self.first_preview:
            if typ.startswith("kubernetes:"):
                # Created on a preview: the checked inputs where the provider is configured, else nothing.
                return "", (k8s_checked(typ, name, inputs) if is_k8s_object(typ) and self.checks(args.provider)
                            else {})
            _, state = self._created(args)
            return "", computed_unknown(inputs, state)
        return self._created(args)

    def _created(self, args: MockResourceArgs) -> tuple[str, dict]:
        """The id and outputs of the resource once its provider has created it."""
        inputs, typ, name = args.inputs, args.typ, args.name
        if is_k8s_object(typ):
            obj = k8s_checked(typ, name, inputs)
            obj["metadata"]["uid"] = _uuid(typ, name)
            obj["metadata"].setdefault("namespace", obj["metadata"].get("namespace"))
            return obj["metadata"]["name"], obj
        handler = _HANDLERS.get(typ) or _HANDLERS.get(typ.split(":")[0])
        provider = self._provider_inputs(args.provider)
        if handler is None:
            return f"{name}-{digest(typ, name, length=8)}", inputs
        return handler(typ, name, inputs, provider)

    # -- invokes -----------------------------------------------------------------------------

    def call(self, args: MockCallArgs) -> dict | tuple[dict, list[tuple[str, str]]]:
        a = wire_to_json(args.args, redact=False)
        # The region of the AWS provider the invoke runs under (its reference is ``URN::ID``).
        aws_region = a.get("region") or self._provider_inputs(args.provider).get("region", "us-east-1")
        if args.token == "gcp:organizations/getProject:getProject":
            project = a.get("projectId", "project")
            return {"projectId": project, "number": gcp_project_number(project), "name": project,
                    "id": f"projects/{project}"}
        if args.token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            project = a.get("project", "project")
            email = f"service-{gcp_project_number(project)}@gs-project-accounts.iam.gserviceaccount.com"
            return {"project": project, "emailAddress": email, "member": f"serviceAccount:{email}",
                    "id": email}
        if args.token == "aws:eks/getCluster:getCluster":
            running = LIVE.get("eksClusters", {}).get(a.get("name"))
            if running is None:
                return {}, [("name", f"ResourceNotFoundException: No cluster found for name: {a.get('name')}.")]
            return {"name": a["name"], "version": running["version"], "id": a["name"],
                    "arn": f"arn:aws:eks:{aws_region}:{AWS_ACCOUNT_ID}:cluster/{a['name']}", "status": "ACTIVE",
                    "vpcConfig": {"vpcId": running["vpcId"], "subnetIds": list(running["subnetIds"]),
                                  "endpointPrivateAccess": True, "endpointPublicAccess": False,
                                  "securityGroupIds": [], "publicAccessCidrs": []}}
        if args.token == "aws:ec2/getSubnet:getSubnet":
            subnet = LIVE.get("awsSubnets", {}).get(a.get("id"))
            if subnet is None:  # terraform-provider-aws ec2 subnet data source: tfresource.SingularDataSourceFindError
                return {}, [("id", "no matching EC2 Subnet found")]
            return {"id": a["id"], "arn": f"arn:aws:ec2:{aws_region}:{AWS_ACCOUNT_ID}:subnet/{a['id']}",
                    "ownerId": AWS_ACCOUNT_ID, "state": "available", "region": aws_region, **subnet}
        if args.token == "aws:eks/getNodeGroups:getNodeGroups":
            if LIVE.get("eksError"):
                return {}, [("clusterName", LIVE["eksError"])]
            groups = LIVE.get("eksNodeGroups", {}).get(a.get("clusterName"))
            if groups is None:  # as the provider answers: a failed invoke the program may catch
                return {}, [("clusterName", f"ResourceNotFoundException: No cluster found for name: "
                                            f"{a.get('clusterName')}.")]
            return {"clusterName": a["clusterName"], "names": sorted(groups), "id": a["clusterName"]}
        if args.token == "aws:eks/getNodeGroup:getNodeGroup":
            group = LIVE["eksNodeGroups"][a["clusterName"]][a["nodeGroupName"]]
            size = group["desiredSize"]
            # A group runs its cluster's version unless the test says otherwise.
            version = group.get("version") or LIVE.get("eksClusters", {}).get(a["clusterName"], {}).get("version")
            return {"clusterName": a["clusterName"], "nodeGroupName": a["nodeGroupName"], "tags": group["tags"],
                    "version": version, "status": "ACTIVE",
                    "scalingConfigs": [{"desiredSize": size, "minSize": group.get("minSize", 0),
                                        "maxSize": group.get("maxSize", size)}],
                    "id": f"{a['clusterName']}:{a['nodeGroupName']}"}
        if args.token == "gcp:container/getCluster:getCluster":
            path = f"projects/{a.get('project')}/locations/{a.get('location')}/clusters/{a.get('name')}"
            running = LIVE.get("gkeClusters", {}).get(path)
            if running is None:  # the data source's own error (data_source_google_container_cluster.go)
                return {}, [("name", f"{path} not found")]
            return {"name": a.get("name"), "location": a.get("location"), "project": a.get("project"), "id": path,
                    **running}
        if args.token == "gcp:compute/getNetwork:getNetwork":
            path = f"projects/{a.get('project')}/global/networks/{a.get('name')}"
            subnets = LIVE.get("gcpNetworks", {}).get(path)
            if subnets is None:  # HandleDataSourceNotFoundError: "<url> not found" on a 404
                return {}, [("name", f"{path} not found")]
            return {"id": path, "name": a.get("name"), "project": a.get("project"),
                    "selfLink": f"https://www.googleapis.com/compute/v1/{path}",
                    "subnetworksSelfLinks": [f"https://www.googleapis.com/compute/v1/{s}" for s in subnets]}
        if args.token == "gcp:container/getEngineVersions:getEngineVersions":
            # Each channel's newest version with the prefix (the data source keeps the first of a channel's valid
            # versions, newest first, that has it), each minor at one patch.
            from infra.config.offerings import minor_version

            prefix = a.get("versionPrefix", "")
            channels = LIVE.get("gkeChannelVersions") or _gke_channel_minors()
            patches = {c: sorted((f"{m}.2-gke.1200" for m in minors), key=minor_version)
                       for c, minors in channels.items()}
            latest = {c: matching[-1] for c, offered in patches.items()
                      if (matching := [v for v in offered if v.startswith(prefix)])}
            return {"id": "2026-12-07 00:00:00 +0000 UTC", "location": a.get("location"), "project": a.get("project"),
                    "releaseChannelLatestVersion": latest,
                    "releaseChannelDefaultVersion": {c: offered[-1] for c, offered in patches.items() if offered},
                    "validMasterVersions": sorted(set(latest.values()), key=minor_version)}
        if args.token == "gcp:compute/getSubnetwork:getSubnetwork":
            path = f"projects/{a.get('project')}/regions/{a.get('region')}/subnetworks/{a.get('name')}"
            subnet = LIVE.get("gcpSubnets", {}).get(path)
            if subnet is None:  # the data source's own error for a missing subnet
                return {}, [("name", f"{path} not found")]
            return {"name": a.get("name"), "region": a.get("region"), "project": a.get("project"), "id": path,
                    "selfLink": f"https://www.googleapis.com/compute/v1/{path}", **subnet}
        if args.token == "gcp:kms/getKeyRings:getKeyRings":
            if LIVE.get("gcpKeyRingsError"):
                return {}, [("location", LIVE["gcpKeyRingsError"])]
            parent = f"projects/{a.get('project')}/locations/{a.get('location')}"
            rings = LIVE.get("gcpKeyRings", {}).get(parent, [])
            return {"project": a.get("project"), "location": a.get("location"), "id": parent,
                    "keyRings": [{"id": r, "name": r.rsplit("/", 1)[-1]} for r in rings]}
        if args.token == "gcp:kms/getCryptoKeys:getCryptoKeys":
            keys = LIVE.get("gcpCryptoKeys", {}).get(a.get("keyRing"), [])
            return {"keyRing": a.get("keyRing"), "id": a.get("keyRing"),
                    "keys": [{"id": k, "name": k.rsplit("/", 1)[-1]} for k in keys]}
        if args.token == "aws:eks/getAddonVersion:getAddonVersion":
            name, minor = a.get("addonName"), a.get("kubernetesVersion")
            version = {**EKS_ADDON_DEFAULTS, **LIVE.get("eksAddonVersions", {})}.get((name, minor))
            if LIVE.get("eksAddonVersionError") or version is None:  # as the provider reports a lookup that finds none
                return {}, [("addonName", LIVE.get("eksAddonVersionError")
                             or f"reading EKS Add-On version info ({name}, {minor}): empty result")]
            return {"addonName": name, "kubernetesVersion": minor, "mostRecent": bool(a.get("mostRecent")),
                    "version": version, "id": name, "region": aws_region}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # The region's zones, by name and ID, as DescribeAvailabilityZones answers for this account
            # (``awsZoneIds`` says otherwise); a failure message in ``awsZonesError``.
            if LIVE.get("awsZonesError"):
                return {}, [("region", LIVE["awsZonesError"])]
            zones = LIVE.get("awsZoneIds", {}).get(aws_region) or default_zone_ids(aws_region)
            return {"id": aws_region, "region": aws_region, "names": list(zones), "zoneIds": list(zones.values()),
                    "groupNames": [aws_region] * len(zones)}
        if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            # One row per (instance type, zone), as DescribeInstanceTypeOfferings answers; every type in every zone
            # (a to d) unless the test says otherwise (``ec2Offerings``). Empty lists, not an error, when nothing
            # matches (terraform-provider-aws ec2_instance_type_offerings_data_source.go).
            if LIVE.get("ec2OfferingsError"):
                return {}, [("filters", LIVE["ec2OfferingsError"])]
            wanted = [v for f in a.get("filters") or [] if f.get("name") == "instance-type"
                      for v in f.get("values", [])]
            offered = LIVE.get("ec2Offerings", {}).get(aws_region)
            rows = [(t, z) for t in wanted for z in (offered.get(t, []) if offered is not None
                                                     else [f"{aws_region}{x}" for x in "abcd"])]
            return {"id": aws_region, "region": aws_region, "locationType": a.get("locationType"),
                    "filters": a.get("filters") or [], "instanceTypes": [t for t, _ in rows],
                    "locations": [z for _, z in rows], "locationTypes": [a.get("locationType") or "region"] * len(rows)}
        if args.token == "aws:cloudwatch/getLogGroup:getLogGroup":
            name = a.get("name")
            group = LIVE.get("awsLogGroups", {}).get(name)
            if group is None:
                return {}, [("name", f"reading CloudWatch Logs Log Group ({name}): empty result")]
            return {"name": name, "id": name, "arn": f"arn:aws:logs:{aws_region}:{AWS_ACCOUNT_ID}:log-group:{name}",
                    "retentionInDays": group.get("retentionInDays", 0), "tags": group.get("tags", {}),
                    "logGroupClass": "STANDARD", "kmsKeyId": "", "creationTime": 1764979200000, "region": aws_region}
        if args.token == "aws:index/getRegion:getRegion":
            return {"region": aws_region, "name": aws_region, "id": aws_region,
                    "endpoint": f"ec2.{aws_region}.amazonaws.com", "description": aws_region}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            arn = LIVE.get("awsCaller") or f"arn:aws:iam::{AWS_ACCOUNT_ID}:user/neurodock"
            return {"accountId": AWS_ACCOUNT_ID, "arn": arn, "userId": "AIDA" + digest(arn).upper(),
                    "id": AWS_ACCOUNT_ID}
        if args.token == "aws:ec2/getVpc:getVpc":
            # An existing VPC as DescribeVpcs answers (DNS on, the default DHCP options unless ``awsVpcs`` says).
            vpc = {"enableDnsHostnames": True, "enableDnsSupport": True, "dhcpOptionsId": "default",
                   **LIVE.get("awsVpcs", {}).get(a.get("id"), {})}
            return {"id": a.get("id"), "arn": f"arn:aws:ec2:{aws_region}:{AWS_ACCOUNT_ID}:vpc/{a.get('id')}",
                    "cidrBlock": "10.1.0.0/16", "state": "available", "default": False, "ownerId": AWS_ACCOUNT_ID,
                    "instanceTenancy": "default", "mainRouteTableId": f"rtb-{digest(str(a.get('id')), length=17)}",
                    "region": aws_region, **vpc}
        if args.token == "aws:ec2/getVpcDhcpOptions:getVpcDhcpOptions":
            options = LIVE.get("awsDhcpOptions", {}).get(a.get("dhcpOptionsId"), ["AmazonProvidedDNS"])
            return {"id": a.get("dhcpOptionsId"), "dhcpOptionsId": a.get("dhcpOptionsId"), "domainNameServers": options,
                    "ownerId": AWS_ACCOUNT_ID, "region": aws_region}
        if args.token == "aws:iam/getSessionContext:getSessionContext":
            # arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION is a session of arn:aws:iam::ACCOUNT:role/NAME.
            arn = a.get("arn", "")
            account, _, rest = arn.removeprefix("arn:aws:sts::").partition(":assumed-role/")
            name, _, session = rest.rpartition("/")
            issuer = f"arn:aws:iam::{account}:role/{name}" if rest else arn
            return {"arn": arn, "id": arn, "issuerArn": issuer, "issuerId": "AROA" + digest(issuer).upper()[:17],
                    "issuerName": name, "sessionName": session}
        return {}


# --------------------------------------------------------------------------------------------
# Realistic outputs, per resource type
# --------------------------------------------------------------------------------------------


def _uuid(*parts: str) -> str:
    h = digest(*parts, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _fake_pem(*parts: str) -> str:
    body = base64.b64encode(hashlib.sha512("/".join(parts).encode()).digest() * 12).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()


def _aws(prefix: str, arn_kind: str | None = None):
    def handler(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
        rid = f"{prefix}-{digest(typ, name, length=17)}"
        state = dict(inputs)
        if arn_kind:
            region = provider.get("region", "us-east-1")
            state["arn"] = f"arn:aws:ec2:{region}:{AWS_ACCOUNT_ID}:{arn_kind}/{rid}"
        return rid, state
    return handler


def _aws_named(service: str, kind: str, *, regional: bool):
    def handler(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
        physical = inputs.get("name") or f"{name}-{digest(typ, name, length=7)}"
        region = provider.get("region", "us-east-1") if regional else ""
        state = {**inputs, "name": physical, "arn": f"arn:aws:{service}:{region}:{AWS_ACCOUNT_ID}:{kind}/{physical}"}
        if typ == "aws:iam/role:Role":
            state["uniqueId"] = "AROA" + digest(typ, name).upper()
        return physical, state
    return handler


def _kms_key(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    key_id = _uuid(typ, name)
    if typ == "aws:kms/replicaKey:ReplicaKey":
        # A multi-Region key and its replicas share one id.
        key_id = str(inputs.get("primaryKeyArn", "")).rsplit("/", 1)[-1]
    elif inputs.get("multiRegion"):
        key_id = "mrk-" + digest(typ, name, length=32)
    region = inputs.get("region") or provider.get("region", "us-east-1")
    return key_id, {**inputs, "keyId": key_id, "arn": f"arn:aws:kms:{region}:{AWS_ACCOUNT_ID}:key/{key_id}"}


def _s3_bucket(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    # Auto-named like the provider: the prefix and 26 characters of time-ordered id.
    bucket = inputs.get("bucket") or f"{inputs.get('bucketPrefix', name + '-')}{digest(typ, name, length=26)}"
    region = inputs.get("region") or provider.get("region", "us-east-1")
    return bucket, {**inputs, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "region": region,
                    "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com"}


def _gcs_bucket(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    bucket = inputs.get("name") or f"{name}-{digest(typ, name, length=7)}"
    project = inputs.get("project") or provider.get("project", "project")
    return bucket, {**inputs, "name": bucket, "project": project, "url": f"gs://{bucket}",
                    "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}"}


def _eks_cluster(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    region = provider.get("region", "us-east-1")
    physical = inputs.get("name") or name
    endpoint_id = digest(typ, name, length=32).upper()
    return physical, {
        **inputs,
        "name": physical,
        "arn": f"arn:aws:eks:{region}:{AWS_ACCOUNT_ID}:cluster/{physical}",
        "endpoint": f"https://{endpoint_id}.gr7.{region}.eks.amazonaws.com",
        "certificateAuthority": {"data": _fake_pem(typ, name)},
        "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{endpoint_id}"}]}],
        "platformVersion": "eks.12",
        "status": "ACTIVE",
        "clusterId": _uuid(typ, name, "id"),
        # The security group EKS creates for the control plane's network interfaces (eks-cluster-sg-<name>-<id>).
        "vpcConfig": {**(inputs.get("vpcConfig") or {}),
                      "clusterSecurityGroupId": f"sg-{digest(typ, name, 'cluster-sg', length=17)}"},
    }


def _oidc_provider(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    url = str(inputs.get("url", "")).removeprefix("https://")
    arn = f"arn:aws:iam::{AWS_ACCOUNT_ID}:oidc-provider/{url}"
    return arn, {**inputs, "arn": arn}


def _launch_template(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    rid, state = _aws("lt", "launch-template")(typ, name, inputs, provider)
    return rid, {**state, "latestVersion": 1, "defaultVersion": 1,
                 "name": inputs.get("name") or f"{name}-{digest(typ, name, length=7)}"}


def _node_group(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    region = provider.get("region", "us-east-1")
    cluster = inputs.get("clusterName", "cluster")
    prefix = inputs.get("nodeGroupNamePrefix", name + "-")
    group = inputs.get("nodeGroupName") or f"{prefix}{digest(typ, name, length=26)}"
    asg = f"eks-{group}-{_uuid(typ, name)}"
    return f"{cluster}:{group}", {
        **inputs,
        "nodeGroupName": group,
        "arn": f"arn:aws:eks:{region}:{AWS_ACCOUNT_ID}:nodegroup/{cluster}/{group}/{_uuid(typ, name)}",
        "status": "ACTIVE",
        "resources": [{"autoscalingGroups": [{"name": asg}]}],
    }


def _eip(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    rid, state = _aws("eipalloc", None)(typ, name, inputs, provider)
    h = bytes.fromhex(digest(typ, name, length=6))
    return rid, {**state, "allocationId": rid, "publicIp": f"52.{h[0]}.{h[1]}.{h[2] or 1}"}


def _gcp_path(kind: str, *, scope: str):
    """GCP ids are resource paths: projects/P/{global|regions/R|locations/L}/KIND/NAME."""
    def handler(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
        project = inputs.get("project") or provider.get("project", "project")
        region = inputs.get("region") or inputs.get("location") or provider.get("region", "us-central1")
        physical = inputs.get("name") or f"{name}-{digest(typ, name, length=7)}"
        where = {"global": "global", "region": f"regions/{region}", "location": f"locations/{region}"}[scope]
        path = f"projects/{project}/{where}/{kind}/{physical}"
        return path, {**inputs, "name": physical, "project": project,
                      "selfLink": f"https://www.googleapis.com/compute/v1/{path}"}
    return handler


def _gke_cluster(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    rid, state = _gcp_path("clusters", scope="location")(typ, name, inputs, provider)
    h = bytes.fromhex(digest(typ, name, length=8))
    private = (inputs.get("privateClusterConfig") or {}).get("enablePrivateEndpoint")
    endpoint = f"172.16.0.{2 + h[3] % 10}" if private else f"34.{h[0]}.{h[1]}.{h[2] or 1}"
    project_number = gcp_project_number(state["project"])
    dns = (f"gke-{digest(typ, name, length=32)}-{project_number}."
           f"{inputs.get('location', 'us-central1')}.gke.goog")
    endpoints = inputs.get("controlPlaneEndpointsConfig") or {}
    return rid, {
        **state,
        "endpoint": endpoint,
        "controlPlaneEndpointsConfig": {**endpoints, "dnsEndpointConfig": {
            **(endpoints.get("dnsEndpointConfig") or {}), "endpoint": dns}},
        "masterAuth": {"clusterCaCertificate": _fake_pem(typ, name)},
        "masterVersion": f"{inputs.get('minMasterVersion', '1.33')}.5-gke.1308000",
        "selfLink": f"https://container.googleapis.com/v1/{rid}",
        "labelFingerprint": digest(typ, name, length=8),
    }


def _gke_node_pool(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    cluster = inputs.get("cluster", "cluster")
    # name_prefix: GKE-side the provider appends a timestamp and a counter.
    physical = inputs.get("name") or (f"{inputs['namePrefix']}{digest(typ, name, length=16)}"
                                      if inputs.get("namePrefix") else f"{name}-{digest(typ, name, length=7)}")
    return f"{cluster}/nodePools/{physical}", {**inputs, "name": physical,
                                               "instanceGroupUrls": [f"{cluster}/instanceGroups/{physical}"]}


def _project_service(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    project = inputs.get("project") or provider.get("project", "project")
    return f"{project}/{inputs.get('service')}", {**inputs, "project": project}


def _service_identity(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    project = inputs.get("project") or provider.get("project", "project")
    robot = {"container.googleapis.com": "container-engine-robot"}.get(inputs.get("service", ""), "gcp-sa-unknown")
    email = f"service-{gcp_project_number(project)}@{robot}.iam.gserviceaccount.com"
    return f"projects/{project}/services/{inputs.get('service')}", {**inputs, "project": project, "email": email,
                                                                    "member": f"serviceAccount:{email}"}


def _service_account(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    project = inputs.get("project") or provider.get("project", "project")
    email = f"{inputs.get('accountId', name)}@{project}.iam.gserviceaccount.com"
    return f"projects/{project}/serviceAccounts/{email}", {
        **inputs, "email": email, "member": f"serviceAccount:{email}",
        "uniqueId": str(int(digest(typ, name, length=16), 16))[:21],
    }


def _kms_ring(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    project = inputs.get("project") or provider.get("project", "project")
    rid = f"projects/{project}/locations/{inputs.get('location', 'global')}/keyRings/{inputs.get('name', name)}"
    return rid, {**inputs, "project": project}


def _kms_key_gcp(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    return f"{inputs.get('keyRing', 'keyring')}/cryptoKeys/{inputs.get('name', name)}", dict(inputs)


def _command(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    create = str(inputs.get("create", ""))
    stdout = ""
    if "kind get kubeconfig" in create:
        stdout = _kind_kubeconfig(typ, name, create)
    # pulumi-command names a Command by its resource name and 8 random hex digits (v1.2.1
    # local/commandController.go Create: resource.NewUniqueHex(name, 8, 0)).
    return f"{name}{digest(typ, name, length=8)}", {**inputs, "stdout": stdout, "stderr": ""}


def _kind_kubeconfig(typ: str, name: str, create: str) -> str:
    cluster = create.split("kind get kubeconfig --name ", 1)[1].split()[0].strip("'\"")
    port = 32768 + int(digest(typ, name, length=4), 16) % 28000
    context = f"kind-{cluster}"
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": f"https://127.0.0.1:{port}",
                                                    "certificate-authority-data": _fake_pem(typ, name, "ca")}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "users": [{"name": context, "user": {"client-certificate-data": _fake_pem(typ, name, "crt"),
                                             "client-key-data": _fake_pem(typ, name, "key")}}],
    }, indent=2)


def _helm_release(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    release = inputs.get("name") or f"{name}-{digest(typ, name, length=8)}"
    namespace = inputs.get("namespace") or "default"
    return f"{namespace}/{release}", {**inputs, "name": release, "status": {
        "name": release, "namespace": namespace, "chart": inputs.get("chart"), "version": inputs.get("version"),
        "appVersion": inputs.get("version"), "revision": 1, "status": "deployed",
    }}


def _random_password(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    length = int(inputs.get("length", 32))
    return "none", {**inputs, "result": (digest(typ, name, length=64) * 4)[:length]}


def _simple_id(typ: str, name: str, inputs: dict, provider: dict) -> tuple[str, dict]:
    return f"{name}-{digest(typ, name, length=8)}", dict(inputs)


_HANDLERS = {
    "aws:ec2/vpc:Vpc": _aws("vpc", "vpc"),
    "aws:ec2/subnet:Subnet": _aws("subnet", "subnet"),
    "aws:ec2/internetGateway:InternetGateway": _aws("igw", "internet-gateway"),
    "aws:ec2/natGateway:NatGateway": _aws("nat", None),
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/routeTable:RouteTable": _aws("rtb", "route-table"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _aws("rtbassoc", None),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _aws("sg", "security-group"),
    "aws:ec2/securityGroup:SecurityGroup": _aws("sg", "security-group"),
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:iam/role:Role": _aws_named("iam", "role", regional=False),
    "aws:iam/policy:Policy": _aws_named("iam", "policy", regional=False),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/replicaKey:ReplicaKey": _kms_key,
    "aws:kms/alias:Alias": _aws_named("kms", "alias", regional=True),
    "aws:s3/bucket:Bucket": _s3_bucket,
    "gcp:storage/bucket:Bucket": _gcs_bucket,
    "aws:cloudwatch/logGroup:LogGroup": _aws_named("logs", "log-group", regional=True),
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "gcp:compute/network:Network": _gcp_path("networks", scope="global"),
    "gcp:compute/subnetwork:Subnetwork": _gcp_path("subnetworks", scope="region"),
    "gcp:compute/router:Router": _gcp_path("routers", scope="region"),
    "gcp:compute/firewall:Firewall": _gcp_path("firewalls", scope="global"),
    "gcp:projects/service:Service": _project_service,
    "gcp:projects/serviceIdentity:ServiceIdentity": _service_identity,
    "gcp:container/cluster:Cluster": _gke_cluster,
    "gcp:container/nodePool:NodePool": _gke_node_pool,
    "gcp:serviceaccount/account:Account": _service_account,
    "gcp:kms/keyRing:KeyRing": _kms_ring,
    "gcp:kms/cryptoKey:CryptoKey": _kms_key_gcp,
    "command:local:Command": _command,
    "kubernetes:helm.sh/v3:Release": _helm_release,
    "random:index/randomPassword:RandomPassword": _random_password,
    "aws": _simple_id,
    "gcp": _simple_id,
}

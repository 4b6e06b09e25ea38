"""Where NeuroDock's Pulumi state and model weights outlive every cluster: versioned, encrypted,
non-public buckets and the KMS key of the stacks' secrets provider, all protected and retained.

Two buckets per cloud:
- ``state``: the self-managed Pulumi backend (``pulumi login s3://BUCKET`` / ``gs://BUCKET``);
- ``weights``: model weights that models read as ``s3://`` or ``gs://`` sources, so that recreating
  a stack re-caches weights from storage the team controls, not from a hub.

Surviving a region: on GCP the buckets take a multi-region or dual-region location; on AWS each
bucket replicates to a bucket in ``replica_region``, encrypted with a key of that region.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from components.errors import InputProblems
from components.retained import Retained

BUCKET_ROLES = ("state", "weights")
GCP_APIS = ("cloudkms.googleapis.com", "storage.googleapis.com")
"""The Google APIs the GCP backend uses, enabled before anything uses them: Cloud KMS ("Enable the Cloud KMS API on
your key project", Cloud KMS docs, "Create a key ring") and Cloud Storage (on by default in projects created with the
console or gcloud, Service Usage docs, "Services enabled by default", which say nothing of projects created through
the API). The backend creates no service account, so it needs no IAM API."""


class Cloud(StrEnum):
    AWS = "aws"
    GCP = "gcp"


@dataclass(frozen=True, kw_only=True)
class StateBackendArgs:
    cloud: Cloud
    """Which cloud's storage and KMS to use."""
    location: str
    """AWS region, or GCS location (``EU``, ``US``, a dual-region such as ``EUR4``, or a region)."""
    project: str | None = None
    """GCP project id (GCP only; required there)."""
    replica_region: str | None = None
    """AWS only: a second region each bucket replicates to (default none: no cross-region copy)."""
    noncurrent_version_days: int = 90
    """Days an overwritten or deleted object version is kept before it expires (default 90)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Tags (AWS) or labels (GCP) on everything (default none)."""
    adopt: Retained = field(default_factory=Retained)
    """GCP: the key ring and key an earlier bootstrap of this project left (Cloud KMS never deletes either), adopted
    instead of created, which would fail on their fixed names (``infra.live.gcp_retained_kms``; default: none)."""


# Everything here holds data or the key to it: refuse to delete it, and keep it if it leaves the
# program. Removing protection is a deliberate, reviewed `pulumi state unprotect`.
KEEP = pulumi.ResourceOptions(protect=True, retain_on_delete=True)


class StateBackend(pulumi.ComponentResource):
    """Buckets for state and weights plus the secrets-provider key, hardened and kept forever."""

    backend_url: pulumi.Output[str]
    """``s3://BUCKET`` or ``gs://BUCKET``: what ``pulumi login`` takes."""
    secrets_provider: pulumi.Output[str]
    """``awskms://…`` or ``gcpkms://…``: what ``pulumi stack init --secrets-provider`` takes."""
    weights_url: pulumi.Output[str]
    """Prefix for model sources: ``s3://BUCKET`` or ``gs://BUCKET``."""

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = InputProblems()
        if args.cloud is Cloud.GCP and not args.project:
            problems.add("project", "StateBackendArgs.project: a GCP backend needs the project id")
        if args.cloud is Cloud.GCP and args.replica_region:
            problems.add("replica_region", "StateBackendArgs.replica_region: AWS only; on GCP choose a multi- or "
                         "dual-region location instead")
        if args.replica_region and args.replica_region == args.location:
            problems.add("replica_region", "StateBackendArgs.replica_region: must differ from location")
        if args.noncurrent_version_days < 1:
            problems.add("noncurrent_version_days", "StateBackendArgs.noncurrent_version_days: must be at least 1")
        problems.raise_any()
        super().__init__("neurodock:state:StateBackend", name, None, opts)
        self._name = name
        self._args = args
        self._versioning: dict[str, aws.s3.BucketVersioning] = {}
        if args.cloud is Cloud.AWS:
            self._create_aws()
        else:
            self._create_gcp()
        self.register_outputs({"backendUrl": self.backend_url, "secretsProvider": self.secrets_provider,
                               "weightsUrl": self.weights_url})

    def _keep(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), KEEP)

    def _child(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    # -- AWS --------------------------------------------------------------------------------

    def _create_aws(self) -> None:
        a = self._args
        key = self._aws_key("key", a.location, "Pulumi state, secrets and model weights")
        aws.kms.Alias(f"{self._name}-secrets", name=f"alias/{self._name}-pulumi-secrets", target_key_id=key.key_id,
                      region=a.location, opts=self._child())
        buckets = {purpose: self._aws_bucket(purpose, a.location, key) for purpose in BUCKET_ROLES}
        if a.replica_region:
            # The same multi-Region key, usable in the replica region when the primary one is down:
            # stack secrets stay decryptable (awskms://KEY?region=REPLICA) and replicas stay readable.
            replica_key = aws.kms.ReplicaKey(
                f"{self._name}-replica-key",
                primary_key_arn=key.arn,
                description="NeuroDock: Pulumi state, secrets and model weights (replica)",
                deletion_window_in_days=30,
                region=a.replica_region,
                tags=self._args.labels,
                opts=self._keep(),
            )
            replicas = {p: self._aws_bucket(f"{p}-replica", a.replica_region, replica_key) for p in BUCKET_ROLES}
            role = self._aws_replication_role(key, replica_key, list(buckets.values()), list(replicas.values()))
            for purpose in BUCKET_ROLES:
                aws.s3.BucketReplicationConfig(
                    f"{self._name}-{purpose}-replication",
                    bucket=buckets[purpose].id, role=role.arn, region=a.location,
                    rules=[{
                        "id": "everything", "status": "Enabled", "filter": {},
                        "delete_marker_replication": {"status": "Enabled"},
                        "source_selection_criteria": {"sse_kms_encrypted_objects": {"status": "Enabled"}},
                        "destination": {"bucket": replicas[purpose].arn,
                                        "encryption_configuration": {"replica_kms_key_id": replica_key.arn}},
                    }],
                    # Replication needs versioning on both sides first.
                    opts=self._child(depends_on=[*self._versioning.values()]),
                )
        self.backend_url = pulumi.Output.concat("s3://", buckets["state"].bucket)
        self.weights_url = pulumi.Output.concat("s3://", buckets["weights"].bucket)
        self.secrets_provider = pulumi.Output.concat("awskms://", key.key_id, "?region=", a.location)

    def _aws_key(self, role: str, region: str | None, purpose: str) -> aws.kms.Key:
        return aws.kms.Key(
            f"{self._name}-{role}",
            description=f"NeuroDock: {purpose}",
            enable_key_rotation=True,
            multi_region=True,
            # The longest wait: a scheduled deletion can be cancelled for 30 days.
            deletion_window_in_days=30,
            region=region,
            tags=self._args.labels,
            opts=self._keep(),
        )

    def _aws_bucket(self, purpose: str, region: str | None, key: aws.kms.Key | aws.kms.ReplicaKey) -> aws.s3.Bucket:
        n = f"{self._name}-{purpose}"
        bucket = aws.s3.Bucket(n, bucket_prefix=f"neurodock-{purpose}-", force_destroy=False, region=region,
                               tags={**self._args.labels, "neurodock:purpose": purpose}, opts=self._keep())
        aws.s3.BucketOwnershipControls(n, bucket=bucket.id, region=region,
                                       rule={"object_ownership": "BucketOwnerEnforced"}, opts=self._child())
        aws.s3.BucketPublicAccessBlock(n, bucket=bucket.id, region=region, block_public_acls=True,
                                       block_public_policy=True, ignore_public_acls=True,
                                       restrict_public_buckets=True, opts=self._child())
        self._versioning[purpose] = aws.s3.BucketVersioning(
            n, bucket=bucket.id, region=region, versioning_configuration={"status": "Enabled"}, opts=self._keep())
        aws.s3.BucketServerSideEncryptionConfiguration(
            n, bucket=bucket.id, region=region,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms",
                                                                "kms_master_key_id": key.arn},
                    "bucket_key_enabled": True}],
            opts=self._child())
        aws.s3.BucketLifecycleConfiguration(
            n, bucket=bucket.id, region=region,
            rules=[{"id": "expire-old-versions", "status": "Enabled", "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": self._args.noncurrent_version_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}],
            opts=self._child())
        aws.s3.BucketPolicy(n, bucket=bucket.id, region=region, policy=bucket.arn.apply(_tls_only_policy),
                            opts=self._child())
        return bucket

    def _aws_replication_role(self, key: aws.kms.Key, replica_key: aws.kms.ReplicaKey, sources: list[aws.s3.Bucket],
                              replicas: list[aws.s3.Bucket]) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{self._name}-replication",
            description="NeuroDock: S3 replication of the state and weights buckets",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            tags=self._args.labels,
            opts=self._child(),
        )
        arns = pulumi.Output.all(key.arn, replica_key.arn, [b.arn for b in sources], [b.arn for b in replicas])
        aws.iam.RolePolicy(
            f"{self._name}-replication",
            role=role.id,
            policy=arns.apply(lambda a: json.dumps({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Resource": a[2],
                     "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"]},
                    {"Effect": "Allow", "Resource": [f"{arn}/*" for arn in a[2]],
                     "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                                "s3:GetObjectVersionTagging"]},
                    {"Effect": "Allow", "Resource": [f"{arn}/*" for arn in a[3]],
                     "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]},
                    {"Effect": "Allow", "Resource": a[0], "Action": ["kms:Decrypt"]},
                    # Decrypt too: the replicas use S3 Bucket Keys, and "the AWS KMS key policy for the KMS key that's
                    # used to encrypt the object replica must include the kms:Decrypt permission for the calling
                    # principal" (S3 User Guide, replication-config-for-kms-objects.md, "S3 Bucket Keys and
                    # replication"; awsdocs/amazon-s3-userguide cc53dd6a). The key's default policy defers to IAM.
                    {"Effect": "Allow", "Resource": a[1], "Action": ["kms:Encrypt", "kms:GenerateDataKey",
                                                                      "kms:Decrypt"]},
                ]})),
            opts=self._child(),
        )
        return role

    # -- GCP --------------------------------------------------------------------------------

    def _create_gcp(self) -> None:
        a = self._args
        # Left enabled on destroy (as the cluster stacks leave theirs): other stacks of the project may use them.
        apis = {api: gcp.projects.Service(f"{self._name}-api-{api.split('.')[0]}", project=a.project, service=api,
                                          disable_on_destroy=False, opts=self._child())
                for api in GCP_APIS}
        kms_api, storage_api = apis["cloudkms.googleapis.com"], apis["storage.googleapis.com"]
        ring = gcp.kms.KeyRing(f"{self._name}-keyring", name=state_key_ring(self._name), project=a.project,
                               location=kms_location(a.location),
                               opts=pulumi.ResourceOptions.merge(self._keep(), pulumi.ResourceOptions(
                                   depends_on=[kms_api], import_=a.adopt.key_ring_id)))
        key = gcp.kms.CryptoKey(
            f"{self._name}-key", name=STATE_KEY, key_ring=ring.id,
            rotation_period=f"{90 * 24 * 3600}s", purpose="ENCRYPT_DECRYPT", labels=a.labels,
            opts=pulumi.ResourceOptions.merge(self._keep(), pulumi.ResourceOptions(import_=a.adopt.crypto_key_id)))
        # Cloud Storage encrypts with the key through its service agent, which Storage's API reports once it is on.
        # The lookup runs through this component's provider (the project disables default providers).
        agent = gcp.storage.get_project_service_account_output(
            project=a.project, opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[storage_api]))
        grant = gcp.kms.CryptoKeyIAMMember(
            f"{self._name}-storage-agent", crypto_key_id=key.id, role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=agent.email_address.apply(lambda email: f"serviceAccount:{email}"), opts=self._child())
        buckets = {purpose: gcp.storage.Bucket(
            f"{self._name}-{purpose}",
            project=a.project,
            location=a.location,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning={"enabled": True},
            encryption={"default_kms_key_name": key.id},
            lifecycle_rules=[{"action": {"type": "Delete"},
                              "condition": {"days_since_noncurrent_time": a.noncurrent_version_days}}],
            force_destroy=False,
            labels={**a.labels, "neurodock-purpose": purpose},
            opts=pulumi.ResourceOptions.merge(self._keep(), pulumi.ResourceOptions(depends_on=[grant, storage_api])),
        ) for purpose in BUCKET_ROLES}
        self.backend_url = pulumi.Output.concat("gs://", buckets["state"].name)
        self.weights_url = pulumi.Output.concat("gs://", buckets["weights"].name)
        self.secrets_provider = pulumi.Output.concat("gcpkms://", key.id)


STATE_KEY = "pulumi-state"
"""The GCP secrets key's name, fixed: Cloud KMS keeps it forever."""


def state_key_ring(name: str) -> str:
    """The GCP key ring of the backend component ``name``, fixed: Cloud KMS keeps it forever."""
    return f"{name}-state"


def kms_location(location: str) -> str:
    """The Cloud KMS location whose keys may encrypt a bucket in this GCS location: a multi-region
    (``EU``) maps to its KMS multi-region (``europe``); a dual-region (``EUR4``) or a region to the
    KMS location of the same name (``eur4``, ``europe-west4``)."""
    multi = {"EU": "europe", "US": "us", "ASIA": "asia"}
    return multi.get(location.upper(), location.lower())


def _tls_only_policy(arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})

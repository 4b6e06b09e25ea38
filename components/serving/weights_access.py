"""Access to a model's weights bucket for exactly one Kubernetes ServiceAccount: read, or read and
write for the Job that mirrors Hugging Face weights into the stack's bucket.

EKS: an IAM role assumable by that ServiceAccount only (IRSA), allowed to list and read the bucket
prefix, and to have S3 decrypt its objects with a customer-managed KMS key (and encrypt them, for the
writer). GKE: a Google service account bound to that ServiceAccount (Workload Identity), allowed to
read the bucket. Nodes never get bucket access.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from components.cluster.eks import irsa_trust_policy


def split_bucket_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    bucket, _, prefix = uri.split("://", 1)[1].partition("/")
    return bucket, prefix.strip("/")


@dataclass(frozen=True, kw_only=True)
class S3WeightsReaderArgs:
    source: str
    """``s3://BUCKET/PREFIX``."""
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    namespace: str
    service_account: str
    """The model's ServiceAccount (fixed name: the trust policy names it)."""
    write: bool = False
    """Also upload and overwrite objects: the weights mirror's identity (default: read only)."""
    kms_key_arn: pulumi.Input[str] | None = None
    """The customer-managed KMS key the bucket encrypts objects with, when the stack knows it (default: any key,
    usable only by S3 for this bucket: the grant's conditions name the bucket)."""
    region: str | None = None
    """The bucket's AWS region, whose S3 calls KMS on the role's behalf (default: unknown, so S3 in any region: an
    existing bucket, such as the bootstrap's replicated one a DR stack reads, may be in another than the cluster's)."""


def s3_kms_statement(bucket: str, prefix: str, *, region: str | None, key_arn: str | None, write: bool) -> dict:
    """What S3 needs of KMS on a principal's behalf to read (and write) objects under ``prefix`` of a bucket encrypted
    with a customer-managed key (SSE-KMS), and nothing else: ``kms:Decrypt`` to download, ``kms:GenerateDataKey`` to
    upload and ``kms:Decrypt`` again to complete a multipart upload (S3 User Guide, "Using server-side encryption with
    AWS KMS keys", UsingKMSEncryption.md:26; "Multipart upload API and permissions", mpuoverview.md:129). Only
    through S3 (``kms:ViaService``, ``s3.<region>.amazonaws.com``; ``s3.*.amazonaws.com`` by ``StringLike``'s
    wildcard when the bucket's region is not known: IAM User Guide, "Condition operators", string operators) and
    only for this bucket's objects: S3 passes the object's
    ARN as the encryption context ``aws:s3:arn``, or the bucket's ARN when the bucket uses S3 Bucket Keys
    (UsingKMSEncryption.md:114-120, bucket-key.md:61), as AWS's own replication example conditions it
    (replication-config-for-kms-objects.md:148-161; all awsdocs/amazon-s3-userguide at cc53dd6a)."""
    objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    return {
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"] if write else "kms:Decrypt",
        "Resource": key_arn or "*",
        "Condition": {
            **({"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}} if region else {}),
            "StringLike": {**({} if region else {"kms:ViaService": "s3.*.amazonaws.com"}),
                           "kms:EncryptionContext:aws:s3:arn": [f"arn:aws:s3:::{bucket}", objects]},
        },
    }


class S3WeightsReader(pulumi.ComponentResource):
    """IAM role (IRSA) that can read one S3 prefix, its objects encrypted with S3's key or a KMS key."""

    annotations: dict[str, pulumi.Output[str]]
    """ServiceAccount annotations that bind it to the role."""

    def __init__(self, name: str, args: S3WeightsReaderArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:S3WeightsReader", name, None, opts)
        bucket, prefix = split_bucket_uri(args.source)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=irsa_trust_policy(args.oidc_provider_arn, args.oidc_issuer_url, args.namespace,
                                                 args.service_account),
            opts=pulumi.ResourceOptions(parent=self),
        )
        objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
        aws.iam.RolePolicy(
            f"{name}-read",
            role=role.id,
            policy=pulumi.Output.all(args.region, args.kms_key_arn).apply(lambda a: json.dumps({
                "Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
                     **({"Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}}} if prefix else {})},
                    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
                     if args.write else "s3:GetObject", "Resource": objects},
                    s3_kms_statement(bucket, prefix, region=a[0], key_arn=a[1], write=args.write),
                ]})),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.annotations = {"eks.amazonaws.com/role-arn": role.arn}
        self.register_outputs({"roleArn": role.arn})


@dataclass(frozen=True, kw_only=True)
class GcsWeightsReaderArgs:
    source: str
    """``gs://BUCKET/PREFIX``."""
    project: str
    workload_pool: pulumi.Input[str]
    """``PROJECT.svc.id.goog``, taken from the cluster so the binding waits for the pool to exist."""
    namespace: str
    service_account: str
    """The model's ServiceAccount (fixed name: the IAM binding names it)."""
    account_id: str
    """Google service account id (6-30 characters)."""
    write: bool = False
    """Also upload and overwrite objects: the weights mirror's identity (default: read only)."""


class GcsWeightsReader(pulumi.ComponentResource):
    """Google service account, Workload Identity binding and bucket read access."""

    annotations: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: GcsWeightsReaderArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:GcsWeightsReader", name, None, opts)
        bucket, _ = split_bucket_uri(args.source)
        account = gcp.serviceaccount.Account(
            f"{name}-gsa", account_id=args.account_id, project=args.project,
            display_name=f"Weights reader of {args.namespace}/{args.service_account}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        gcp.storage.BucketIAMMember(
            f"{name}-read", bucket=bucket,
            role="roles/storage.objectUser" if args.write else "roles/storage.objectViewer",
            member=account.email.apply(lambda e: f"serviceAccount:{e}"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        gcp.serviceaccount.IAMMember(
            f"{name}-wi", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
            member=pulumi.Output.from_input(args.workload_pool).apply(
                lambda pool: f"serviceAccount:{pool}[{args.namespace}/{args.service_account}]"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.annotations = {"iam.gke.io/gcp-service-account": account.email}
        self.register_outputs({"email": account.email})

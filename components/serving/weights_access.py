"""Access to a model's weights bucket for exactly one Kubernetes ServiceAccount: read, or read and
write for the Job that mirrors Hugging Face weights into the stack's bucket.

EKS: an IAM role assumable by that ServiceAccount only (IRSA), allowed to list and read the bucket
prefix. GKE: a Google service account bound to that ServiceAccount (Workload Identity), allowed to
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


class S3WeightsReader(pulumi.ComponentResource):
    """IAM role (IRSA) that can read one S3 prefix."""

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
            policy=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
                 **({"Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}}} if prefix else {})},
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
                 if args.write else "s3:GetObject", "Resource": objects},
            ]}),
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

"""Hugging Face weights mirrored once into the stack's own bucket, so every replica after the first
streams them from object storage in the cluster's region instead of the internet.

The bucket is a cache: weights can always be mirrored again, so it is destroyed with the stack.
Each source and revision has its own prefix (``hf/<org>/<model>/<revision>/``), written by a Job
that runs once per prefix; its completion marker is written last and names the source, revision
and files it holds. A new revision is a new prefix and a new Job, never a stale cache.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components import labels
from components.k8s import PART_OF_VALUE, restricted_container_security_context, restricted_pod_security_context
from components.serving.weights_access import (
    GcsWeightsReader,
    GcsWeightsReaderArgs,
    S3WeightsReader,
    S3WeightsReaderArgs,
)
from components.versions import AWS_CLI_IMAGE, GCLOUD_IMAGE, MIRROR_DOWNLOAD_IMAGE

PURPOSE = "weights-mirror"
"""The bucket's ``neurodock:purpose``: a cache, which the policy prod-stateful-resources-retained lets go."""
MIRROR_ACCOUNT = "weights-mirror"
"""The ServiceAccount of every mirror Job: the only identity that may write the bucket."""
COMPLETE_MARKER = ".neurodock-complete"
MIRRORED_FLAG = "/work/.mirrored"
"""Written in the Job's scratch volume when the bucket holds the marker already: the download and upload skip."""
HF_FILES = ("*.safetensors", "*.json", "*.model", "*.tiktoken", "*.txt", "*.jinja")
"""What vLLM serves from a Hugging Face repository: safetensors weights (the streamer reads no other
format), config, tokenizer and chat template. Other checkpoint formats (``*.bin``, ``*.pth``) are
left out: Llama 3.1's repository also ships ``original/consolidated.00.pth``, as large again."""
HF_SKIP = ("*/*",)
"""Files in subdirectories: the streamer reads a prefix's top level only, and ``original/`` holds
the other format."""


@dataclass(frozen=True, kw_only=True)
class MirrorBucketArgs:
    cloud: str
    """``eks`` or ``gke``."""
    name: str
    """Bucket name: fixed, so every model's weights URI is known before it exists."""
    location: str
    """Region of the bucket: the cluster's."""
    project: str | None
    """GCP project (GKE)."""
    labels: dict[str, str]
    writer: S3WeightsReaderArgs | GcsWeightsReaderArgs
    """The mirror Jobs' identity (``write`` set), bound to the ServiceAccount ``MIRROR_ACCOUNT``."""
    existing: bool = False
    """The bucket exists outside the stack (``neurodock:weightsBucket``, kept by the state-backend project):
    only the writer's identity is created, and nothing is destroyed with the stack (default: the stack's
    own bucket, a cache)."""


class MirrorBucket(pulumi.ComponentResource):
    """The bucket Hugging Face weights are mirrored into."""

    uri: str
    """``s3://NAME`` or ``gs://NAME``."""
    writer_annotations: dict[str, pulumi.Output[str]]
    """Annotations binding ``MIRROR_ACCOUNT`` to the identity that may write the bucket."""

    def __init__(self, name: str, args: MirrorBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:MirrorBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.existing:
            self.uri = f"{'s3' if args.cloud == 'eks' else 'gs'}://{args.name}"
            reader = S3WeightsReader if args.cloud == "eks" else GcsWeightsReader
            self.writer_annotations = reader(f"{name}-writer", args.writer, opts=child).annotations
            self.register_outputs({"uri": self.uri})
            return
        if args.cloud == "eks":
            bucket = aws.s3.Bucket(name, bucket=args.name, force_destroy=True, tags=args.labels, opts=child)
            aws.s3.BucketOwnershipControls(name, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"},
                                           opts=child)
            aws.s3.BucketPublicAccessBlock(name, bucket=bucket.id, block_public_acls=True, block_public_policy=True,
                                           ignore_public_acls=True, restrict_public_buckets=True, opts=child)
            aws.s3.BucketServerSideEncryptionConfiguration(
                name, bucket=bucket.id,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}], opts=child)
            aws.s3.BucketLifecycleConfiguration(
                name, bucket=bucket.id,
                rules=[{"id": "abort-incomplete-uploads", "status": "Enabled", "filter": {},
                        "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}], opts=child)
            self.uri = f"s3://{args.name}"
            writer = S3WeightsReader(f"{name}-writer", args.writer, opts=pulumi.ResourceOptions(
                parent=self, depends_on=[bucket]))
        else:
            bucket = gcp.storage.Bucket(name, name=args.name, project=args.project, location=args.location,
                                        uniform_bucket_level_access=True, public_access_prevention="enforced",
                                        # A cache: deleted objects are not kept (soft delete's 7 days
                                        # would bill a model's size per destroy or new revision).
                                        soft_delete_policy={"retention_duration_seconds": 0},
                                        force_destroy=True, labels=args.labels, opts=child)
            self.uri = f"gs://{args.name}"
            writer = GcsWeightsReader(f"{name}-writer", args.writer, opts=pulumi.ResourceOptions(
                parent=self, depends_on=[bucket]))
        self.writer_annotations = writer.annotations
        self.register_outputs({"uri": self.uri})


def hf_download(repo: str, revision: str | None, dest: str) -> list[str]:
    """The command (in a vLLM image, which ships huggingface_hub) that downloads what vLLM serves of
    ``repo`` at ``revision`` (None: the main branch) into ``dest``."""
    program = ("import sys; from huggingface_hub import snapshot_download; "
               "snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2] or None, local_dir=sys.argv[3], "
               f"allow_patterns={list(HF_FILES)!r}, ignore_patterns={list(HF_SKIP)!r})")
    return ["python3", "-c", program, repo, revision or "", dest]


def mirror_prefix(bucket_uri: str, repo: str, revision: str) -> str:
    """Where a Hugging Face repository at a revision is mirrored."""
    return f"{bucket_uri}/hf/{repo}/{revision}"


def mirror_job(name: str, *, namespace: pulumi.Input[str], repo: str, revision: str, target: str,
               aws_region: str | None, hf_token_secret: pulumi.Input[str] | None, volume_gib: int, storage_class: str,
               node_selector: dict[str, str], deadline_s: int,
               opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
    """A Job that downloads ``repo`` at ``revision`` (the files vLLM serves) and uploads it to ``target``,
    marker last, unless the marker is already there. `pulumi up` waits for it."""
    marker = f"{target}/{COMPLETE_MARKER}"
    if target.startswith("s3://"):
        uploader = AWS_CLI_IMAGE
        identity = "aws sts get-caller-identity"
        exists = f"aws s3 ls {shlex.quote(marker)}"
        copy = f"aws s3 cp --recursive --no-progress /work/model {shlex.quote(target)}"
        put_marker = f"aws s3 cp - {shlex.quote(marker)}"
    else:
        uploader = GCLOUD_IMAGE
        identity = "gcloud auth print-access-token"
        exists = f"gcloud storage ls {shlex.quote(marker)}"
        copy = f"gcloud storage cp --recursive '/work/model/*' {shlex.quote(target + '/')}"
        put_marker = f"gcloud storage cp - {shlex.quote(marker)}"
    # The marker is looked for first, before any call to Hugging Face: a re-created stack (disaster recovery)
    # finds its weights there and downloads nothing (init containers run in order, each to completion). The pod's
    # identity may not answer in its first seconds (GKE's metadata server, "Use Workload Identity", limitations):
    # it is waited for, and only "no such object" counts as not mirrored (the AWS CLI's `s3 ls` prints nothing
    # for it, gcloud "matched no objects"); any other failure fails the container, and the Job tries again.
    check = (f"set -u; i=0; until {identity} >/dev/null 2>&1 || [ $i -ge 30 ]; do i=$((i+1)); sleep 2; done; "
             f"if out=$({exists} 2>&1); then echo 'already mirrored'; touch {MIRRORED_FLAG}; exit 0; fi; "
             "case \"$out\" in ''|*'matched no objects'*) echo 'not mirrored yet'; exit 0;; esac; "
             "echo \"$out\" >&2; exit 1")
    # Hugging Face's own download metadata stays behind; only the model's files are uploaded.
    upload = (f"set -eu; if [ -e {MIRRORED_FLAG} ]; then exit 0; fi; "
              f"rm -rf /work/model/.cache; {copy}; "
              f"(echo 'source: hf://{repo}'; echo 'revision: {revision}'; cd /work/model && ls -1) | {put_marker}")
    download = ["/bin/sh", "-c", f'if [ -e {MIRRORED_FLAG} ]; then exit 0; fi; exec "$@"', "download",
                *hf_download(repo, revision, "/work/model")]
    env = [k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
           k8s.core.v1.EnvVarArgs(name="USER", value="mirror"),
           k8s.core.v1.EnvVarArgs(name="HF_HOME", value="/work/.huggingface"),
           k8s.core.v1.EnvVarArgs(name="CLOUDSDK_CONFIG", value="/tmp/gcloud")]
    if aws_region:
        env.append(k8s.core.v1.EnvVarArgs(name="AWS_REGION", value=aws_region))
    if hf_token_secret is not None:
        env.append(k8s.core.v1.EnvVarArgs(name="HF_TOKEN", value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=hf_token_secret, key="token"))))
    mounts = [k8s.core.v1.VolumeMountArgs(name="work", mount_path="/work"),
              k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")]
    resources = k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "2", "memory": "4Gi"}, limits={"memory": "8Gi"})
    object_labels = {labels.NAME: "weights-mirror", labels.INSTANCE: name, labels.PART_OF: PART_OF_VALUE,
                     labels.COMPONENT: "serving"}
    return k8s.batch.v1.Job(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=object_labels, annotations={
            "neurodock.io/weights": f"hf://{repo}@{revision}",
            # A failed mirror is replaced (run again) by the next `pulumi up`, not awaited forever.
            "pulumi.com/replaceUnready": "true"}),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=3,
            active_deadline_seconds=deadline_s,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=MIRROR_ACCOUNT,
                    automount_service_account_token=False,
                    restart_policy="Never",
                    security_context=restricted_pod_security_context(),
                    node_selector=node_selector,
                    init_containers=[
                        k8s.core.v1.ContainerArgs(
                            name="check", image=uploader, env=env, volume_mounts=mounts, resources=resources,
                            command=["/bin/sh", "-c", check],
                            security_context=restricted_container_security_context()),
                        k8s.core.v1.ContainerArgs(
                            name="download", image=MIRROR_DOWNLOAD_IMAGE, env=env, volume_mounts=mounts,
                            resources=resources, command=download,
                            security_context=restricted_container_security_context()),
                    ],
                    containers=[k8s.core.v1.ContainerArgs(
                        name="upload", image=uploader, env=env, volume_mounts=mounts, resources=resources,
                        command=["/bin/sh", "-c", upload],
                        security_context=restricted_container_security_context())],
                    volumes=[
                        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                            size_limit="1Gi")),
                        k8s.core.v1.VolumeArgs(name="work", ephemeral=k8s.core.v1.EphemeralVolumeSourceArgs(
                            volume_claim_template=k8s.core.v1.PersistentVolumeClaimTemplateArgs(
                                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                                    access_modes=["ReadWriteOnce"], storage_class_name=storage_class,
                                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                                        requests={"storage": f"{volume_gib}Gi"}))))),
                    ],
                ),
            ),
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(
            create=f"{deadline_s + 120}s", update=f"{deadline_s + 120}s"))),
    )

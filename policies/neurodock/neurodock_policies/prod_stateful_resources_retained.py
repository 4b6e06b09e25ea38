"""prod-stateful-resources-retained: in prod, what holds data or keys (KMS keys, buckets, volumes
claims) is protected or retained, so destroying or replacing the stack cannot lose it.

The engine never sends a policy ``retainOnDelete`` (pulumi ``analyzer_plugin.go``, ``marshalResourceOptions``:
the protocol has no field for it), only ``protect``. Under CrossGuard a resource retained but not protected
cannot be judged, so the policy reports itself not applicable there, naming them; ``neurodock check``
runs it again offline, where the plan knows each resource's ``retainOnDelete``."""

from __future__ import annotations

from neurodock_policies.support import (
    PRODUCTION_SCHEMA,
    NotApplicable,
    describe,
    environment_of,
    stack_policy,
)

NAME = "prod-stateful-resources-retained"
STATEFUL = (
    "aws:kms/key:Key",
    "aws:kms/replicaKey:ReplicaKey",
    "gcp:kms/cryptoKey:CryptoKey",
    "gcp:kms/keyRing:KeyRing",
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketV2:BucketV2",
    "gcp:storage/bucket:Bucket",
    "kubernetes:core/v1:PersistentVolumeClaim",
)


CACHE_PURPOSE = "weights-mirror"
"""The purpose tag (``neurodock:purpose``) or label (``neurodock-purpose``) of the bucket Hugging Face
weights are mirrored into: a cache, refilled from its source, destroyed with its stack."""


def is_cache(props: dict) -> bool:
    tags = props.get("tags") or props.get("labels") or {}
    return CACHE_PURPOSE in (tags.get("neurodock:purpose"), tags.get("neurodock-purpose"))


def check(resources, config) -> list[tuple[str, str]]:
    production = set(config["productionEnvironments"])
    environments = {environment_of(r.props) for r in resources} - {None}
    if not environments & production:
        return []
    out = []
    unseen = []
    for r in resources:
        if r.resource_type not in STATEFUL:
            continue
        if r.resource_type == "kubernetes:core/v1:PersistentVolumeClaim" and \
                (r.props.get("spec") or {}).get("accessModes") != ["ReadWriteMany"]:
            continue  # per-replica caches are refilled from their source
        if is_cache(r.props):
            continue
        retained = getattr(r.opts, "retain_on_delete", None)  # set by neurodock check alone
        if r.opts.protect or retained:
            continue
        if retained is None:
            unseen.append(describe(r.resource_type, r.props, r.name))
            continue
        out.append((r.urn, f"{describe(r.resource_type, r.props, r.name)} holds data or keys in a production stack "
                           "but is neither protected nor retained; set protect=True or retain_on_delete=True."))
    if unseen:
        raise NotApplicable(f"the engine does not show policies retainOnDelete, so {', '.join(unseen)} cannot be "
                            "judged here; `neurodock check` verifies their retention offline")
    return out


POLICY = stack_policy(
    NAME,
    "Production stateful resources are protected or retained.",
    check,
    config_schema=PRODUCTION_SCHEMA,
)

"""What already exists in the cloud, read while the program runs, before anything is registered.

Two things the program cannot decide from config alone:

- a re-created GKE stack (disaster recovery) finds its Secrets key ring and key left behind by the
  last destroy (``retainOnDelete``; Cloud KMS never deletes either) and must adopt them, or creating
  them again fails on their fixed names;
- an EKS managed node group's desired size belongs to the Cluster Autoscaler, except when a raised
  ``minNodes`` is above it: EKS then rejects the update unless the desired size is raised with it.

Each lookup answers "nothing there" when the cluster or project does not exist yet (a first
`pulumi up`), or when the lookup itself fails: the program then plans a plain create, and the cloud's
own error, if any, names the conflict. Under ``neurodock plan`` the mocks answer (``infra/plan/mocks.py``).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from components.cluster.eks import POOL_TAG
from components.cluster.gke import CRYPTO_KEY_NAME, Retained, key_ring_name


def eks_group_sizes(cluster_name: str, region: str, provider: pulumi.ProviderResource) -> dict[str, int] | None:
    """Each pool's current desired size, by pool name (the largest, mid-replacement), from the tag
    the program puts on its node group: ``{}`` when the cluster does not exist, ``None`` when the
    groups could not be read (the program then leaves the desired size alone)."""
    opts = pulumi.InvokeOptions(provider=provider)
    sizes: dict[str, int] = {}
    try:
        names = aws.eks.get_node_groups(cluster_name=cluster_name, region=region, opts=opts).names
        for name in names:
            group = aws.eks.get_node_group(cluster_name=cluster_name, node_group_name=name, region=region, opts=opts)
            pool = (group.tags or {}).get(POOL_TAG)
            if pool and group.scaling_configs:
                sizes[pool] = max(sizes.get(pool, 0), group.scaling_configs[0].desired_size)
    except Exception as error:
        if "ResourceNotFoundException" in str(error):
            return {}  # no cluster yet: every group is new
        pulumi.log.warn(f"could not read the node groups of {cluster_name} ({_first_line(error)}); "
                        "their desired sizes are left as they are")
        return None
    return sizes


def eks_cluster_version(cluster_name: str, region: str, provider: pulumi.ProviderResource) -> str | None:
    """The running cluster's Kubernetes minor version, or None when there is none (or it cannot be read)."""
    try:
        cluster = aws.eks.get_cluster(name=cluster_name, region=region, opts=pulumi.InvokeOptions(provider=provider))
    except Exception as error:
        _nothing(f"EKS cluster {cluster_name}", error)
        return None
    return cluster.version


def gke_retained_keys(project: str, region: str, cluster_name: str, provider: pulumi.ProviderResource) -> Retained:
    """The Secrets key ring and key of a destroyed stack of the same cluster name, if they exist."""
    opts = pulumi.InvokeOptions(provider=provider)
    ring_name = key_ring_name(cluster_name)
    try:
        rings = gcp.kms.get_key_rings(project=project, location=region, opts=opts).key_rings
    except Exception as error:
        _nothing(f"Cloud KMS key rings of {project}/{region}", error)
        return Retained()
    ring = _named(rings, ring_name)
    if ring is None:
        return Retained()
    key = _named(gcp.kms.get_crypto_keys(key_ring=ring, opts=opts).keys, CRYPTO_KEY_NAME)
    pulumi.log.info(f"adopting the retained Secrets key ring {ring}" + (f" and key {key}" if key else ""))
    return Retained(key_ring_id=ring, crypto_key_id=key)


def _named(items, name: str) -> str | None:
    """The id of the KMS object called ``name`` (its id is a path ending in the name)."""
    return next((i.id for i in items if i.id.rsplit("/", 1)[-1] == name or i.name == name), None)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _nothing(what: str, error: Exception) -> None:
    pulumi.log.debug(f"{what}: none found ({_first_line(error)})")

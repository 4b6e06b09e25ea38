"""gke-cluster-hardening: GKE runs private nodes, Workload Identity and Shielded Nodes, and encrypts
Secrets with Cloud KMS."""

from __future__ import annotations

from neurodock_policies.support import dig, known, resource_policy

NAME = "gke-cluster-hardening"


def check(resource_type, props, name, config) -> list[str]:
    if resource_type != "gcp:container/cluster:Cluster":
        return []
    what = f"GKE cluster '{name}'"
    out = []
    private = dig(props, "privateClusterConfig", "enablePrivateNodes")
    if (known(private) and private is not True) or private is None:
        out.append(f"{what} gives its nodes public IPs; set privateClusterConfig.enablePrivateNodes to true.")
    pool = dig(props, "workloadIdentityConfig", "workloadPool")
    if pool is None or (known(pool) and not pool):
        out.append(f"{what} does not enable Workload Identity; set workloadIdentityConfig.workloadPool to "
                   "'PROJECT.svc.id.goog'.")
    shielded = props.get("enableShieldedNodes")
    if known(shielded) and shielded is False:
        out.append(f"{what} turns Shielded Nodes off; set enableShieldedNodes to true.")
    state = dig(props, "databaseEncryption", "state")
    if state is None or (known(state) and state != "ENCRYPTED"):
        out.append(f"{what} does not encrypt Secrets with Cloud KMS; set databaseEncryption to state 'ENCRYPTED' "
                   "with a keyName.")
    return out


POLICY = resource_policy(
    NAME,
    "GKE: private nodes, Workload Identity, Shielded Nodes, Secrets encryption.",
    check,
)

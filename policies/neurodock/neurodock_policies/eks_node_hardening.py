"""eks-node-hardening: EKS node launch templates require IMDSv2 with a hop limit of 1 (pods cannot
borrow the node's role) and encrypt their volumes."""

from __future__ import annotations

from neurodock_policies.support import dig, entries, known, resource_policy

NAME = "eks-node-hardening"


def check(resource_type, props, name, config) -> list[str]:
    if resource_type != "aws:ec2/launchTemplate:LaunchTemplate":
        return []
    what = f"LaunchTemplate '{name}'"
    out = []
    tokens, hops = dig(props, "metadataOptions", "httpTokens"), dig(props, "metadataOptions", "httpPutResponseHopLimit")
    if (known(tokens) and tokens != "required") or tokens is None:
        out.append(f"{what} does not require IMDSv2; set metadataOptions.httpTokens to 'required'.")
    if (known(hops) and isinstance(hops, (int, float)) and int(hops) != 1) or hops is None:
        out.append(f"{what} lets pods reach the instance metadata service; set "
                   "metadataOptions.httpPutResponseHopLimit to 1.")
    for mapping in entries(props.get("blockDeviceMappings")):
        encrypted = dig(mapping, "ebs", "encrypted")
        if (known(encrypted) and str(encrypted).lower() != "true") or encrypted is None:
            out.append(f"{what} volume {mapping.get('deviceName')} is not encrypted; set ebs.encrypted to true.")
    return out


POLICY = resource_policy(
    NAME,
    "EKS nodes: IMDSv2 with hop limit 1, encrypted volumes.",
    check,
)

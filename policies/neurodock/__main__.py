"""The NeuroDock policy pack: `pulumi preview --policy-pack policies/neurodock`."""

from neurodock_policies import PACK_NAME, POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name=PACK_NAME, policies=POLICIES)

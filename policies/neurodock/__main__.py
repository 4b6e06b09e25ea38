"""The NeuroDock policy pack: `pulumi preview --policy-pack policies/neurodock`."""

from neurodock_policies import PACK_NAME, POLICIES
from neurodock_policies.pack import prepare
from pulumi_policy import PolicyPack

# Before the pack serves: how values reach the policies (neurodock_policies/pack.py).
prepare()
PolicyPack(name=PACK_NAME, policies=POLICIES)

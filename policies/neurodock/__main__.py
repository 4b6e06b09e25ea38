"""The NeuroDock policy pack: `pulumi preview --policy-pack policies/neurodock`."""

from neurodock_policies import PACK_NAME, POLICIES
from neurodock_policies.secrets import keep_secret_marks
from pulumi_policy import PolicyPack

# Before the pack serves: policies judge secrets by whether they are secret (neurodock_policies/secrets.py).
keep_secret_marks()
PolicyPack(name=PACK_NAME, policies=POLICIES)

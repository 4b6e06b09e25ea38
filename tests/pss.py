"""The Pod Security Standards checker lives in the policy pack (``neurodock_policies.pss``); tests
use the same one."""

from neurodock_policies.pss import containers, violations

__all__ = ["containers", "violations"]

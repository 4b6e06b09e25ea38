"""Typed models of the stack configuration: every ``neurodock:*`` key of ``stacks/Pulumi.<env>.yaml``.

Pydantic lives here, at the edge. The rest of the program receives validated, frozen models and
turns them into component ``Args``; no ``Output`` ever enters a model.

One module per concern, each owning its models, defaults and checks: ``cloud`` (the cluster's cloud,
network, endpoint and tags), ``offerings`` (the regions, zones and versions the clouds offer, from ``data/``),
``pools`` (node pools and their GPUs), ``serving`` (models, versions, readiness), ``rollout`` (a canary's steps
and eval gate), ``engine`` (what the engine would refuse: managed flags, images, model sizes, number formats),
``capacity`` (whether they fit), ``budgets`` (readiness budgets against the estimate), ``cost`` (the stack's monthly
budget), ``monitoring`` (and alerting), ``gateway``, ``deploy``,
``providers`` (credentials in the cloud providers' namespaces), ``coherence`` (settings another setting
silently drops); ``stack`` puts them together and reads them from Pulumi, ``messages`` words pydantic's
errors, ``base`` holds what they share. Stack files themselves are read by ``infra.plan.stackfile``.

Validation happens in two passes, both before any resource exists:

1. structure: types, ranges, allowed values and unknown keys (a typo is the commonest config bug,
   so every model forbids extra keys);
2. semantics: facts that span several keys (a model's pool exists, min <= max, a GPU type is known).

Every problem becomes one :class:`Problem` whose ``path`` names the key as a user writes it, for
example ``neurodock:nodePools[1].gpu.count``; :class:`ConfigError` carries all of them at once.
"""

from infra.config.base import *  # noqa: F403
from infra.config.budgets import *  # noqa: F403
from infra.config.capacity import *  # noqa: F403
from infra.config.cloud import *  # noqa: F403
from infra.config.coherence import *  # noqa: F403
from infra.config.cost import *  # noqa: F403
from infra.config.deploy import *  # noqa: F403
from infra.config.engine import *  # noqa: F403
from infra.config.gateway import *  # noqa: F403
from infra.config.messages import *  # noqa: F403
from infra.config.monitoring import *  # noqa: F403
from infra.config.offerings import *  # noqa: F403
from infra.config.pools import *  # noqa: F403
from infra.config.providers import *  # noqa: F403
from infra.config.rollout import *  # noqa: F403
from infra.config.serving import *  # noqa: F403
from infra.config.stack import *  # noqa: F403

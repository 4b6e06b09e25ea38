"""The NeuroDock stack program: load the stack's configuration, build, export.

Run by ``pulumi up -s <env>`` (Pulumi.yaml: ``main: infra/``) and, under mocks, by ``neurodock plan``.
"""

import pulumi

from infra.config import ConfigError
from infra.program import InvalidConfig, build, load_stack_config
from infra.secrets import StackSecrets

try:
    config = load_stack_config()
except ConfigError as error:
    # RunError ends the program with the message alone, without a traceback.
    raise pulumi.RunError(f"invalid stack configuration:\n{error}") from None

try:
    # The program also refuses what only the running cloud can show (an EKS version jump).
    outputs = build(config, StackSecrets.from_pulumi_config())
except ConfigError as error:
    raise InvalidConfig(error) from None
for name, value in outputs.items():
    pulumi.export(name, value)

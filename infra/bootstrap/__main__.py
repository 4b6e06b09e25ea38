"""The bootstrap program: the state backend every NeuroDock stack logs in to.

``pulumi up -s aws`` (or ``gcp``) in ``infra/bootstrap``. Run once per organisation and cloud,
before any stack; it holds no cluster and is never destroyed (everything in it is protected).
"""

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from components.retained import Retained
from components.state import Cloud, StateBackend, StateBackendArgs
from components.state.backend import STATE_KEY, kms_location, state_key_ring
from infra import live
from infra.bootstrap.config import parse_bootstrap_config
from infra.config import ConfigError

try:
    config = parse_bootstrap_config({**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()})
except ConfigError as error:
    raise pulumi.RunError(f"invalid stack configuration:\n{error}") from None

labels = {**config.tags, "managed-by": "neurodock-bootstrap"}
if config.cloud == "aws":
    provider = aws.Provider("aws", region=config.location)
else:
    provider = gcp.Provider("gcp", project=config.project)
NAME = "neurodock"
# A bootstrap created again (its state lost, or destroyed) finds the key ring and key Cloud KMS kept, and adopts them.
adopt = live.gcp_retained_kms(config.project, kms_location(config.location), state_key_ring(NAME), STATE_KEY,
                              provider) if config.cloud == "gcp" else Retained()
backend = StateBackend(
    NAME,
    StateBackendArgs(cloud=Cloud(config.cloud), location=config.location, project=config.project,
                     replica_region=config.replica_region, noncurrent_version_days=config.noncurrent_version_days,
                     labels=labels, adopt=adopt),
    opts=pulumi.ResourceOptions(providers=[provider]),
)
pulumi.export("backendUrl", backend.backend_url)
pulumi.export("secretsProvider", backend.secrets_provider)
pulumi.export("weightsUrl", backend.weights_url)

"""Configuration of the bootstrap project (``neurodock-bootstrap:*`` keys), validated before any
resource exists, with errors that name the key and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from infra.config import (
    AWS_REGION_PATTERN,
    AwsRegion,
    ConfigError,
    GcpProject,
    Model,
    Problem,
    decode,
    pattern,
    structural_problems,
)

BOOTSTRAP_CONFIG_NAMESPACE = "neurodock-bootstrap"

Location = pattern(r"^[A-Za-z][A-Za-z0-9-]*[0-9A-Za-z]$", "an AWS region, or a Cloud Storage location", "us-west-2")


class BootstrapConfig(Model):
    """Where the state backend lives. See docs/operations.md, "State backend"."""

    cloud: Literal["aws", "gcp"]
    """``aws`` (S3 + KMS) or ``gcp`` (Cloud Storage + Cloud KMS)."""
    location: Location
    """AWS region, or GCS location: prefer a multi-region (``EU``, ``US``) or dual-region (``EUR4``)."""
    project: GcpProject | None = None
    """GCP project id (gcp: required)."""
    replica_region: AwsRegion | None = None
    """aws: a second region every bucket replicates to (default none; recommended)."""
    noncurrent_version_days: int = Field(default=90, ge=1, le=3650)
    """Days an overwritten or deleted object version is kept (default 90)."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags (AWS) or labels (GCP) on every resource (default none)."""


def parse_bootstrap_config(values: Mapping[str, Any]) -> BootstrapConfig:
    """Validate ``neurodock-bootstrap:*`` values (as Pulumi passes them) or raise ``ConfigError``."""
    data = {key: decode(value) for full_key, value in values.items()
            for namespace, _, key in [full_key.partition(":")] if namespace == BOOTSTRAP_CONFIG_NAMESPACE and key}
    try:
        config = BootstrapConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(structural_problems(exc, data, BootstrapConfig, BOOTSTRAP_CONFIG_NAMESPACE)) from None
    problems = []
    if config.cloud == "gcp" and not config.project:
        problems.append(Problem(f"{BOOTSTRAP_CONFIG_NAMESPACE}:project",
                                "is required with cloud gcp; set the GCP project id"))
    if config.cloud == "gcp" and config.replica_region:
        problems.append(Problem(f"{BOOTSTRAP_CONFIG_NAMESPACE}:replicaRegion", (
            "is for aws only; on gcp set location to a multi-region (EU, US) or dual-region (EUR4) instead")))
    if config.cloud == "aws" and not re.fullmatch(AWS_REGION_PATTERN, config.location):
        problems.append(Problem(f"{BOOTSTRAP_CONFIG_NAMESPACE}:location", f"must be an AWS region such as us-west-2 "
                                f"(got {config.location!r})"))
    if config.replica_region and config.replica_region == config.location:
        problems.append(Problem(f"{BOOTSTRAP_CONFIG_NAMESPACE}:replicaRegion",
                                "must differ from location, or a region outage "
                                "takes both copies"))
    if problems:
        raise ConfigError(problems)
    return config

"""Configuration of the bootstrap project (``neurodock-bootstrap:*`` keys), validated before any
resource exists, with errors that name the key and the fix."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from infra.config import ConfigError, Problem, Region, _Model

NAMESPACE = "neurodock-bootstrap"


class BootstrapConfig(_Model):
    """Where the state backend lives. See README, "State backend"."""

    cloud: Literal["aws", "gcp"]
    """``aws`` (S3 + KMS) or ``gcp`` (Cloud Storage + Cloud KMS)."""
    location: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]*[0-9A-Za-z]$")
    """AWS region, or GCS location: prefer a multi-region (``EU``, ``US``) or dual-region (``EUR4``)."""
    project: str | None = Field(default=None, pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    """GCP project id (gcp: required)."""
    replica_region: Region | None = None
    """aws: a second region every bucket replicates to (default none; recommended)."""
    noncurrent_version_days: int = Field(default=90, ge=1, le=3650)
    """Days an overwritten or deleted object version is kept (default 90)."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags (AWS) or labels (GCP) on every resource (default none)."""


def parse_bootstrap_config(values: Mapping[str, Any]) -> BootstrapConfig:
    """Validate ``neurodock-bootstrap:*`` values (as Pulumi passes them) or raise ``ConfigError``."""
    data = {}
    for full_key, value in values.items():
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE and key:
            data[key] = json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value
    try:
        config = BootstrapConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(error) for error in exc.errors(include_url=False)]) from None
    problems = []
    if config.cloud == "gcp" and not config.project:
        problems.append(Problem(f"{NAMESPACE}:project", "is required with cloud gcp; set the GCP project id"))
    if config.cloud == "gcp" and config.replica_region:
        problems.append(Problem(f"{NAMESPACE}:replicaRegion", (
            "is for aws only; on gcp set location to a multi-region (EU, US) or dual-region (EUR4) instead")))
    if config.cloud == "aws" and not _is_region(config.location):
        problems.append(Problem(f"{NAMESPACE}:location", f"must be an AWS region such as us-west-2 "
                                f"(got {config.location!r})"))
    if config.replica_region and config.replica_region == config.location:
        problems.append(Problem(f"{NAMESPACE}:replicaRegion", "must differ from location, or a region outage "
                                "takes both copies"))
    if problems:
        raise ConfigError(problems)
    return config


def _is_region(value: str) -> bool:
    from pydantic import TypeAdapter

    try:
        TypeAdapter(Region).validate_python(value)
    except ValidationError:
        return False
    return True


def _problem(error: Mapping[str, Any]) -> Problem:
    path = ".".join(str(p) for p in error["loc"])
    key = f"{NAMESPACE}:{path}"
    if error["type"] == "extra_forbidden":
        allowed = sorted(f.alias or n for n, f in BootstrapConfig.model_fields.items())
        close = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return Problem(key, f"unknown key; {hint}allowed keys: {', '.join(allowed)}")
    if error["type"] == "missing":
        return Problem(key, "is required but missing")
    message = error["msg"][0].lower() + error["msg"][1:]
    if "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return Problem(key, message)

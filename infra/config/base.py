"""What every config module shares: the config namespace, the string types users write (each described
by a sentence with an example, never a regular expression), the base model, and problems with the key
they are about."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

CONFIG_NAMESPACE = "neurodock"
"""The Pulumi config namespace of every key modelled here."""

VARIANTS = ("canary", "shadow")
"""Versions a model may run beside its stable one (``models[].canary``, ``models[].shadow``)."""


PATTERN_HINTS: dict[str, str] = {}
"""What a value of each string pattern must look like, as a sentence with an example: a value that does
not match is told this, never the regular expression."""


def pattern(regex: str, what: str, example: str) -> Any:
    """A string type matching ``regex``, described to users as ``what`` with ``example``."""
    hint = f"must be {what}, e.g. {example!r}"
    assert PATTERN_HINTS.setdefault(regex, hint) == hint, f"two descriptions of {regex}"
    return Annotated[str, StringConstraints(pattern=regex), Field(description=what, examples=[example])]


Name = pattern(r"^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$",
               "a name of at most 24 lowercase letters, digits and '-', starting with a letter and not ending "
               "with '-'", "gpu-l4")
"""Names end up in cloud resource names (EKS node groups, GKE pools) and Kubernetes labels, with a
prefix added; 24 characters leaves room for the prefix within every provider's limit."""

KubernetesVersion = pattern(r"^1\.(2[89]|3[0-9])$", "a Kubernetes minor version from 1.28, in quotes", "1.33")

AWS_REGION_PATTERN = r"^(?:us-gov|us-iso[bf]?|eu-isoe|eusc-de|[a-z]{2})-[a-z]+-[1-9][0-9]*$"
"""AWS region names (``us-west-2``, ``us-gov-west-1``): every partition's ``regionRegex`` in botocore's
partitions.json, in one pattern."""
GCP_REGION_PATTERN = r"^[a-z]+-[a-z]+[0-9]+$"
"""Google Cloud region names: ``<location>-<direction><number>`` (``europe-west4``, ``us-central1``)."""
AwsRegion = pattern(AWS_REGION_PATTERN, "an AWS region name", "us-west-2")
GcpRegion = pattern(GCP_REGION_PATTERN, "a Google Cloud region name", "europe-west4")
Cidr = pattern(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$", "an IPv4 range in CIDR notation", "10.0.0.0/16")
Duration = pattern(r"^[1-9][0-9]*(h|d|w|y)$", "a whole number of hours (h), days (d), weeks (w) or years (y)",
                   "15d")
WeightsUri = pattern(r"^(hf://[A-Za-z0-9][-\w.]{0,95}/[A-Za-z0-9][-\w.]{0,95}"
                     r"|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?|gs://[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9](/\S*)?)$",
                     "hf://ORG/MODEL (a Hugging Face repository), or s3://BUCKET/PREFIX or gs://BUCKET/PREFIX "
                     "(a bucket name is 3 to 63 lowercase letters, digits, '-' and '.')",
                     "hf://meta-llama/Llama-3.1-8B-Instruct")
Timestamp = pattern(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", "an RFC 3339 time in UTC", "2026-01-03T01:00:00Z")
Token = pattern(r"^\S+$", "one flag or one value, without spaces (a flag and its value are two items, or one "
                "joined by '=')", "--enable-prefix-caching")
GcpProject = pattern(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$",
                     "a Google Cloud project id: 6 to 30 lowercase letters, digits and '-', starting with a letter",
                     "ml-platform-prod")


class Model(BaseModel):
    """Base of every config model: strict keys, camelCase aliases, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        frozen=True,
        validate_default=True,
    )


Fraction = Annotated[float, Field(gt=0, le=1)]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a stack's configuration."""

    path: str
    """The key, as written in the stack file: ``neurodock:nodePools[1].gpu.count``."""
    message: str
    """What is wrong and what is allowed."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


PLAIN_KEY = re.compile(r'[^.\[\]"]+')
"""A key that Pulumi's ``--path`` syntax writes after a dot; others are written ``["a.b"]``."""


def key_path(loc: Iterable[str | int], namespace: str = CONFIG_NAMESPACE) -> str:
    """``("nodePools", 1, "gpu")`` -> ``neurodock:nodePools[1].gpu``, as ``pulumi config set --path`` takes it
    (``neurodock:tags["cost.center"]``)."""
    out = namespace + ":"
    first = True
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not PLAIN_KEY.fullmatch(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += part if first else f".{part}"
        first = False
    return out


def count_noun(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def cidr_problem(cidr: str) -> str | None:
    try:
        ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        try:
            network = ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            return f"{cidr!r} is not a valid IPv4 range ({exc}), e.g. '10.0.0.0/16'"
        return f"{cidr!r} has bits set after its /{network.prefixlen}: the range that holds it is {network}"
    return None


NOT_INTERNET = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"))
"""Ranges no request from the internet comes from (RFC 6890: "this network", private, shared carrier-grade NAT,
loopback, link-local)."""
INTERNET_ALLOWLIST_ADDRESSES = 2**24
"""An allow-list admitting more internet addresses than a /8 holds (16.8 million) is the internet in all but name:
the largest block any one organisation holds is a legacy /8, so wider lists are other people's addresses, and two
/1 halves are 0.0.0.0/0 written twice."""


def allowlist_breadth_problem(cidrs: Iterable[str], what: str) -> str | None:
    """A problem when ``cidrs`` together admit more internet addresses than :data:`INTERNET_ALLOWLIST_ADDRESSES`,
    however they are split; ``what`` is what they open (``the API server``)."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.IPv4Network(cidr, strict=False))
        except ValueError:
            continue  # reported on the entry
    merged = list(ipaddress.collapse_addresses(networks))
    public = sum(n.num_addresses - sum(min(n.num_addresses, p.num_addresses) for p in NOT_INTERNET
                                       if n.overlaps(p)) for n in merged)
    if public <= INTERNET_ALLOWLIST_ADDRESSES:
        return None
    if merged == [ipaddress.IPv4Network("0.0.0.0/0")]:
        wide = "cover the whole IPv4 space, as 0.0.0.0/0 does"
    else:
        wide = (f"admit {public:,} internet addresses ({public / 2**32:.1%} of them), more than the "
                f"{INTERNET_ALLOWLIST_ADDRESSES:,} of a /8")
    return f"together these ranges {wide}, which opens {what} to the internet; list only your own egress ranges"


def decode(value: Any) -> Any:
    """Pulumi passes structured config values to programs as JSON text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


__all__ = [
    "AWS_REGION_PATTERN",
    "CONFIG_NAMESPACE",
    "GCP_REGION_PATTERN",
    "INTERNET_ALLOWLIST_ADDRESSES",
    "NOT_INTERNET",
    "PATTERN_HINTS",
    "PLAIN_KEY",
    "VARIANTS",
    "AwsRegion",
    "Cidr",
    "ConfigError",
    "Duration",
    "Fraction",
    "GcpProject",
    "GcpRegion",
    "KubernetesVersion",
    "Model",
    "Name",
    "Problem",
    "Timestamp",
    "Token",
    "WeightsUri",
    "allowlist_breadth_problem",
    "cidr_problem",
    "count_noun",
    "decode",
    "key_path",
    "pattern"
]


def is_secure(value: Any) -> bool:
    """Pulumi's rule for a stack file's secret as written there: a mapping whose only key is ``secure``, holding
    text (the ciphertext, which only Pulumi can decrypt)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str)


REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository: where the stack files are, and what ``canary.evalSuite`` paths are relative to."""

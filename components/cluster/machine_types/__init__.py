"""Every machine type the clouds offer, so a typo in any pool's type (a system pool's too) is caught before
`pulumi up` asks the cloud for it.

- ``ec2.txt``: the ``InstanceType`` enum of botocore 1.44.5's EC2 model (``data/ec2/2016-11-15/service-2.json``).
- ``gce.txt``: Compute Engine's predefined machine types as ``gcloud compute machine-types list`` returns them
  (all zones, 2026-07-01). Custom machine types follow a pattern instead (Google's custom machine type samples).

Both trail launches: a type newer than the list is refused until it is added here. The header of each file
names its source.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from importlib.resources import files

GCE_CUSTOM = re.compile(r"(?:custom|(?:n1|n2|n2d|n4|e2)-custom)-\d+-\d+(?:-ext)?|e2-custom-(?:micro|small|medium)-\d+")
"""``n2-custom-8-32768``: a custom machine type of the series that offer them (vCPUs, then MiB)."""

LISTS = {"eks": "ec2.txt", "gke": "gce.txt"}
SOURCES = {"eks": "botocore 1.44.5's list of EC2 instance types",
           "gke": "Compute Engine's list of machine types (2026-07-01)"}
"""Where each list comes from, as messages name it."""


@cache
def known(provider: str) -> frozenset[str]:
    """The machine types of ``provider`` (``eks`` or ``gke``)."""
    text = files(__package__).joinpath(LISTS[provider]).read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def exists(provider: str, machine: str) -> bool:
    return machine in known(provider) or (provider == "gke" and GCE_CUSTOM.fullmatch(machine) is not None)


def did_you_mean(provider: str, machine: str) -> list[str]:
    """The closest known types, best first."""
    return difflib.get_close_matches(machine, sorted(known(provider)), n=3, cutoff=0.75)

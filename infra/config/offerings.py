"""What the clouds offer today: EKS regions, Google Cloud regions and zones, and the Kubernetes versions EKS and
GKE support, read from the data files in ``infra/config/data`` (each with its source and the date it was read),
so a region, zone or version the cloud does not offer is refused before ``pulumi up`` asks for it."""

from __future__ import annotations

import difflib
import json
import re
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).with_name("data")
"""The data files: ``aws_regions.json``, ``gcp_zones.json``, ``eks_versions.json``, ``gke_versions.json``."""
STALE_AFTER_DAYS = 180
"""Data read longer ago than this is stale: a test warns (the refresh procedure is in each file)."""


@cache
def offering(name: str) -> dict[str, Any]:
    """The data file ``name`` (``eks_versions``), as a mapping with ``source``, ``read`` and ``refresh``."""
    return json.loads((DATA_DIR / f"{name}.json").read_text())


def minor_version(version: str) -> tuple[int, int]:
    """A Kubernetes version's major and minor numbers, for comparing: ``"1.34"``, ``"1.34.1-gke.1200"`` -> (1, 34)."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def utc_today() -> date:
    """Today in UTC+0, the time zone of the clouds' support calendars."""
    return datetime.now(UTC).date()


def _read(name: str) -> str:
    return f"{offering(name)['read']}, infra/config/data/{name}.json"


def _close(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def eks_regions() -> list[str]:
    return sorted(r for regions in offering("aws_regions")["eksRegions"].values() for r in regions)


def aws_region_problem(region: str) -> str | None:
    """EKS must be offered in ``region`` (botocore's endpoint list)."""
    known = eks_regions()
    if region in known:
        return None
    return (f"AWS offers EKS in no region {region!r}; {_close(region, known)}EKS regions: {', '.join(known)} "
            f"(botocore's endpoint list, read {_read('aws_regions')}, where a region opened since is added)")


def gcp_region_problem(region: str) -> str | None:
    known = sorted(offering("gcp_zones")["regions"])
    if region in known:
        return None
    return (f"Google Cloud has no region {region!r}; {_close(region, known)}regions: {', '.join(known)} "
            f"(Compute Engine's region list, read {_read('gcp_zones')}, where a region opened since is added)")


def gcp_zone_problem(region: str, zone: str) -> str | None:
    """``zone`` is one of ``region``'s zones, or one of its AI zones (``us-central1-ai1a``: accelerator capacity,
    not in the public zone list). A region whose zones the data does not hold gets its zones' form checked."""
    zones = offering("gcp_zones")["regions"].get(region)
    if re.fullmatch(re.escape(region) + r"-ai[0-9]+[a-z]", zone):
        return None
    if zones is None:
        if re.fullmatch(re.escape(region) + r"-[a-z]", zone):
            return None
        return (f"zone {zone!r} is not a zone of region {region!r}; Google Cloud zones are the region, '-' and a "
                f"letter, e.g. '{region}-b'")
    if zone in zones:
        return None
    return (f"zone {zone!r} is not a zone of region {region!r}; Google Cloud zones are the region, '-' and a letter, "
            f"and {region}'s are {', '.join(zones)} (Compute Engine's zone list, read {_read('gcp_zones')})")


def _versions(name: str) -> dict[str, dict[str, str | None]]:
    return offering(name)["versions"]


def _supported(name: str, on: date) -> list[str]:
    """Versions in standard support ``on`` a day, with the day it ends."""
    out = []
    for version, dates in sorted(_versions(name).items(), key=lambda kv: minor_version(kv[0])):
        end = dates["endOfStandardSupport"]
        if end is None or on < date.fromisoformat(end):
            out.append(f"{version} (until {end})" if end else f"{version} (no end announced)")
    return out


def eks_version_problem(version: str, support_type: str, on: date | None = None) -> str | None:
    """EKS must offer ``version``; past its standard support only with ``supportType: EXTENDED`` (EKS User Guide:
    "You cannot disable extended support once your cluster has entered it", and with STANDARD "it will be
    automatically upgraded" at the end of standard support, so the stack would then ask EKS to downgrade it);
    past extended support not at all (EKS "doesn't allow control planes to stay on a version that reached end of
    extended support")."""
    on = on or utc_today()
    dates = _versions("eks_versions").get(version)
    supported = ", ".join(_supported("eks_versions", on))
    if dates is None:
        return (f"EKS does not offer Kubernetes {version}; versions in standard support: {supported} (EKS release "
                f"calendar, read {_read('eks_versions')})")
    standard, extended = (date.fromisoformat(dates[k]) for k in ("endOfStandardSupport", "endOfExtendedSupport"))
    if on >= extended:
        return (f"EKS ended extended support for {version} on {extended}, and no cluster may stay on it; use a version "
                f"in standard support: {supported}")
    if on >= standard and support_type == "STANDARD":
        return (f"standard support for {version} ended on {standard}: with supportType STANDARD EKS upgrades the "
                f"control plane itself (and extended support cannot be turned off once a cluster is in it), so the "
                f"stack would ask EKS to downgrade it; use a version in standard support: {supported}, or set "
                f"supportType to EXTENDED to stay on {version} until {extended} at the extended-support charge")
    return None


def gke_version_problem(version: str, on: date | None = None) -> str | None:
    """The release channels (RAPID, REGULAR, STABLE) offer only versions in standard support; the Extended channel,
    which keeps older ones, is not one the stack offers."""
    on = on or utc_today()
    dates = _versions("gke_versions").get(version)
    supported = ", ".join(_supported("gke_versions", on))
    if dates is None:
        return (f"GKE does not offer Kubernetes {version}; versions in standard support: {supported} (GKE release "
                f"schedule, read {_read('gke_versions')})")
    end = dates["endOfStandardSupport"]
    if end is not None and on >= date.fromisoformat(end):
        return (f"GKE ended standard support for {version} on {end}, so no release channel offers it; use a version "
                f"in standard support: {supported}, or remove kubernetesVersion for the channel's default")
    return None


def stale_data(on: date | None = None) -> list[str]:
    """The data files read longer ago than :data:`STALE_AFTER_DAYS`, each with its age and refresh procedure."""
    on = on or utc_today()
    out = []
    for path in sorted(DATA_DIR.glob("*.json")):
        data = offering(path.stem)
        age = (on - date.fromisoformat(data["read"])).days
        if age > STALE_AFTER_DAYS:
            out.append(f"infra/config/data/{path.name} was read {age} days ago ({data['read']}): {data['refresh']}")
    return out


__all__ = [
    "DATA_DIR", "STALE_AFTER_DAYS", "aws_region_problem", "eks_regions", "eks_version_problem", "gcp_region_problem",
    "gcp_zone_problem", "gke_version_problem", "offering", "stale_data", "utc_today"
]

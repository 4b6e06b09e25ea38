"""The price catalogue: list prices per machine type and region, and the fixed costs a stack creates, each row
naming its source and the date it was read. ``data/prices.json`` is the one home of every price; its machine rows
are rebuilt by ``components.cost.refresh`` and its fixed rows are kept by hand (docs/cost.md, "Refreshing the
catalogue").

Prices are USD list prices before any discount (savings plans, committed use, enterprise agreements), taxes and
usage-based charges (data processed, requests, egress), which the estimate leaves out and says so.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).parent / "data" / "prices.json"
HOURS_PER_MONTH = 730
"""The month both clouds' calculators use: 365 days x 24 hours / 12."""
STALE_AFTER_DAYS = 90
"""A catalogue not refreshed for this long is flagged in every plan that shows a cost."""

CLOUDS = {"eks": "aws", "gke": "gcp"}
"""NeuroDock's ``cloud.provider`` and the catalogue's cloud keys; kind costs nothing."""


@dataclass(frozen=True, kw_only=True)
class Source:
    id: str
    url: str
    kind: str
    """``official`` (the provider's own page or file), ``aws-generated`` (AWS's generator over its Price List API)
    or ``secondary`` (a third party's compilation of official data: confirm before billing on it)."""
    what: str
    as_of: str
    """When the source's figures were published or generated."""
    read: str
    """When NeuroDock read them."""


@dataclass(frozen=True, kw_only=True)
class MachinePrice:
    machine: str
    region: str
    on_demand: float
    """USD per node-hour."""
    spot: float | None
    """The provider's published Spot price per node-hour, where it publishes one (Google does; AWS's moves with the
    market and has no list price)."""
    source: Source


@dataclass(frozen=True, kw_only=True)
class FixedPrice:
    key: str
    usd: float
    unit: str
    """``hour``, ``month`` or ``GiB-month``."""
    what: str
    source: Source
    caveat: str = ""

    @property
    def hourly(self) -> float:
        return self.usd / HOURS_PER_MONTH if self.unit == "month" else self.usd


class Catalogue:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.read = datetime.date.fromisoformat(document["read"])
        self.sources = {key: Source(id=key, url=s["url"], kind=s["kind"], what=s["what"], as_of=s["asOf"],
                                    read=s["read"])
                        for key, s in document["sources"].items()}

    def machine(self, cloud: str, region: str, machine: str) -> MachinePrice | None:
        row = self.document["machines"].get(cloud, {}).get(region, {}).get(machine)
        if row is None:
            return None
        return MachinePrice(machine=machine, region=region, on_demand=row["onDemand"], spot=row.get("spot"),
                            source=self.sources[row["source"]])

    def regions(self, cloud: str, machine: str | None = None) -> list[str]:
        """Regions with prices for ``cloud`` (that price ``machine``)."""
        return sorted(r for r, rows in self.document["machines"].get(cloud, {}).items()
                      if machine is None or machine in rows)

    def unpriced(self, cloud: str, machine: str) -> str | None:
        """Why a machine NeuroDock accepts has no price in any source the catalogue reads."""
        return self.document["unpriced"].get(cloud, {}).get(machine)

    def fixed(self, key: str) -> FixedPrice:
        row = self.document["fixed"][key]
        return FixedPrice(key=key, usd=row["usd"], unit=row["unit"], what=row["what"],
                          source=self.sources[row["source"]], caveat=row.get("caveat", ""))

    def storage(self, cloud: str, kind: str, region: str) -> tuple[float, Source] | None:
        """USD per GiB-month of a disk type (``gp3``, ``pd-balanced``...) or a bucket class in ``region``."""
        row = self.document["storage"].get(cloud, {}).get(kind)
        if row is None:
            return None
        per = row["perGiBMonth"]
        usd = per.get(region, per.get("*"))
        return None if usd is None else (usd, self.sources[row["source"]])

    def age_days(self, today: datetime.date) -> int:
        return (today - self.read).days

    def staleness(self, today: datetime.date) -> str | None:
        """A warning when the catalogue was last refreshed more than ``STALE_AFTER_DAYS`` ago."""
        age = self.age_days(today)
        if age <= STALE_AFTER_DAYS:
            return None
        return (f"the price catalogue was last refreshed {self.read.isoformat()}, {age} days ago (over "
                f"{STALE_AFTER_DAYS}): prices may have moved; refresh it (docs/cost.md, \"Refreshing the catalogue\")")


@cache
def load(path: Path = DATA_FILE) -> Catalogue:
    return Catalogue(json.loads(path.read_text()))


__all__ = [
    "CLOUDS",
    "DATA_FILE",
    "HOURS_PER_MONTH",
    "STALE_AFTER_DAYS",
    "Catalogue",
    "FixedPrice",
    "MachinePrice",
    "Source",
    "load",
]

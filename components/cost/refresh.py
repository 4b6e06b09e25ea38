"""Rebuild the machine rows of ``data/prices.json`` from the price sources the catalogue names.

The fixed costs (control planes, NAT, load balancers, disks, buckets, keys) are read by hand from the providers'
pricing pages and kept as they are; this rebuilds only the machine and disk rows, the part too large to copy by
hand. Run from the repository root::

    python -m components.cost.refresh \\
        --aws-karpenter zz_generated.pricing_aws.go --aws-karpenter-commit SHA --aws-karpenter-date YYYY-MM-DD \\
        --gcp-pricing pricing.yml --gcp-pricing-commit SHA --gcp-pricing-date YYYY-MM-DD \\
        [--aws-offer index.json ...]

Sources, in the order a row is taken from (a later one replaces an earlier one's row):

- ``--aws-karpenter``: ``pkg/providers/pricing/zz_generated.pricing_aws.go`` of aws/karpenter-provider-aws, which AWS
  generates from the Price List API (Linux, shared tenancy, no pre-installed software, capacity status Used,
  on-demand; ``pkg/providers/pricing/pricing.go``). It covers us-east-1 only.
- ``--aws-offer``: an AWS Price List bulk offer file for any region
  (``https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/REGION/index.json``; format:
  docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/bulk-api-reading-price-list-files.html), read with the same
  filters; the row cites the file's ``publicationDate``. This is the official source, and how a region other than
  us-east-1 enters the catalogue.
- ``--gcp-pricing``: ``pricing.yml`` of Cyclenerd/google-cloud-pricing-cost-calculator, a third-party sum of each
  machine type's vCPU, memory, GPU and bundled local SSD SKUs from Google's Cloud Billing Catalog API, per region,
  on-demand and Spot. Secondary: confirm a row against the Catalog API before anyone bills on it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from components.cost.catalogue import DATA_FILE
from components.gpu.catalog import EKS_INSTANCE_TYPES, GKE_MACHINE_TYPES, takes_attached_gpus

AWS_FAMILIES = ("m5.", "m5a.", "m6i.", "m6a.", "m7i.", "m7a.", "c6i.", "c7i.", "r6i.", "r7i.", "t3.")
"""General-purpose EC2 families kept beside the GPU instance types, for system and CPU pools."""
GCP_FAMILIES = ("e2-standard-", "e2-highmem-", "n2-standard-", "n2d-standard-", "n4-standard-", "c3-standard-",
                "n1-standard-", "n1-highmem-")
"""General-purpose GCE families kept beside the GPU machine types (n1 carries attached T4s)."""
GCP_DISKS = {"pd-balanced": "balanced", "pd-ssd": "ssd", "pd-standard": "hdd"}
"""GKE's ``diskType`` values and pricing.yml's ``compute.storage`` keys."""

_KARPENTER_ROW = re.compile(r'"([a-z0-9-]+\.[a-z0-9-]+)":\s*([0-9.]+)')
_KARPENTER_REGION = re.compile(r'^\s*"([a-z]{2}(?:-[a-z]+)+-\d)":\s*\{', re.M)
_KARPENTER_GENERATED = re.compile(r"// generated at (\S+) for")


def wanted_aws(name: str) -> bool:
    return name in EKS_INSTANCE_TYPES or name.startswith(AWS_FAMILIES)


def wanted_gcp(name: str) -> bool:
    return (name in GKE_MACHINE_TYPES or name.startswith(GCP_FAMILIES)
            or takes_attached_gpus(name))


def karpenter_rows(text: str) -> tuple[str, dict[str, dict[str, float]]]:
    """(generated-at, region -> instance type -> on-demand USD/h) of Karpenter's generated price table."""
    generated = _KARPENTER_GENERATED.search(text)
    rows: dict[str, dict[str, float]] = {}
    starts = list(_KARPENTER_REGION.finditer(text))
    for i, start in enumerate(starts):
        body = text[start.end():starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        rows[start.group(1)] = {name: float(price) for name, price in _KARPENTER_ROW.findall(body) if wanted_aws(name)}
    return (generated.group(1) if generated else ""), rows


def offer_rows(offer: dict[str, Any]) -> tuple[str, str, dict[str, float]]:
    """(region, publication date, instance type -> on-demand USD/h) of an AWS Price List offer file, with the
    filters Karpenter's generator applies."""
    skus: dict[str, str] = {}
    for sku, product in offer.get("products", {}).items():
        a = product.get("attributes", {})
        if (product.get("productFamily") == "Compute Instance" and wanted_aws(a.get("instanceType", ""))
                and a.get("operatingSystem") == "Linux" and a.get("tenancy") == "Shared"
                and a.get("preInstalledSw") == "NA" and a.get("capacitystatus") == "Used"
                and a.get("marketoption", "OnDemand") == "OnDemand"):
            skus[sku] = a["instanceType"]
    prices: dict[str, float] = {}
    for sku, instance_type in skus.items():
        for term in offer.get("terms", {}).get("OnDemand", {}).get(sku, {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = float(dimension.get("pricePerUnit", {}).get("USD", 0))
                if dimension.get("unit") == "Hrs" and usd > 0:
                    prices[instance_type] = usd
    regions = {p.get("attributes", {}).get("regionCode") for p in offer.get("products", {}).values()} - {None}
    region = offer.get("regionCode") or (regions.pop() if len(regions) == 1 else "")
    return region, str(offer.get("publicationDate", ""))[:10], prices


def gcp_rows(document: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """region -> machine type -> {onDemand, spot} USD/h from Cyclenerd's pricing.yml."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for machine, entry in sorted(document["compute"]["instance"].items()):
        if not wanted_gcp(machine):
            continue
        for region, cost in (entry.get("cost") or {}).items():
            if cost.get("hour"):
                row = {"onDemand": round(float(cost["hour"]), 6)}
                if cost.get("hour_spot"):
                    row["spot"] = round(float(cost["hour_spot"]), 6)
                out.setdefault(region, {})[machine] = row
    return out


def gcp_disk_rows(document: dict[str, Any]) -> dict[str, dict[str, float]]:
    """disk type (and ``gcs-standard``, a regional Standard bucket) -> region -> USD per GiB-month."""
    storage = document["compute"]["storage"]
    disks = {disk: {region: round(float(c["month"]), 6) for region, c in (storage[key].get("cost") or {}).items()
                    if c.get("month")}
             for disk, key in GCP_DISKS.items() if key in storage}
    bucket = document.get("storage", {}).get("bucket", {}).get("standard", {}).get("cost") or {}
    disks["gcs-standard"] = {region: round(float(c["month"]), 6) for region, c in bucket.items() if c.get("month")}
    return disks


def rebuild(catalogue: dict[str, Any], *, karpenter: tuple[str, str, str] | None,
            offers: Iterable[dict[str, Any]], gcp: tuple[dict[str, Any], str, str] | None,
            today: datetime.date) -> dict[str, Any]:
    out = dict(catalogue)
    sources = dict(out.get("sources", {}))
    machines = {cloud: dict(rows) for cloud, rows in out.get("machines", {}).items()}
    if karpenter:
        text, commit, date = karpenter
        generated, regions = karpenter_rows(text)
        source = f"karpenter-{commit[:10]}"
        sources[source] = {
            "url": ("https://github.com/aws/karpenter-provider-aws/blob/"
                    f"{commit}/pkg/providers/pricing/zz_generated.pricing_aws.go"),
            "kind": "aws-generated",
            "what": ("On-demand Linux prices AWS generates for Karpenter from the Price List API "
                     f"(generated at {generated})."),
            "asOf": date, "read": today.isoformat()}
        for region, rows in regions.items():
            machines.setdefault("aws", {})[region] = {n: {"onDemand": p, "source": source}
                                                      for n, p in sorted(rows.items())}
    for offer in offers:
        region, published, rows = offer_rows(offer)
        source = f"aws-price-list-{region}-{published}"
        sources[source] = {
            "url": f"https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/{region}/index.json",
            "kind": "official", "what": "AWS Price List bulk offer file (on-demand, Linux, shared tenancy).",
            "asOf": published, "read": today.isoformat()}
        machines.setdefault("aws", {})[region] = {n: {"onDemand": p, "source": source} for n, p in sorted(rows.items())}
    storage = dict(out.get("storage", {}))
    if gcp:
        document, commit, date = gcp
        source = f"cyclenerd-{commit[:10]}"
        sources[source] = {
            "url": f"https://github.com/Cyclenerd/google-cloud-pricing-cost-calculator/blob/{commit}/pricing.yml",
            "kind": "secondary",
            "what": ("Per machine type and region: the sum of its vCPU, memory, GPU and bundled local SSD SKUs from "
                     "Google's Cloud Billing Catalog API, on-demand and Spot, compiled by the third-party project "
                     f"(generated {document.get('about', {}).get('generated', '?')})."),
            "asOf": date, "read": today.isoformat()}
        machines["gcp"] = {region: {n: {**row, "source": source} for n, row in sorted(rows.items())}
                           for region, rows in sorted(gcp_rows(document).items())}
        storage["gcp"] = {disk: {"perGiBMonth": regions, "source": source}
                          for disk, regions in gcp_disk_rows(document).items()}
    out.update(read=today.isoformat(), sources=sources, machines=machines, storage=storage)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.cost.refresh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aws-karpenter", type=Path)
    parser.add_argument("--aws-karpenter-commit", default="")
    parser.add_argument("--aws-karpenter-date", default="")
    parser.add_argument("--aws-offer", type=Path, action="append", default=[])
    parser.add_argument("--gcp-pricing", type=Path)
    parser.add_argument("--gcp-pricing-commit", default="")
    parser.add_argument("--gcp-pricing-date", default="")
    parser.add_argument("--out", type=Path, default=DATA_FILE)
    args = parser.parse_args(argv)
    karpenter_args = (args.aws_karpenter_commit, args.aws_karpenter_date)
    for flag, path, extra in (("--aws-karpenter", args.aws_karpenter, karpenter_args),
                              ("--gcp-pricing", args.gcp_pricing, (args.gcp_pricing_commit, args.gcp_pricing_date))):
        if path is not None and not all(extra):
            print(f"{flag} needs its -commit and -date: the rows cite both", file=sys.stderr)
            return 2
    current = json.loads(args.out.read_text()) if args.out.is_file() else {}
    karpenter = ((args.aws_karpenter.read_text(), args.aws_karpenter_commit, args.aws_karpenter_date)
                 if args.aws_karpenter else None)
    gcp = ((yaml.load(args.gcp_pricing.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)),
            args.gcp_pricing_commit, args.gcp_pricing_date) if args.gcp_pricing else None)
    offers = (json.loads(p.read_bytes()) for p in args.aws_offer)
    rebuilt = rebuild(current, karpenter=karpenter, offers=offers, gcp=gcp, today=datetime.date.today())
    args.out.write_text(json.dumps(rebuilt, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

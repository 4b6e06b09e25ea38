"""What a stack costs: the price catalogue, each pool's and model's cost at minimum and maximum scale, the fixed
costs, the decode roofline and $/Mtok, the budget policy (through `neurodock check` and the pack's own process)
and the diff's cost delta. Expected figures are computed here by hand from the catalogue's rows (europe-west4,
Cyclenerd's pricing.yml of 2026-07-30; fixed fees from the providers' pages), not read from the estimate."""

from __future__ import annotations

import datetime
import json

import pytest

from components.cost import refresh
from components.cost.catalogue import HOURS_PER_MONTH, STALE_AFTER_DAYS, load
from components.cost.estimate import CostResource, stack_cost
from components.gpu.catalog import EKS_INSTANCE_TYPES, GKE_MACHINE_TYPES, GPU_MODELS, MEMORY_BANDWIDTH_GBS
from infra.cost import cost_delta, plan_cost
from infra.diff import diff_plans
from tests.conftest import SHIPPED_STACKS, plan_with, run_cli, stack_document
from tests.test_policy_pack_server import mandatory, offline, seeded, stack_findings

# europe-west4 rows of the catalogue, USD: machines per node-hour, pd-balanced per GiB-month.
G2_STANDARD_16 = 1.205773
A3_HIGHGPU_8G = 112.540479
E2_STANDARD_8 = 0.295088
PD_BALANCED = 0.11
GKE_FEE, NAT_PER_VM, KMS_VERSION_MONTH = 0.10, 0.0014, 0.06

# prod's pools: (nodes min, max), node-hour with its boot disk (diskSizeGib; the system pool's default 100 GiB).
L4_NODE = G2_STANDARD_16 + 200 * PD_BALANCED / HOURS_PER_MONTH
H100_NODE = A3_HIGHGPU_8G + 500 * PD_BALANCED / HOURS_PER_MONTH
SYSTEM_NODE = E2_STANDARD_8 + 100 * PD_BALANCED / HOURS_PER_MONTH


@pytest.fixture(scope="module")
def prod_cost(shipped_plans):
    return plan_cost(shipped_plans["prod"], datetime.date(2026, 12, 6))


def test_a_pool_costs_its_node_price_with_its_disk_times_its_nodes_at_each_end(prod_cost):
    pool = prod_cost.stack.pool("gpu-l4")
    assert pool.machines == ("g2-standard-16",) and (pool.min_nodes, pool.max_nodes) == (2, 9)
    assert pool.hourly("minimum") == pytest.approx(2 * 1.235910, abs=1e-5)
    assert pool.hourly("maximum") == pytest.approx(9 * 1.235910, abs=1e-5)
    assert pool.hourly("maximum") * HOURS_PER_MONTH == pytest.approx(8119.93, abs=0.01)
    assert pool.node_hourly_low == pool.node_hourly and not pool.spot


def test_a_spot_pool_spans_googles_spot_price_to_on_demand_and_reads_numbers_as_crossguard_sends_them():
    # A protobuf Struct carries only doubles: CrossGuard hands the pack 9.0, not 9.
    pool = CostResource(type="gcp:container/nodePool:NodePool", name="cluster-gpu-l4", props={
        "location": "europe-west4", "nodeLocations": ["europe-west4-b", "europe-west4-c"],
        "autoscaling": {"totalMinNodeCount": 0.0, "totalMaxNodeCount": 9.0, "locationPolicy": "ANY"},
        "nodeConfig": {"machineType": "g2-standard-16", "spot": True, "diskSizeGb": 200.0,
                       "guestAccelerators": [{"type": "nvidia-l4", "count": 1.0}],
                       "labels": {"neurodock.io/pool": "gpu-l4"}}})
    [cost] = stack_cost([pool], load()).pools
    assert (cost.name, cost.min_nodes, cost.max_nodes, cost.gpus_per_node) == ("gpu-l4", 0, 9, 1)
    assert cost.node_hourly == pytest.approx(L4_NODE)  # the ceiling: on-demand
    assert cost.node_hourly_low == pytest.approx(0.63274 + 200 * PD_BALANCED / HOURS_PER_MONTH)  # Google's Spot


def test_the_stack_total_is_its_pools_and_its_fixed_costs(prod_cost):
    stack = prod_cost.stack
    fixed = {f.what.split(",")[0].split(" (")[0]: f for f in stack.fixed}
    nat = next(f for f in stack.fixed if f.what.startswith("Cloud NAT"))
    # Cloud NAT bills per VM using it (6 nodes at the floor, 18 at the ceiling), under its 32-VM cap.
    assert (nat.hourly_min, nat.hourly_max) == (pytest.approx(6 * NAT_PER_VM), pytest.approx(18 * NAT_PER_VM))
    assert sum(f.hourly_min for f in stack.fixed) == pytest.approx(GKE_FEE + 6 * NAT_PER_VM
                                                                   + KMS_VERSION_MONTH / HOURS_PER_MONTH)
    assert len(fixed) == 3
    low = 3 * SYSTEM_NODE + 2 * L4_NODE + 1 * H100_NODE + GKE_FEE + 6 * NAT_PER_VM + KMS_VERSION_MONTH / 730
    high = 6 * SYSTEM_NODE + 9 * L4_NODE + 3 * H100_NODE + GKE_FEE + 18 * NAT_PER_VM + KMS_VERSION_MONTH / 730
    assert stack.hourly("minimum") == pytest.approx(low) == pytest.approx(116.1266, abs=1e-4)
    assert stack.hourly("maximum") == pytest.approx(high) == pytest.approx(350.9569, abs=1e-4)
    assert stack.monthly("maximum") == pytest.approx(high * 730)
    assert stack.unpriced == ()


def test_a_models_roofline_and_price_per_million_tokens_by_hand(prod_cost):
    eight_b, seventy_b = prod_cost.models
    # Llama 3.1 8B in bf16: 8.03e9 parameters x 2 bytes; its KV cache 2 (K, V) x 32 layers x 8 KV heads x 128 x
    # 2 bytes = 131072 bytes a token, for 2 sequences of 8192 tokens; one L4 reads both at 300 GB/s per step.
    step = (8.03e9 * 2 + 2 * 8192 * 131072) / 300e9
    assert eight_b.roofline.tokens_per_s == pytest.approx(2 / step, rel=0.005)  # ~33 tokens/s
    assert eight_b.replica_hourly == pytest.approx(L4_NODE)
    assert eight_b.usd_per_mtok == pytest.approx(L4_NODE / (2 / step * 3600) * 1e6, rel=0.005)  # ~$10.4
    # Its canary (1) and shadow (1) replicas count with its own 2..6.
    assert (eight_b.replicas_min, eight_b.replicas_max) == (4, 8)
    # Llama 3.3 70B over 4 H100s (tensor parallel): each GPU reads a quarter of the 70.6e9 x 2 bytes and a quarter
    # of the KV heads (80 layers x 8 x 128 x 2 x 2 bytes a token / 4) for 48 sequences of 8192, at 3350 GB/s.
    step = (70.6e9 * 2 / 4 + 48 * 8192 * 80 * 8 * 128 * 2 * 2 / 4) / 3350e9
    assert seventy_b.roofline.tensor_parallel == 4
    assert seventy_b.roofline.tokens_per_s == pytest.approx(48 / step, rel=0.005)
    assert seventy_b.replica_hourly == pytest.approx(H100_NODE / 2)  # its 4 GPUs are half an a3-highgpu-8g
    assert seventy_b.usd_per_mtok == pytest.approx(H100_NODE / 2 / (48 / step * 3600) * 1e6, rel=0.005)


def test_kind_costs_nothing_and_the_plan_says_so_nowhere(shipped_plans):
    assert plan_cost(shipped_plans["dev"]) is None


def test_the_plan_prints_the_cost_and_its_json_carries_it(shipped_plans):
    from infra.plan.render import cost_json, cost_text

    text = "\n".join(cost_text(shipped_plans["prod"]))
    assert "pool gpu-l4: 2-9 x g2-standard-16" in text
    assert "total: $116/h $84,772/mo .. $351/h $256,199/mo" in text
    assert "llama-3-1-8b: 4-8 replicas x $1.24/h" in text and "-> >= $10.42 per million tokens at full load" in text
    document = cost_json(shipped_plans["prod"])
    assert document["total"]["maximum"]["monthly"] == pytest.approx(350.9569 * 730, abs=0.1)
    assert {p["name"] for p in document["pools"]} == {"system", "gpu-l4", "gpu-h100"}
    assert all(s["url"].startswith("https://") and s["asOf"] and s["read"] for s in document["sources"])


# --- the catalogue -------------------------------------------------------------------------------------------


def test_every_price_row_cites_a_dated_source():
    catalogue = load()
    document = catalogue.document
    for cloud, regions in document["machines"].items():
        for region, rows in regions.items():
            for machine, row in rows.items():
                source = catalogue.sources[row["source"]]  # KeyError: a row without a known source
                assert source.url.startswith("https://") and source.as_of and source.read, (cloud, region, machine)
                assert row["onDemand"] > 0 and row.get("spot", 1) > 0
    for key in document["fixed"]:
        price = catalogue.fixed(key)
        assert price.source.url.startswith("https://") and price.usd > 0 and price.unit in ("hour", "month")
    for cloud, kinds in document["storage"].items():
        for kind, row in kinds.items():
            assert catalogue.sources[row["source"]].read, (cloud, kind)


UNPRICED = {("aws", "p5e.48xlarge"), ("gcp", "a3-ultragpu-8g"), ("gcp", "nvidia-tesla-t4")}
"""What NeuroDock accepts and no source read prices, each with its reason in the catalogue (docs/cost.md)."""


def test_every_gpu_machine_neurodock_accepts_has_a_price_or_a_stated_reason():
    catalogue = load()
    missing = set()
    for cloud, machines in (("aws", EKS_INSTANCE_TYPES), ("gcp", GKE_MACHINE_TYPES)):
        for machine in machines:
            if not catalogue.regions(cloud, machine):
                missing.add((cloud, machine))
                assert catalogue.unpriced(cloud, machine), f"{cloud} {machine} is accepted and has no price"
    # A T4 on n1 is priced as its machine only: the GPU itself has no row.
    missing.add(("gcp", "nvidia-tesla-t4"))
    assert catalogue.unpriced("gcp", "nvidia-tesla-t4")
    assert missing == UNPRICED, "a machine gained or lost a price: update UNPRICED and docs/cost.md"
    assert set(GPU_MODELS) == set(MEMORY_BANDWIDTH_GBS), "every GPU model needs its memory bandwidth"


@pytest.mark.parametrize("stack", [s for s in SHIPPED_STACKS if s in ("prod", "prod-dr", "staging")])
def test_every_shipped_cloud_stack_is_priced_whole_and_within_its_budget(shipped_plans, stack):
    cost = plan_cost(shipped_plans[stack], datetime.date(2026, 12, 6))
    assert cost.stack.unpriced == (), cost.stack.unpriced
    assert all(p.node_hourly for p in cost.stack.pools)
    assert cost.budget_usd is not None and cost.verdict is None


def test_a_catalogue_over_ninety_days_old_warns_and_names_the_refresh():
    catalogue = load()
    fresh = catalogue.read + datetime.timedelta(days=STALE_AFTER_DAYS)
    assert catalogue.staleness(fresh) is None
    warning = catalogue.staleness(fresh + datetime.timedelta(days=1))
    assert f"{STALE_AFTER_DAYS + 1} days ago" in warning and "docs/cost.md" in warning


def test_the_refresh_reads_karpenters_table_an_offer_file_and_the_gcp_compilation():
    text = ('// generated at 2026-07-20T13:07:37Z for us-east-1\n'
            'var initialOnDemandPrices = concurrent.NewMap...{\n\t"us-east-1": {\n\t\t// g6 family\n'
            '\t\t"g6.xlarge": 0.804800,\n\t\t"x8g.large": 0.2,\n\t\t"m7i.xlarge": 0.201600,\n\t},\n}\n')
    generated, rows = refresh.karpenter_rows(text)
    assert generated == "2026-07-20T13:07:37Z"
    assert rows == {"us-east-1": {"g6.xlarge": 0.8048, "m7i.xlarge": 0.2016}}  # x8g is no family NeuroDock uses
    linux = {"instanceType": "g6.xlarge", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
             "capacitystatus": "Used", "regionCode": "us-west-2"}
    offer = {"publicationDate": "2026-11-30T00:00:00Z", "products": {
        "A": {"productFamily": "Compute Instance", "attributes": linux},
        "B": {"productFamily": "Compute Instance", "attributes": {**linux, "operatingSystem": "Windows"}}},
        "terms": {"OnDemand": {
            "A": {"A.T": {"priceDimensions": {"A.T.D": {"unit": "Hrs", "pricePerUnit": {"USD": "0.8048000000"}}}}},
            "B": {"B.T": {"priceDimensions": {"B.T.D": {"unit": "Hrs", "pricePerUnit": {"USD": "1.9"}}}}}}}}
    assert refresh.offer_rows(offer) == ("us-west-2", "2026-11-30", {"g6.xlarge": 0.8048})
    gcp = {"compute": {"instance": {
        "g2-standard-16": {"cost": {"europe-west4": {"hour": 1.205773, "hour_spot": 0.63274}}},
        "m1-ultramem-40": {"cost": {"europe-west4": {"hour": 6.3}}}}}}
    assert refresh.gcp_rows(gcp) == {"europe-west4": {"g2-standard-16": {"onDemand": 1.205773, "spot": 0.63274}}}


# --- the budget --------------------------------------------------------------------------------------------------


def test_a_stack_over_its_budget_fails_check_naming_its_dearest_pools(write_stack):
    document = stack_document("prod")
    document["config"]["neurodock:budget"] = {"monthlyUsd": 100000}
    result = run_cli("check", "prod", "--stack-file", str(write_stack(document)), "--json")
    assert result.returncode == 1, result.stderr
    [violation] = [v for v in json.loads(result.stdout)["violations"] if v["enforcement"] == "mandatory"]
    assert violation["policy"] == "stack-within-budget"
    assert "$256,199" in violation["message"] and "$100,000" in violation["message"]
    assert "pool 'gpu-h100' runs" in violation["message"] and "llama-3-3-70b" in violation["message"]
    # Controls, by the same policy on the shipped plan: its own budget passes `neurodock check` (test_policies:
    # every shipped stack checks clean), and this budget judged idle (the floor, $84,772 a month) keeps it.


def test_a_budget_judged_at_minimum_scale_holds_the_stack_at_its_floor(shipped_plans):
    idle = seeded(shipped_plans["prod"], _budget_label("100000", scale="minimum"))
    assert offline(idle, "stack-within-budget") == []
    assert offline(seeded(shipped_plans["prod"], _budget_label("43000", scale="minimum")), "stack-within-budget")


def _budget_label(amount: str, scale: str = "maximum"):
    def change(r) -> None:
        if r.type == "gcp:container/cluster:Cluster":
            for props in (r.wire, r.state, r.inputs):
                props["resourceLabels"] = {**props.get("resourceLabels", {}), "neurodock-budget-monthly-usd": amount,
                                           "neurodock-budget-scale": scale}
    return change


def test_the_pack_process_refuses_a_stack_over_budget_as_offline_and_passes_the_shipped_one(pack, shipped_plans):
    prod = shipped_plans["prod"]
    over = seeded(prod, _budget_label("100000"))
    found = mandatory(stack_findings(pack, over))
    assert found and found == offline(over, "stack-within-budget")
    assert "over its budget of $100,000 (neurodock:budget.monthlyUsd)" in found[0][2]
    assert mandatory(stack_findings(pack, seeded(prod, lambda r: None))) == []


def test_the_budget_rides_on_the_cluster_resource_only(shipped_plans):
    prod = shipped_plans["prod"]
    [cluster] = [r for r in prod.resources if r.type == "gcp:container/cluster:Cluster"]
    assert cluster.inputs["resourceLabels"]["neurodock-budget-monthly-usd"] == "260000"
    others = [r for r in prod.resources if r.type != "gcp:container/cluster:Cluster"
              and "neurodock-budget-monthly-usd" in json.dumps(r.inputs)]
    assert others == []


# --- the diff ----------------------------------------------------------------------------------------------------


def test_the_diff_shows_what_a_pool_edit_costs(shipped_plans, write_stack):
    def more_l4(config):
        config["neurodock:nodePools"][1]["maxNodes"] = 10

    edited = plan_with(write_stack, "prod", more_l4)
    delta = diff_plans(shipped_plans["prod"], edited).cost
    [pool] = delta["pools"]
    assert pool["name"] == "gpu-l4"
    assert pool["delta"] == [0.0, pytest.approx(L4_NODE * 730, abs=0.01)]  # one more L4 node at the ceiling
    # Cloud NAT bills the 21st VM too.
    assert delta["total"]["delta"][1] == pytest.approx((L4_NODE + NAT_PER_VM) * 730, abs=0.02)
    assert delta["models"] == []  # no model's replicas changed


def test_the_cost_delta_of_a_new_pool_and_of_kind():
    side = {"pools": [{"name": "a", "cost": {"minimum": {"monthly": 10.0}, "maximum": {"monthly": 20.0}}}],
            "models": [], "fixed": [], "unpriced": [],
            "total": {"minimum": {"monthly": 10.0}, "maximum": {"monthly": 20.0}}}
    assert cost_delta(None, None) is None
    added = cost_delta(None, side)
    assert added["pools"] == [{"name": "a", "a": [0.0, 0.0], "b": [10.0, 20.0], "delta": [10.0, 20.0]}]
    assert added["total"]["delta"] == [10.0, 20.0]
    assert cost_delta(side, side)["pools"] == []


# --- the dashboards' running cost ---------------------------------------------------------------------------------


def test_the_running_cost_rules_price_each_pools_machine_as_the_plan_does(shipped_plans):
    from infra.cost import node_prices

    prices = {(p.pool, p.instance_type): p for p in node_prices(shipped_plans["prod"].config)}
    assert set(prices) == {("system", "e2-standard-8"), ("gpu-l4", "g2-standard-16"), ("gpu-h100", "a3-highgpu-8g")}
    assert prices["gpu-l4", "g2-standard-16"].usd_per_hour == pytest.approx(L4_NODE)
    assert (prices["gpu-h100", "a3-highgpu-8g"].usd_per_hour, prices["gpu-h100", "a3-highgpu-8g"].devices) == (
        pytest.approx(H100_NODE), 8)
    assert prices["system", "e2-standard-8"].devices == 0
    assert node_prices(shipped_plans["dev"].config) == ()
    # The program installs them, and kube-state-metrics exports the label they match nodes by.
    [rule] = [r for r in shipped_plans["prod"].resources
              if r.type.endswith(":PrometheusRule") and r.name == "alerts-cost"]
    [cost] = [g for g in rule.inputs["spec"]["groups"] if g["name"] == "neurodock-cost"]
    assert f"{L4_NODE:.6f} * max by" in json.dumps(cost["rules"])
    assert "node.kubernetes.io/instance-type" in json.dumps(shipped_plans["prod"].outputs) or any(
        "node.kubernetes.io/instance-type" in json.dumps(r.inputs) for r in shipped_plans["prod"].resources
        if r.type == "kubernetes:helm.sh/v3:Release")


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_the_readmes_figures_are_the_plans(shipped_plans, stack):
    from infra.plan.stackfile import REPO_ROOT

    cost = plan_cost(shipped_plans[stack], datetime.date(2026, 12, 6))
    figures = f"${cost.stack.monthly('minimum'):,.0f} .. ${cost.stack.monthly('maximum'):,.0f}"
    for page in ("README.md", "docs/cost.md"):
        assert figures in (REPO_ROOT / page).read_text(), (page, figures)

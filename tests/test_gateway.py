"""The gateway: one OpenAI endpoint routing on the request's model, weighted canaries, mirrored
shadows, exposure and authentication from config, and the smoke test that runs after each
deployment. Checked on the rendered objects of offline plans, and the smoke test's program against
a local stand-in for the gateway."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from components.gateway import smoke_check
from components.gateway.gateway import BUCKET_LUA, MODEL_HEADER
from components.gateway.keys import SMOKE_TEST_CLIENT, parse_api_keys
from components.versions import AI_GATEWAY, ENVOY_GATEWAY
from infra.plan.mocks import SECRET
from tests.conftest import SHIPPED_STACKS, model_servers, of_type, plan_with, release_of
from tests.pss import violations

GATEWAY_NS = "neurodock-gateway"
SERVING_NS = "neurodock-serving"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def manifests(plan, kind: str, namespace: str | None = None) -> list[dict]:
    return [r.manifest for r in plan.manifests if r.manifest["kind"] == kind
            and (namespace is None or r.manifest["metadata"].get("namespace") == namespace)]


def route_of(plan, served_name: str) -> dict:
    [route] = [r for r in manifests(plan, "HTTPRoute", SERVING_NS)
               if r["metadata"]["annotations"]["neurodock.io/served-name"] == served_name]
    return route


def service_selecting(plan, name: str) -> dict:
    [service] = [s for s in manifests(plan, "Service", SERVING_NS) if s["metadata"]["name"] == name]
    return service


def picker_config_of(plan, pool: dict) -> tuple[dict, list[str]]:
    """The EndpointPickerConfig and the container arguments of the picker the pool names."""
    picker_ref = pool["spec"]["endpointPickerRef"]
    [service] = [s for s in manifests(plan, "Service", SERVING_NS) if s["metadata"]["name"] == picker_ref["name"]]
    [picker] = [d for d in manifests(plan, "Deployment", SERVING_NS)
                if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    pod = picker["spec"]["template"]["spec"]
    [container] = pod["containers"]
    config_file = container["args"][container["args"].index("--config-file") + 1].removeprefix("/config/")
    [config_map] = [c for c in manifests(plan, "ConfigMap", SERVING_NS)
                    if c["metadata"]["name"] == pod["volumes"][0]["configMap"]["name"]]
    return yaml.safe_load(config_map["data"][config_file]), container["args"]


def gateway_set_headers(plan) -> dict[str, str]:
    """The headers the gateway sets on every request before any filter (ClientTrafficPolicy)."""
    [policy] = manifests(plan, "ClientTrafficPolicy", GATEWAY_NS)
    return {h["name"].lower(): h["value"] for h in policy["spec"]["headers"]["earlyRequestHeaders"].get("set", [])}


def _selects(selector: dict, pod_labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist)."""
    ops = {"In": lambda k, vs: pod_labels.get(k) in vs, "NotIn": lambda k, vs: pod_labels.get(k) not in vs,
           "Exists": lambda k, _: k in pod_labels, "DoesNotExist": lambda k, _: k not in pod_labels}
    return (selector.get("matchLabels", {}).items() <= pod_labels.items()
            and all(ops[e["operator"]](e["key"], e.get("values", [])) for e in selector.get("matchExpressions", [])))


def pool_named(plan, name: str) -> dict:
    [pool] = [p for p in manifests(plan, "InferencePool", SERVING_NS) if p["metadata"]["name"] == name]
    return pool


def pool_choice(plan, pool_name: str, ready: set[str] | None = None) -> tuple[set[str], str | None]:
    """What the pool's picker may send to, by variant, and the variant it sends to whatever the replicas'
    load (None: no variant always wins), with only the ``ready`` variants' replicas ready (default all).

    The picker at v0.10.0: the pool's pods that are Ready (pkg/epp/controller/pod_reconciler.go:98), through its
    profile's filters, the highest weighted sum of scores (each 0-1; pkg/epp/scheduling/scheduler_profile.go).
    Only the configured filter and scorer types modelled here are allowed; the chart's default scorers are taken
    at their worst for the preferred replica: it must win even when it scores 0 on all of them and the others 1."""
    eligible, chosen = _decision(plan, pool_name, ready)
    return set(eligible), chosen


def _decision(plan, pool_name: str, ready: set[str] | None) -> tuple[dict[str, dict], str | None]:
    """``pool_choice``, with the eligible variants' pod labels."""
    pool = pool_named(plan, pool_name)
    config, _ = picker_config_of(plan, pool)
    plugins = {p.get("name", p["type"]): p for p in config["plugins"]}
    pods = {}
    for d in manifests(plan, "Deployment", SERVING_NS):
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        if _selects(pool["spec"]["selector"], pod_labels):
            assert pod_labels["neurodock.io/variant"] not in pods, (pool_name, "two Deployments of one variant")
            pods[pod_labels["neurodock.io/variant"]] = pod_labels
    headers = gateway_set_headers(plan)
    eligible = dict(pods)
    affinity: dict[str, float] = dict.fromkeys(pods, 0.0)
    others = 0.0
    [profile] = config["schedulingProfiles"]
    for entry in profile["plugins"]:
        plugin = plugins[entry["pluginRef"]]
        if plugin["type"] == "label-selector-filter":
            eligible = {v: lab for v, lab in eligible.items() if _selects(plugin["parameters"], lab)}
        elif plugin["type"] == "header-label-affinity-scorer":
            wanted = headers.get(plugin["parameters"]["headerName"].lower())
            key = plugin["parameters"]["labelKey"]
            for v, lab in pods.items():
                affinity[v] += entry["weight"] * (wanted is not None and lab.get(key) == wanted)
        else:
            assert plugin["type"] in {"queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer"}, plugin
            others += entry["weight"]
    candidates = {v for v in eligible if ready is None or v in ready}
    winners = [v for v in candidates if all(affinity[v] > affinity[o] + others for o in candidates - {v})]
    return eligible, (winners[0] if winners else None)


def variant_in_pool(plan, pool_name: str) -> tuple[str, str]:
    """The variant and instance of the model-server Deployment the pool's picker sends to while every
    replica is ready: exactly one, whatever else runs in the namespace."""
    eligible, chosen = _decision(plan, pool_name, None)
    assert chosen is not None, (pool_name, set(eligible))
    return chosen, eligible[chosen]["app.kubernetes.io/instance"]


def variant_behind(plan, service_name: str) -> str:
    """The variant label of the Deployment a Service sends to."""
    selector = service_selecting(plan, service_name)["spec"]["selector"]
    [deployment] = [d for d in manifests(plan, "Deployment", SERVING_NS)
                    if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    return deployment["metadata"]["labels"]["neurodock.io/variant"]


# -- The gateway itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_stack_installs_a_pinned_gateway_reachable_in_cluster_only(shipped_plans, stack):
    plan = shipped_plans[stack]
    [release] = [r for r in plan.releases if r.chart == ENVOY_GATEWAY]
    assert release.namespace == GATEWAY_NS
    [gateway_class] = manifests(plan, "GatewayClass")
    [proxy] = manifests(plan, "EnvoyProxy", GATEWAY_NS)
    assert gateway_class["spec"]["parametersRef"]["name"] == proxy["metadata"]["name"]
    # Envoy Gateway's default is a LoadBalancer: not exposed to the internet unless asked.
    assert proxy["spec"]["provider"]["kubernetes"]["envoyService"]["type"] == "ClusterIP"
    [gateway] = manifests(plan, "Gateway", GATEWAY_NS)
    assert gateway["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    [listener] = gateway["spec"]["listeners"]
    assert (listener["protocol"], listener["port"]) == ("HTTP", 80)
    allowed = listener["allowedRoutes"]["namespaces"]["selector"]["matchExpressions"][0]["values"]
    assert set(allowed) == {GATEWAY_NS, SERVING_NS}
    assert plan.outputs["gatewayUrl"] == "http://neurodock-gateway.neurodock-gateway.svc.cluster.local:80/v1"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_body_based_router_feeds_the_model_header_to_routing(shipped_plans, stack):
    plan = shipped_plans[stack]
    [policy] = manifests(plan, "EnvoyExtensionPolicy", GATEWAY_NS)
    [ext] = policy["spec"]["extProc"]
    [ref] = ext["backendRefs"]
    [router_service] = [s for s in manifests(plan, "Service", GATEWAY_NS) if s["metadata"]["name"] == ref["name"]]
    assert router_service["spec"]["ports"][0]["port"] == ref["port"]
    assert ext["processingMode"]["request"]["body"] == "Buffered" and ext["failOpen"] is False
    [router] = [d for d in manifests(plan, "Deployment", GATEWAY_NS)
                if router_service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert "--secure-serving=false" in router["spec"]["template"]["spec"]["containers"][0]["args"]
    # Long prompts fit the buffer the router reads.
    [traffic] = manifests(plan, "ClientTrafficPolicy", GATEWAY_NS)
    # Under the body-based router's 4 MiB gRPC limit (grpc-go's default, which it keeps), with room for framing.
    assert traffic["spec"]["connection"]["bufferLimit"] == "3968Ki"
    # The router leaves a client's model header in place when the body names no model: it is removed
    # before any filter or route sees it, so only the router's own value routes; so are the canary's
    # bucket and the picker's choice of replica.
    assert traffic["spec"]["headers"]["earlyRequestHeaders"]["remove"] == [
        "X-Gateway-Model-Name", "X-Gateway-Base-Model-Name", "x-neurodock-bucket", "x-gateway-destination-endpoint"]
    # The bucket is set on every request, before the router's processor chooses the route again.
    [lua] = policy["spec"]["lua"]
    assert lua["inline"] == BUCKET_LUA


def test_envoy_gateway_crds_are_applied_on_every_chart_bump_not_only_the_first_install(shipped_plans, tmp_path):
    from components.charts import ChartSource
    from components.versions import ENVOY_GATEWAY
    from infra import charts

    plan = shipped_plans["staging"]
    release = release_of(plan, ENVOY_GATEWAY)
    assert release.inputs["skipCrds"] is True
    patches = [r for r in plan.resources
               if r.type == "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinitionPatch"]
    names = {r.manifest["metadata"]["name"] for r in patches}
    assert {"httproutes.gateway.networking.k8s.io", "clienttrafficpolicies.gateway.envoyproxy.io",
            "envoyproxies.gateway.envoyproxy.io"} <= names
    assert all(r.manifest["metadata"]["annotations"]["pulumi.com/patchForce"] == "true" for r in patches)
    # Deleting a Patch would strip a CRD's required fields: a destroy leaves them behind instead.
    assert all(r.options["retainOnDelete"] for r in patches)
    assert {r.urn for r in patches} <= set(release.options["dependsOn"])
    # The plan renders no chart CRD for the release any more: the program's own are what is applied.
    assert not [o for o in plan.chart_objects if o.release == "envoy-gateway" and o.kind == "CustomResourceDefinition"]
    # Control: without the package at hand, the release installs them itself.
    assert charts.crds(ChartSource(ENVOY_GATEWAY, None)) == ()



def test_the_gateway_and_so_its_proxy_pods_wait_for_the_ai_gateways_mutating_webhook(shipped_plans):
    plan = shipped_plans["staging"]
    [gateway] = of_type(plan, "kubernetes:gateway.networking.k8s.io/v1:Gateway")
    assert release_of(plan, AI_GATEWAY).urn in gateway.options["dependsOn"]

@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_unmatched_requests_get_the_model_list_or_an_openai_404(shipped_plans, stack):
    plan = shipped_plans[stack]
    [fallback] = manifests(plan, "HTTPRoute", GATEWAY_NS)
    filters = {f["metadata"]["name"]: f["spec"]["directResponse"] for f in manifests(plan, "HTTPRouteFilter")}
    listing, catch_all = fallback["spec"]["rules"]
    assert listing["matches"] == [{"path": {"type": "Exact", "value": "/v1/models"}, "method": "GET"}]
    models = filters[listing["filters"][0]["extensionRef"]["name"]]
    assert models["statusCode"] == 200
    assert [m["id"] for m in json.loads(models["body"]["inline"])["data"]] == [
        m.model_name for m in plan.config.models]
    missing = filters[catch_all["filters"][0]["extensionRef"]["name"]]
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"]["inline"])["error"]["code"] == "model_not_found"


# -- Routes, canaries, shadows -------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_each_model_has_a_route_on_its_served_name_to_its_stable_pool(shipped_plans, stack):
    plan = shipped_plans[stack]
    for model in plan.config.models:
        route = route_of(plan, model.model_name)
        assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                                "name": "neurodock", "namespace": GATEWAY_NS}]
        stable = route["spec"]["rules"][0]
        [match] = stable["matches"]
        assert match["headers"] == [{"type": "Exact", "name": MODEL_HEADER, "value": model.model_name}]
        [ref] = stable["backendRefs"]
        assert (ref["group"], ref["kind"]) == ("inference.networking.k8s.io", "InferencePool")
        assert variant_in_pool(plan, ref["name"]) == ("stable", model.name)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_pool_has_a_pinned_restricted_picker_that_scores_queue_kv_and_prefix(shipped_plans, stack):
    plan = shipped_plans[stack]
    pools = manifests(plan, "InferencePool", SERVING_NS)
    assert len(pools) == sum(1 + (m.canary is not None) for m in plan.config.models)
    for pool in pools:
        picker_ref = pool["spec"]["endpointPickerRef"]
        assert pool["spec"]["targetPorts"] == [{"number": 8000}]
        [service] = [s for s in manifests(plan, "Service", SERVING_NS) if s["metadata"]["name"] == picker_ref["name"]]
        assert picker_ref["port"]["number"] in {p["port"] for p in service["spec"]["ports"]}
        [picker] = [d for d in manifests(plan, "Deployment", SERVING_NS)
                    if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        pod = picker["spec"]["template"]["spec"]
        assert violations(pod, "restricted") == []
        [container] = pod["containers"]
        assert container["image"] == "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0"
        args = container["args"]
        assert args[args.index("--pool-name") + 1] == pool["metadata"]["name"]
        config_file = args[args.index("--config-file") + 1].removeprefix("/config/")
        [config_map] = [c for c in manifests(plan, "ConfigMap", SERVING_NS)
                        if c["metadata"]["name"] == pod["volumes"][0]["configMap"]["name"]]
        config = yaml.safe_load(config_map["data"][config_file])
        assert config["featureGates"] == ["flowControl"]
        # The chart's three scorers; a canary's picker adds its fallback (test_prod_canary_share_falls_back...).
        extra = {"stable-or-canary", "prefer-canary"} if pool["metadata"]["name"].endswith("-canary") else set()
        assert {p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]} == {
            "queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer", *extra}
        # Models that never scale to zero keep the picker's default hold (60 s) for a saturated pool; every
        # queue is bounded well below the picker's memory limit (held bodies are kept raw and parsed).
        assert "defaultRequestTTL" not in config["flowControl"]
        limit = container["resources"]["limits"]["memory"]
        assert limit.endswith("Mi") and config["flowControl"]["maxBytes"].endswith("Mi")
        assert int(config["flowControl"]["maxBytes"][:-2]) * 4 <= int(limit[:-2])
        assert 0 < config["flowControl"]["maxRequests"] <= 5000
        # The picker reads the replicas' /metrics: their NetworkPolicy lets it in.
        variant, _ = variant_in_pool(plan, pool["metadata"]["name"])
        assert variant in {"stable", "canary"}


def test_prod_splits_the_8b_model_between_two_pools_and_mirrors_to_the_shadow(shipped_plans):
    from components.gateway.gateway import BUCKET_HEADER
    from components.gateway.routes import canary_buckets

    plan = shipped_plans["prod"]
    stable, canary = route_of(plan, LLAMA_8B)["spec"]["rules"]
    assert variant_in_pool(plan, stable["backendRefs"][0]["name"])[0] == "stable"
    assert variant_in_pool(plan, canary["backendRefs"][0]["name"])[0] == "canary"
    # The canary rule is the stable one plus the bucket: more specific, so routed first, for 10 of 100 buckets.
    model, bucket = canary["matches"][0]["headers"]
    assert model == stable["matches"][0]["headers"][0]
    assert bucket == {"type": "RegularExpression", "name": BUCKET_HEADER, "value": canary_buckets(10)}
    regex = re.compile(bucket["value"])
    assert [b for b in range(100) if regex.search(str(b))] == list(range(10))
    assert not regex.search("10") and not regex.search("1x")
    for rule in (stable, canary):
        [mirror] = [f for f in rule["filters"] if f["type"] == "RequestMirror"]
        assert mirror["requestMirror"]["percent"] == 5
        ref = mirror["requestMirror"]["backendRef"]
        assert ref["kind"] == "Service" and variant_behind(plan, ref["name"]) == "shadow"
    # No picker sends to the shadow's pods: clients never see its answers.
    assert {variant_in_pool(plan, p["metadata"]["name"])[0] for p in manifests(plan, "InferencePool")} == {
        "stable", "canary"}
    for pool in manifests(plan, "InferencePool"):
        assert "shadow" not in pool_choice(plan, pool["metadata"]["name"])[0]


def test_prod_canary_share_falls_back_to_stable_while_the_canary_has_no_ready_replica(shipped_plans):
    from components.gateway.gateway import PREFER_HEADER

    plan = shipped_plans["prod"]
    stable_rule, canary_rule = route_of(plan, LLAMA_8B)["spec"]["rules"]
    canary_pool, stable_pool = canary_rule["backendRefs"][0]["name"], stable_rule["backendRefs"][0]["name"]
    # Its one replica ready, the canary gets its share; draining, evicted or crashed, the stable version does,
    # never the shadow; with neither, nothing (the picker holds, then 503).
    assert pool_choice(plan, canary_pool) == ({"stable", "canary"}, "canary")
    assert pool_choice(plan, canary_pool, ready={"stable", "shadow"})[1] == "stable"
    assert pool_choice(plan, canary_pool, ready={"shadow"})[1] is None
    # The stable pool never sends to the canary, even with no stable replica ready.
    assert pool_choice(plan, stable_pool) == ({"stable"}, "stable")
    assert pool_choice(plan, stable_pool, ready={"canary", "shadow"})[1] is None
    # The canary's pool selects the stable and canary servers by their route label, which the shadow's lack; on an
    # upgrade that adds the label, the pool's selector changes only once both servers carry it.
    routed = [r for r in plan.manifests if r.manifest["kind"] == "Deployment"
              and r.manifest["spec"]["template"]["metadata"]["labels"].get("neurodock.io/route") == "llama-3-1-8b"]
    assert sorted(r.manifest["metadata"]["labels"]["neurodock.io/variant"] for r in routed) == ["canary", "stable"]
    [pool] = [r for r in plan.manifests if r.manifest["kind"] == "InferencePool"
              and r.manifest["metadata"]["name"] == canary_pool]
    assert {r.urn for r in routed} <= set(pool.dependencies)
    [stable_pool_res] = [r for r in plan.manifests if r.manifest["kind"] == "InferencePool"
                         and r.manifest["metadata"]["name"] == stable_pool]
    assert not {r.urn for r in routed} & set(stable_pool_res.dependencies)
    # The preference needs the gateway's header on every request, set before the picker's filter runs.
    assert gateway_set_headers(plan)[PREFER_HEADER] == "canary"
    # The preference scorer is Alpha at the pinned picker: only the canary's picker allows experimental plugins.
    for pool, allowed in ((canary_pool, True), (stable_pool, False)):
        assert ("--allow-experimental-plugins=true" in picker_config_of(plan, pool_named(plan, pool))[1]) is allowed
    # The canary's picker reads every replica it may choose: their NetworkPolicies let it in.
    [canary_pod] = [d["spec"]["template"]["metadata"]["labels"] for d in manifests(plan, "Deployment", SERVING_NS)
                    if d["metadata"]["name"].startswith(f"{canary_pool}-epp")]
    for variant in ("stable", "canary"):
        [server] = [d for d in model_servers(plan, variant) if "llama-3-1-8b" in d.manifest["metadata"]["name"]]
        server_labels = server.manifest["spec"]["template"]["metadata"]["labels"]
        [policy] = [n for n in manifests(plan, "NetworkPolicy", SERVING_NS)
                    if n["spec"]["podSelector"]["matchLabels"].items() <= server_labels.items()
                    and n["spec"]["podSelector"]["matchLabels"]]
        peers = [peer.get("podSelector", {}).get("matchLabels", {}) for rule in policy["spec"]["ingress"]
                 for peer in rule.get("from", [])]
        assert any(peer and peer.items() <= canary_pod.items() for peer in peers), variant
    # The 70B model has neither.
    [rule_70b] = route_of(plan, "meta-llama/Llama-3.3-70B-Instruct")["spec"]["rules"]
    assert [f["type"] for f in rule_70b["filters"]] == ["RequestHeaderModifier"]


def test_prod_variants_run_their_own_flags_at_a_fixed_size_serving_the_same_name(shipped_plans):
    plan = shipped_plans["prod"]
    for variant, batch in (("canary", "16384"), ("shadow", "4096")):
        [deployment] = model_servers(plan, variant)
        assert deployment.manifest["spec"]["replicas"] == 1
        command = deployment.manifest["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[command.index("--max-num-batched-tokens") + 1] == batch
        # The same OpenAI model name, so the same requests are valid on every variant.
        assert command[command.index("--served-model-name") + 1] == LLAMA_8B
    # Only the stable version autoscales, on its own queue: the variants' pods are outside the query.
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in manifests(plan, "ScaledObject")}
    assert not scaled & {d.manifest["metadata"]["name"] for v in ("canary", "shadow") for d in model_servers(plan, v)}
    [query] = [s["spec"]["triggers"][0]["metadata"]["query"] for s in manifests(plan, "ScaledObject")
               if s["spec"]["scaleTargetRef"]["name"].startswith("llama-3-1-8b-")]
    pods = re.compile(re.search(r'pod=~"([^"]+)"', query).group(1))
    for variant in ("stable", "canary", "shadow"):
        [d] = [d for d in model_servers(plan, variant) if "llama-3-1-8b" in d.manifest["metadata"]["name"]]
        pod_name = d.manifest["metadata"]["name"] + "-5d9c7b8f6-x2x4q"
        assert bool(pods.fullmatch(pod_name)) is (variant == "stable"), variant


def test_rollback_is_a_weight_of_zero_and_promotion_removes_the_canary(write_stack):
    def rollback(config):
        config["neurodock:models"][0]["canary"]["weight"] = 0

    plan = plan_with(write_stack, "prod", rollback)
    [stable] = route_of(plan, LLAMA_8B)["spec"]["rules"]
    assert variant_in_pool(plan, stable["backendRefs"][0]["name"])[0] == "stable"

    def promote(config):
        model = config["neurodock:models"][0]
        model["engineArgs"] = {"extraArgs": model.pop("canary")["extraArgs"]}

    plan = plan_with(write_stack, "prod", promote)
    [rule] = route_of(plan, LLAMA_8B)["spec"]["rules"]
    [only] = rule["backendRefs"]
    assert variant_in_pool(plan, only["name"])[0] == "stable"
    assert model_servers(plan, "canary") == []
    [stable] = [d for d in model_servers(plan) if d.manifest["metadata"]["labels"]["app.kubernetes.io/instance"]
                == "llama-3-1-8b"]
    assert "16384" in stable.manifest["spec"]["template"]["spec"]["containers"][0]["command"]


def test_a_canary_may_run_another_image_without_touching_the_stable_one(write_stack):
    def new_image(config):
        config["neurodock:models"][0]["canary"]["image"] = "vllm/vllm-openai:v0.29.0"

    plan = plan_with(write_stack, "prod", new_image)
    [canary] = model_servers(plan, "canary")
    assert canary.manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.29.0"
    stable_images = {d.manifest["spec"]["template"]["spec"]["containers"][0]["image"] for d in model_servers(plan)}
    assert "vllm/vllm-openai:v0.29.0" not in stable_images


# -- Exposure, TLS, API keys -------------------------------------------------------------------------


def test_a_public_gateway_is_a_load_balancer_limited_to_its_allow_list(write_stack):
    def public(config):
        config["neurodock:gateway"] = {"public": True, "allowedCidrs": ["203.0.113.0/24"], "tls": True}
        secure(config, "gatewayTlsCert", "gatewayTlsKey", "gatewayApiKeys")  # required of a public gateway

    plan = plan_with(write_stack, "dev", public)
    [proxy] = manifests(plan, "EnvoyProxy", GATEWAY_NS)
    service = proxy["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service["type"] == "LoadBalancer"
    assert service["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert service["externalTrafficPolicy"] == "Local"


def secure(config: dict, *keys: str) -> None:
    for key in keys:
        config[f"neurodock:{key}"] = {"secure": "v1:AAAABBBB"}


def test_api_keys_turn_on_key_authentication_and_the_smoke_test_gets_its_own_key(write_stack):
    plan = plan_with(write_stack, "dev", lambda c: secure(c, "gatewayApiKeys"))
    [policy] = manifests(plan, "SecurityPolicy", GATEWAY_NS)
    auth = policy["spec"]["apiKeyAuth"]
    # OpenAI clients send `Authorization: Bearer KEY`; Envoy strips the Bearer prefix.
    assert auth["extractFrom"] == [{"headers": ["authorization"]}]
    assert auth["sanitize"] is True
    [credentials] = auth["credentialRefs"]
    [keys] = [r for r in of_type(plan, "kubernetes:core/v1:Secret") if r.id.endswith(credentials["name"])
              or r.manifest["metadata"]["name"] == credentials["name"]]
    assert keys.inputs["stringData"] == SECRET
    [job] = manifests(plan, "Job", GATEWAY_NS)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "key"


def test_without_api_keys_there_is_no_key_policy(shipped_plans):
    assert manifests(shipped_plans["prod"], "SecurityPolicy") == []


def test_tls_serves_https_with_the_certificate_from_secrets(write_stack):
    def tls(config):
        config["neurodock:gateway"] = {"tls": True}
        secure(config, "gatewayTlsCert", "gatewayTlsKey")

    plan = plan_with(write_stack, "dev", tls)
    [gateway] = manifests(plan, "Gateway", GATEWAY_NS)
    [listener] = gateway["spec"]["listeners"]
    assert (listener["protocol"], listener["port"], listener["tls"]["mode"]) == ("HTTPS", 443, "Terminate")
    [ref] = listener["tls"]["certificateRefs"]
    [certificate] = [s for s in manifests(plan, "Secret", GATEWAY_NS) if s["metadata"]["name"] == ref["name"]]
    assert certificate["type"] == "kubernetes.io/tls"
    assert plan.outputs["gatewayUrl"].startswith("https://")
    [job] = manifests(plan, "Job", GATEWAY_NS)
    pod = job["spec"]["template"]["spec"]
    assert {"name": "CA_FILE", "value": "/tls/tls.crt"} in pod["containers"][0]["env"]
    assert any(v.get("secret", {}).get("secretName") == ref["name"] for v in pod["volumes"])


@pytest.mark.parametrize("text", ["not json", "[]", "{}", '{"a": "short"}', '{"a": 5}',
                                  json.dumps({SMOKE_TEST_CLIENT: "k" * 20}),
                                  json.dumps({"team a": "k" * 20}), json.dumps({"team/a": "k" * 20}),
                                  json.dumps({"..": "k" * 20}), json.dumps({"..team": "k" * 20})])
def test_bad_api_key_documents_are_refused_with_the_config_key(text):
    with pytest.raises(ValueError, match="neurodock:gatewayApiKeys"):
        parse_api_keys(text)


def test_api_key_document_maps_clients_to_keys():
    assert parse_api_keys('{"team-a": "sk-0123456789abcdef"}') == {"team-a": "sk-0123456789abcdef"}


def test_without_the_gateway_nothing_of_it_is_planned(write_stack):
    plan = plan_with(write_stack, "dev", lambda c: c.update({"neurodock:gateway": {"enabled": False}}))
    kinds = {r.manifest["kind"] for r in plan.manifests}
    assert not kinds & {"Gateway", "GatewayClass", "HTTPRoute", "Job", "EnvoyProxy"}
    assert "gatewayUrl" not in plan.outputs


# -- Smoke test ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_smoke_test_asks_every_model_through_the_gateway_and_is_awaited(shipped_plans, stack):
    plan = shipped_plans[stack]
    [job] = [j for j in of_type(plan, "kubernetes:batch/v1:Job") if j.manifest["metadata"]["namespace"] == GATEWAY_NS]
    spec = job.manifest["spec"]
    pod = spec["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["GATEWAY_URL"] == plan.outputs["gatewayUrl"]
    assert json.loads(env["MODELS"]) == [m.model_name for m in plan.config.models if m.min_replicas > 0]
    # Pulumi waits for the Job to complete and fails the update if it fails.
    assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert job.options["customTimeouts"]["create"] == f"{spec['activeDeadlineSeconds'] + 60}s"
    assert job.manifest["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"
    # It runs after the routes and the model servers exist.
    routes = {r.urn for r in of_type(plan, "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")}
    smoke = next(r for r in plan.resources if r.type == "neurodock:gateway:SmokeTest")
    assert routes and routes <= set(smoke.options["dependsOn"])
    # Depending on the catalog component means depending on every resource in it.
    servers = {d.urn for v in ("stable", "canary", "shadow") for d in model_servers(plan, v)}
    assert servers and servers <= set(smoke.options["dependsOn"])


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_gateway_pods_we_run_meet_pod_security_restricted(shipped_plans, stack):
    plan = shipped_plans[stack]
    pods = [d["spec"]["template"]["spec"]
            for d in manifests(plan, "Deployment", GATEWAY_NS) + manifests(plan, "Job", GATEWAY_NS)]
    assert len(pods) == 2
    for pod in pods:
        assert violations(pod, "restricted") == []


def test_a_serving_change_runs_the_smoke_test_again_and_no_change_does_not(write_stack, shipped_plans):
    def job_name(plan) -> str:
        [job] = manifests(plan, "Job", GATEWAY_NS)
        return job["metadata"]["name"]

    same = plan_with(write_stack, "prod", lambda c: None)
    assert job_name(same) == job_name(shipped_plans["prod"])
    moved = plan_with(write_stack, "prod", lambda c: c["neurodock:models"][0]["canary"].update({"weight": 50}))
    assert job_name(moved) != job_name(shipped_plans["prod"])


def test_the_smoke_test_can_be_turned_off(write_stack, shipped_plans):
    assert manifests(shipped_plans["dev"], "Job", GATEWAY_NS)
    plan = plan_with(write_stack, "dev", lambda c: c.update({"neurodock:gateway": {"smokeTest": False}}))
    assert manifests(plan, "Job", GATEWAY_NS) == []


def completion(model: str, content: str = "ready") -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda a: a.update(object="text_completion"), "object is 'text_completion'"),
    (lambda a: a.update(model="other"), "answered by model 'other'"),
    (lambda a: a.update(choices=[]), "no choices"),
    (lambda a: a["choices"][0]["message"].update(content="  "), "the assistant message is empty"),
    (lambda a: a["choices"][0]["message"].update(role="user"), "the first choice has no assistant message"),
    (lambda a: a.pop("usage"), "usage.completion_tokens is missing or zero"),
])
def test_the_smoke_check_refuses_malformed_answers(mutate, expected):
    assert smoke_check.problem("m", 200, completion("m")) is None
    answer = completion("m")
    mutate(answer)
    assert smoke_check.problem("m", 200, answer).startswith(expected)
    assert smoke_check.problem("m", 503, {"error": "no healthy upstream"}).startswith("HTTP 503")


class FakeGateway(BaseHTTPRequestHandler):
    """Answers chat completions for the models it knows, like the gateway would."""

    known: set[str] = set()
    key: str | None = None
    seen: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeGateway.seen.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if self.key and self.headers.get("Authorization") != f"Bearer {self.key}":
            status, answer = 401, {"error": "Client authentication failed."}
        elif body["model"] in self.known:
            status, answer = 200, completion(body["model"])
        else:
            status, answer = 404, {"error": {"code": "model_not_found"}}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_gateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeGateway.seen = []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_the_smoke_check_passes_when_every_model_answers(fake_gateway, capsys):
    FakeGateway.known, FakeGateway.key = {"a", "b/c"}, "sk-smoke-test-key-0123"
    env = {"GATEWAY_URL": fake_gateway, "MODELS": json.dumps(["a", "b/c"]), "API_KEY": "sk-smoke-test-key-0123"}
    assert smoke_check.main(env, pause_s=0) == 0
    # Each model asked once; side by side, so in no set order.
    assert sorted(s["body"]["model"] for s in FakeGateway.seen) == ["a", "b/c"]
    assert {s["path"] for s in FakeGateway.seen} == {"/v1/chat/completions"}
    assert "all 2 models answered" in capsys.readouterr().out


def test_the_smoke_check_fails_when_a_model_does_not_answer(fake_gateway, capsys):
    FakeGateway.known, FakeGateway.key = {"a"}, None
    env = {"GATEWAY_URL": fake_gateway, "MODELS": json.dumps(["a", "missing"]), "DEADLINE_SECONDS": "0"}
    assert smoke_check.main(env, pause_s=0) == 1
    out = capsys.readouterr().out
    assert "ok   a" in out and "FAIL missing: HTTP 404" in out


def test_the_smoke_check_fails_without_the_right_key(fake_gateway, capsys):
    FakeGateway.known, FakeGateway.key = {"a"}, "sk-smoke-test-key-0123"
    env = {"GATEWAY_URL": fake_gateway, "MODELS": '["a"]', "API_KEY": "wrong", "DEADLINE_SECONDS": "0"}
    assert smoke_check.main(env, pause_s=0) == 1
    assert "FAIL a: HTTP 401" in capsys.readouterr().out


def test_the_smoke_check_reports_an_unreachable_gateway(capsys):
    env = {"GATEWAY_URL": "http://127.0.0.1:9/v1", "MODELS": '["a"]', "DEADLINE_SECONDS": "0"}
    assert smoke_check.main(env, pause_s=0) == 1
    assert "FAIL a: URLError" in capsys.readouterr().out


def test_gateway_schemas_catch_a_misspelt_field_and_an_out_of_range_mirror(shipped_plans, crd_schemas):
    import copy

    import jsonschema

    schema = crd_schemas[("gateway.networking.k8s.io/v1", "HTTPRoute")]
    route = route_of(shipped_plans["prod"], LLAMA_8B)
    jsonschema.validate(route, schema)
    misspelt = copy.deepcopy(route)
    misspelt["spec"]["rules"][0]["backendRef"] = misspelt["spec"]["rules"][0].pop("backendRefs")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(misspelt, schema)
    too_much = copy.deepcopy(route)
    too_much["spec"]["rules"][0]["filters"][1]["requestMirror"]["percent"] = 101
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(too_much, schema)


# -- restarts of ours cut no request -----------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_proxies_drain_for_the_longest_request_and_hold_spread_out_with_a_budget(shipped_plans, stack):
    from infra.readiness import budgets
    from infra.routing import DEFAULT_HOLD_S, hold_seconds

    plan = shipped_plans[stack]
    [proxy] = manifests(plan, "EnvoyProxy", GATEWAY_NS)
    config = plan.config
    longest = max(m.request_timeout_seconds + (hold_seconds(budgets(config, m)) if m.min_replicas == 0
                                               else DEFAULT_HOLD_S) for m in config.models)
    drain = proxy["spec"]["shutdown"]["drainTimeout"]
    assert drain == f"{longest}s" and int(drain[:-1]) > 60  # Envoy Gateway's default would cut them
    kubernetes = proxy["spec"]["provider"]["kubernetes"]
    assert kubernetes["envoyPDB"] == {"maxUnavailable": 1}
    # Envoy Gateway hands this to the shutdown-manager too, which writes a file when the drain ends.
    security = kubernetes["envoyDeployment"]["container"]["securityContext"]
    assert security["readOnlyRootFilesystem"] is False and security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]} and security["allowPrivilegeEscalation"] is False
    [host, zone] = kubernetes["envoyDeployment"]["pod"]["topologySpreadConstraints"]
    assert (host["topologyKey"], host["whenUnsatisfiable"]) == ("kubernetes.io/hostname", "DoNotSchedule")
    assert zone["topologyKey"] == "topology.kubernetes.io/zone"


def test_a_model_at_zero_makes_the_proxies_drain_for_its_whole_hold(write_stack):
    plan = plan_with(write_stack, "dev", lambda c: c["neurodock:models"][0].update(minReplicas=0))
    [proxy] = manifests(plan, "EnvoyProxy", GATEWAY_NS)
    from infra.readiness import budgets
    from infra.routing import hold_seconds

    model = plan.config.models[0]
    assert proxy["spec"]["shutdown"]["drainTimeout"] == \
        f"{hold_seconds(budgets(plan.config, model)) + model.request_timeout_seconds}s"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_pickers_run_leader_and_standby_on_two_nodes_and_never_block_a_drain(shipped_plans, stack):
    """Only the leader is ready: a budget would block its eviction, and Pulumi's own await (every replica ready)
    would time out, so Pulumi waits for the rollout and one ready pod."""
    import json

    plan = shipped_plans[stack]
    pickers = [d for d in manifests(plan, "Deployment", SERVING_NS) if d["metadata"]["name"].endswith("-epp")]
    assert pickers
    budgets_ = {tuple(sorted(p["spec"]["selector"]["matchLabels"].items())): p
                for p in manifests(plan, "PodDisruptionBudget", SERVING_NS)}
    for picker in pickers:
        assert picker["spec"]["replicas"] == 2
        # The chart's leader election (only the leader is ready: active-passive) and its Recreate strategy.
        assert "--ha-enable-leader-election" in picker["spec"]["template"]["spec"]["containers"][0]["args"]
        assert picker["spec"]["strategy"] == {"type": "Recreate"}
        term = picker["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        selector = tuple(sorted(picker["spec"]["selector"]["matchLabels"].items()))
        assert selector not in budgets_
        assert json.loads(picker["metadata"]["annotations"]["pulumi.com/waitFor"]) == [
            "jsonpath={.status.updatedReplicas}=2", "jsonpath={.status.readyReplicas}=1"]


def test_no_processing_mode_starts_envoys_message_timer_on_a_held_request(shipped_plans):
    """Envoy starts ext_proc's message timer in every body mode but FULL_DUPLEX_STREAMED (v1.38.0
    source/extensions/filters/http/ext_proc/processor_state.cc:26-39), and Envoy AI Gateway puts the picker in
    that mode unless a pool's annotation asks for buffered (ai-gateway v1.1.0
    internal/extensionserver/inferencepool.go:50,288-339): its 300 s timeout never cuts a hold."""
    for plan in shipped_plans.values():
        for pool in manifests(plan, "InferencePool", SERVING_NS):
            annotations = pool["metadata"].get("annotations") or {}
            assert annotations.get("aigateway.envoyproxy.io/processing-body-mode", "duplex") == "duplex"
        # The one buffered processor is the body-based router's, which holds nothing: 5 s at most.
        for policy in manifests(plan, "EnvoyExtensionPolicy", GATEWAY_NS):
            for processor in policy["spec"].get("extProc") or []:
                if processor.get("processingMode", {}).get("request", {}).get("body") == "Buffered":
                    assert processor["messageTimeout"] == "5s"


def test_a_shadow_without_endpoints_cannot_fail_its_models_route():
    """Envoy Gateway v1.7.0 answered 500 on every rule of a route whose RequestMirror backend had no ready
    endpoints; from v1.7.2 and v1.8.0 the mirror is dropped until it has some (v1.8.3
    internal/gatewayapi/filters.go:1061-1071, route.go:234-239). The pinned version has the fix."""
    from components.versions import ENVOY_GATEWAY

    major, minor, patch = (int(x) for x in ENVOY_GATEWAY.version.lstrip("v").split("."))
    assert (major, minor, patch) >= (1, 7, 2) and (minor, patch) != (7, 0)


def bucket_of(request_id: str | None) -> int:
    """The canary bucket the gateway's Lua filter gives a request with this id, run by LuaJIT (Envoy's Lua)."""
    from lupa.luajit21 import LuaRuntime

    lua = LuaRuntime()
    lua.execute(BUCKET_LUA)
    run = lua.eval("""function(id)
      local headers = {["x-request-id"] = id}
      local h = {}
      function h:get(name) return headers[name] end
      function h:replace(name, value) headers[name] = value end
      envoy_on_request({headers = function(self) return h end})
      return headers["x-neurodock-bucket"]
    end""")
    return int(run(request_id))


def test_canary_buckets_come_from_each_requests_own_id_uniformly():
    import uuid

    ids = [str(uuid.UUID(int=i * 0x9E3779B97F4A7C15 % 2**128)) for i in range(20000)]
    buckets = [bucket_of(i) for i in ids[:2000]]
    assert all(0 <= b < 100 for b in buckets)
    assert bucket_of(ids[0]) == bucket_of(ids[0])  # one request, one bucket, on any worker thread
    # Uniform: each tenth of the buckets holds about a tenth of the requests.
    tenths = [sum(1 for b in buckets if b // 10 == t) for t in range(10)]
    assert all(150 < n < 250 for n in tenths), tenths
    assert 0 <= bucket_of(None) < 100  # no id: a random bucket rather than none


def test_the_model_label_is_a_valid_label_value_for_any_served_name_and_unchanged_where_it_was():
    from components.labels import model_label_value

    valid = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
    # What earlier releases set stays (their pods are not replaced): '/' as '_', cut to 63 when that is valid.
    assert model_label_value(LLAMA_8B) == "meta-llama_Llama-3.1-8B-Instruct"
    assert model_label_value("q" * 100) == "q" * 63
    # What earlier releases made invalid (a ':', an edge '-' or '.' after the cut) becomes valid and distinct.
    odd = ["qwen:0.5b", "qwen_0.5b", "a" * 62 + "-tail", "m/" + "x" * 60 + ".y", "org/model:v1", "org/model_v1"]
    values = [model_label_value(n) for n in odd]
    assert all(valid.match(v) for v in values), values
    assert len(set(values)) == len(values)

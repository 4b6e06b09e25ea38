"""``neurodock`` summarises first: the plan's summary, grouped warnings, the gateway recipe, ``--version``,
progress only on a terminal, ``check`` grouped by policy, ``stacks``' header, ``charts`` messages."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest

from infra import charts, cli
from infra.plan import engine, render
from infra.plan.summary import counts_by_component, endpoint_json, group_warnings, grouped_text, summary_json, usd
from tests.conftest import run_cli


@pytest.fixture
def planned(shipped_plans, monkeypatch):
    """`neurodock plan STACK` answers from the session's shared plans instead of planning again."""
    real = engine.run_plan

    def run_plan(stack, **options):
        if options.get("first_preview") or stack.stack not in shipped_plans:
            return real(stack, **options)
        return shipped_plans[stack.stack]

    monkeypatch.setattr(engine, "run_plan", run_plan)
    return shipped_plans


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_summary_repeats_the_plans_own_figures(planned):
    plan = planned["staging"]
    document = render.as_json(plan)
    result = run_cli("plan", "staging")
    assert result.returncode == 0
    text = result.stdout
    summary = text[:text.index("Resources by type")]
    # Summary before the details, and the tree only with --tree.
    assert "Component tree" not in text
    assert f"resources   {document['resourceCount']} (and {document['chartObjectCount']} objects" in summary
    components = counts_by_component(plan)
    assert sum(components.values()) == document["resourceCount"]
    for what, n in components.items():
        assert re.search(rf"^\s+{n}  {re.escape(what)}$", summary, re.M), what
    total = document["cost"]["total"]
    for scale in ("minimum", "maximum"):
        assert usd(total[scale]["monthly"]) in summary
    for row in document["timeToReady"]:
        assert row["model"] in summary
        assert f"~{round(row['firstReplica']['totalS'] / 60)} min" in summary
    assert f"warnings    {len(document['warnings'])}" in summary
    assert "nvidia-l4" in summary  # the model's GPU, from its pool


def test_plan_json_carries_the_summary_and_endpoint(planned):
    result = run_cli("plan", "prod", "--json")
    document = json.loads(result.stdout)
    assert document["summary"]["resourceCount"] == document["resourceCount"]
    assert document["summary"]["cost"]["total"] == document["cost"]["total"]
    assert len(document["summary"]["models"]) == len(planned["prod"].config.models)
    assert document["endpoint"]["service"] == "neurodock-gateway"
    assert result.stderr == ""


def test_tree_is_behind_a_flag(planned):
    assert "Component tree" in run_cli("plan", "dev", "--tree").stdout


def test_identical_warnings_are_grouped_with_their_count_and_keys():
    gated = ("models[{i}]: hf://meta-llama/Model-{i}B is gated on Hugging Face and neurodock:hfToken is not set, "
             "so its download will be refused (401)")
    warnings = [gated.format(i=i) for i in range(5)] + ["kind pool 'gpu-l4' stands in for a GPU pool"]
    groups = group_warnings(warnings)
    assert [(g.count, g.keys) for g in groups] == [
        (5, tuple(f"models[{i}]" for i in range(5))), (1, ("gpu-l4",))]
    text = grouped_text(warnings)
    assert len(text) == 3 and "x5" in text[1] and "models[4]" in text[1]


def test_different_warnings_stay_apart():
    assert len(group_warnings(["models[0]: gated", "models[1]: too big for its pool"])) == 2


def test_private_gateway_recipe_is_a_port_forward_to_the_gateways_service(planned):
    from components.gateway.gateway import GATEWAY_NAMESPACE, SERVICE_NAME

    plan = planned["dev"]
    endpoint = endpoint_json(plan)
    assert not endpoint["public"]
    assert f"kubectl -n {GATEWAY_NAMESPACE} port-forward service/{SERVICE_NAME} 8080:{endpoint['port']} &" in \
        endpoint["steps"]
    # The in-cluster URL the plan outputs uses that same Service, namespace and port.
    assert plan.outputs["gatewayUrl"] == (f"{endpoint['scheme']}://{SERVICE_NAME}.{GATEWAY_NAMESPACE}"
                                          f".svc.cluster.local:{endpoint['port']}/v1")
    assert f'"model": "{plan.config.models[0].model_name}"' in endpoint["curl"]
    assert endpoint["steps"][0].startswith("pulumi stack output kubeconfig --show-secrets -s dev")


def test_public_gateway_recipe_reads_the_load_balancer(write_stack):
    from infra.plan.engine import run_plan
    from infra.plan.stackfile import load_stack_file
    from tests.conftest import stack_document

    document = stack_document("staging")
    document["config"]["neurodock:gateway"] = {"public": True, "allowedCidrs": ["203.0.113.0/24"], "tls": True}
    for key in ("gatewayTlsCert", "gatewayTlsKey", "gatewayApiKeys"):
        document["config"][f"neurodock:{key}"] = {"secure": "v1:AAAABBBB"}
    plan = run_plan(load_stack_file("test", write_stack(document)), render_charts=False)
    endpoint = endpoint_json(plan)
    assert endpoint["public"] and "203.0.113.0/24" in endpoint["note"]
    assert any("loadBalancer.ingress[0].hostname" in step for step in endpoint["steps"])  # EKS: a DNS name
    assert "port-forward" not in " ".join(endpoint["steps"])


def test_version():
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_, contextlib.redirect_stdout(out):
        cli.main(["--version"])
    assert exit_.value.code == 0
    from importlib.metadata import version

    assert out.getvalue().strip() == f"neurodock {version('neurodock')}"


def test_each_help_has_examples(capsys):
    for command in ([], ["plan"], ["check"], ["diff"], ["stacks"], ["charts"], ["charts", "list"], ["charts", "pull"]):
        with pytest.raises(SystemExit):
            cli.main([*command, "--help"])
        assert "examples:\n  neurodock" in capsys.readouterr().out, command


def test_progress_only_on_a_terminal_and_never_with_json(planned, monkeypatch):
    shown = []

    @contextlib.contextmanager
    def status(self, message, **_):
        shown.append(message)
        yield

    from rich.console import Console

    monkeypatch.setattr(Console, "status", status)
    for args, tty, expected in ((["plan", "dev"], True, 1), (["plan", "dev", "--json"], True, 0),
                                (["plan", "dev"], False, 0)):
        shown.clear()
        err = _Terminal() if tty else io.StringIO()
        monkeypatch.setattr("sys.stderr", err)
        monkeypatch.setattr("sys.stdout", io.StringIO())
        assert cli.main(args) == 0
        assert len(shown) == expected, (args, tty)
        assert err.getvalue() == ""


def test_stacks_has_a_header_row():
    lines = run_cli("stacks").stdout.splitlines()
    assert lines[0].split() == ["STACK", "CLOUD", "REGION", "ENVIRONMENT"]
    assert len(lines) == 1 + len(json.loads(run_cli("stacks", "--json").stdout))


def test_charts_pull_offline_names_the_fixes_and_every_missing_chart(tmp_path, monkeypatch):
    from components.versions import CHARTS, CRD_BUNDLES

    def unreachable(ref, *_, **__):
        raise charts.PullError(f"{ref} from https://example.invalid: dial tcp: no such host")

    monkeypatch.setattr(charts, "pull", unreachable)
    monkeypatch.setattr(charts, "pull_crds", unreachable)
    result = run_cli("charts", "pull", "--chart-cache", str(tmp_path))
    assert result.returncode == 1
    missing = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert missing == [str(ref) for ref in (*CHARTS, *CRD_BUNDLES)]
    assert "NEURODOCK_CHART_CACHE" in result.stderr and "--mirror" in result.stderr


def test_a_plan_without_the_charts_it_reads_lists_every_one(tmp_path):
    result = run_cli("plan", "staging", "--chart-cache", str(tmp_path))
    assert result.returncode == 2
    from components.versions import ENVOY_GATEWAY, INFERENCE_EXTENSION_CRDS, LLM_D_ROUTER

    for what in (INFERENCE_EXTENSION_CRDS, ENVOY_GATEWAY, LLM_D_ROUTER):
        assert str(what) in result.stderr


def test_charts_list_plans_a_stack_once_then_reads_the_cache(tmp_path, monkeypatch, planned):
    monkeypatch.setenv(charts.RENDER_CACHE_ENV, str(tmp_path))
    calls = []
    real = cli._stack_needs
    monkeypatch.setattr(cli, "_stack_needs", lambda name: calls.append(name) or real(name))
    first = json.loads(run_cli("charts", "list", "dev", "--json").stdout)
    second = json.loads(run_cli("charts", "list", "dev", "--json").stdout)
    assert calls == ["dev"] and first == second
    assert any(row["stacks"] == ["dev"] for row in first["charts"])


def test_check_groups_violations_by_policy(planned):
    result = run_cli("check", "staging")
    counted = re.findall(r"^\s+(\d+)  (mandatory|advisory)\s+(\S+)$", result.stdout, re.M)
    headers = re.findall(r"^(mandatory|advisory)\s+(\S+): (\d+) violations?$", result.stdout, re.M)
    # Per pass, one header per policy with its count; the headers and the closing counts add up to the
    # summary line's total.
    total = re.search(r"(\d+) mandatory and (\d+) advisory violations", result.stdout)
    assert headers and int(total[1]) + int(total[2]) > 0
    assert sum(int(n) for _, _, n in headers) == int(total[1]) + int(total[2])
    assert sum(int(n) for n, _, _ in counted) == int(total[1]) + int(total[2])
    assert len(counted) == len({p for _, p, _ in headers})


def test_summary_json_counts_errors_apart(planned):
    plan = planned["dev"]
    document = render.as_json(plan) | {"warnings": ["error: boom", "a warning"]}
    s = summary_json(plan, document)
    assert (s["warningCount"], s["errorCount"]) == (1, 1)

"""Credential shapes shared by the config check and the no-plaintext-secrets policy: each kind is caught,
and what our config legitimately holds (commits, digests, ARNs, flag names) is not."""

from __future__ import annotations

import json

import pytest
import yaml
from neurodock_policies.secret_shapes import secret_args, secret_shape

from infra.plan.stackfile import REPO_ROOT

# Synthetic values of each documented shape (none is a real credential).
TOKENS = {
    "a Hugging Face token": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "an AWS access key id": "AKIA" + "QWERTY2UIOPASDF7",
    "a GitHub token": "ghp_" + "a1B2" * 9,
    "an OpenAI API key": "sk-proj-" + "x1Y2z3" * 8,
    "an Anthropic API key": "sk-ant-api03-" + "Ab1_" * 15,
    "a Slack token": "xoxb-" + "1234567890-1234567890-abcdefghij",
    "a Slack webhook URL": "https://hooks.slack.com/services/" + "T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "a Google API key": "AIza" + "SyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    "a private key": "-----BEGIN RSA PRIVATE KEY-----",
    "a JSON Web Token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc",
    "a password in a URL": "https://alerts:hunter2@hooks.example.com/x",
}


@pytest.mark.parametrize(("what", "value"), TOKENS.items(), ids=list(TOKENS))
def test_each_credential_shape_is_recognised_inside_any_text(what, value):
    assert secret_shape(value) == what
    assert secret_shape(f"owner={value} ") == what


@pytest.mark.parametrize("value", [
    "0e9e39f249a16976918f6564b8830bc894c89659",  # a Hugging Face revision
    "sha256:" + "ab" * 32,
    "arn:aws:iam::123456789012:role/platform-admins",
    "hf_transfer", "HF_HUB_ENABLE_HF_TRANSFER", "sk-learn", "--skip-tokenizer-init",
    "hf://meta-llama/Llama-3.1-8B-Instruct", "https://hooks.example.com/alerts",
    "ASIAPACIFICSALESTEAM",  # a 20-letter tag value in an access key's form, but without a digit
])
def test_values_our_config_holds_are_not_credentials(value):
    assert secret_shape(value) is None


def test_a_flag_that_takes_a_credential_flags_its_value_whatever_it_looks_like():
    assert secret_args(["--api-key", "team-a"]) == [(1, "the value of --api-key")]
    assert secret_args(["--hf-token=abc"]) == [(0, "the value of --hf-token")]
    # A shaped value after such a flag is reported once.
    assert secret_args(["--api-key", TOKENS["an OpenAI API key"]]) == [(1, "the value of --api-key")]
    assert secret_args(["--enable-prefix-caching", TOKENS["a GitHub token"]]) == [(1, "a GitHub token")]


def test_flags_named_like_tokens_but_taking_none_are_left_alone():
    assert secret_args(["--max-num-batched-tokens", "8192", "--tokenizer", "org/tok", "--api-key"]) == []
    assert secret_args(["--api-key", "--port", "8000"]) == []


def test_a_credential_passed_as_an_env_var_reference_is_the_fix_not_a_leak():
    assert secret_args(["--api-key", "$(VLLM_API_KEY)", "--client-secret=$(CLIENT_SECRET)"]) == []
    assert secret_args(["--api-key", "$(KEY)-suffix"]) == [(1, "the value of --api-key")]


def test_every_credential_the_config_check_gives_a_home_is_one_the_shapes_can_name():
    from neurodock_policies.secret_shapes import SHAPES

    from infra.config import SECRET_HOMES, SECRET_KEYS

    named = {what for what, _ in SHAPES}
    assert all(what in named or what.startswith("the value of --") for what in SECRET_HOMES)
    assert set(SECRET_HOMES.values()) <= set(SECRET_KEYS)


# -- secrets' own shapes, checked when the program starts ---------------------------------------------


@pytest.mark.parametrize(("key", "value", "message"), [
    ("gatewayApiKeys", "not json", "must be a JSON object of client id to key"),
    ("gatewayApiKeys", '{"team-a": "short"}', "with keys of at least 16 characters"),
    ("gatewayApiKeys", '{"neurodock-smoke-test": "0123456789abcdef"}', "reserved for the smoke test"),
    ("gatewayTlsCert", "MIIB...", "must be a PEM certificate chain"),
    ("gatewayTlsKey", "-----BEGIN CERTIFICATE-----\n...", "must be a PEM private key"),
    ("hfToken", "hf_abcdefghijklmnopqrstuvwxyz012345\n", "starts or ends with whitespace"),
    ("grafanaAdminPassword", "", "is empty"),
])
def test_a_malformed_secret_stops_the_program_before_any_resource(key, value, message):
    from infra.config import ConfigError, parse_config
    from infra.config.stack import secret_value_problems

    full = f"neurodock:{key}"
    [problem] = secret_value_problems({full: value}, [full])
    assert problem.path == full and message in problem.message
    assert not value.strip() or value.strip() not in problem.message  # the secret is never quoted
    # parse_config, which the program runs before it creates anything, refuses it with the rest.
    document = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    values = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in document.items()}
    with pytest.raises(ConfigError) as caught:
        parse_config({**values, full: value}, secret_keys=[full])
    assert any(p.path == full for p in caught.value.problems)


@pytest.mark.parametrize(("key", "value"), [
    ("gatewayApiKeys", '{"team-a": "sk-0123456789abcdef"}'),
    ("gatewayTlsCert", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    ("gatewayTlsKey", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"),
    ("hfToken", "hf_abcdefghijklmnopqrstuvwxyz012345"),
    ("grafanaAdminPassword", "a-long-passphrase"),
    ("gatewayApiKeys", "04da6b54-80e4-46f7-96ec-b56ff0331ba9"),  # offline: not decrypted, left to the deploy
])
def test_a_well_formed_or_unreadable_secret_passes(key, value):
    from infra.config.stack import secret_value_problems

    full = f"neurodock:{key}"
    assert secret_value_problems({full: value}, [full]) == []

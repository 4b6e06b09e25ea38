"""Reading stack files the way the Pulumi CLI does."""

from __future__ import annotations

import codecs
import json
import textwrap
from pathlib import Path

import pytest
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER

from infra.config import SECRET_KEYS
from infra.plan.stackfile import REPO_ROOT, StackFileError, load_stack_file, stack_names
from tests.conftest import stack_document


@pytest.fixture
def raw_stack(tmp_path: Path):
    """Write a stack file's text as given: ``yaml.safe_dump`` can write neither a duplicate key nor a tab."""

    def write(text: str | bytes) -> Path:
        path = tmp_path / "Pulumi.test.yaml"
        path.write_bytes(textwrap.dedent(text).encode() if isinstance(text, str) else text)
        return path

    return write


def load_error(path: Path) -> str:
    with pytest.raises(StackFileError) as caught:
        load_stack_file("test", path)
    return str(caught.value)


def test_project_file_runs_infra_with_stack_files_in_stacks():
    import yaml

    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "neurodock"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"]
    assert project["main"].rstrip("/") == "infra"
    assert project["stackConfigDir"] == "stacks"
    assert (REPO_ROOT / project["main"] / "__main__.py").is_file()


def test_project_level_config_is_inherited_by_every_stack():
    loaded = load_stack_file("dev")
    assert json.loads(loaded.config["pulumi:disable-default-providers"]) == ["*"]


def test_stack_names_lists_the_stack_files():
    assert {"dev", "staging", "prod"} <= set(stack_names())


def test_secure_values_become_unknown_secrets(write_stack):
    document = stack_document("dev")
    document["config"]["neurodock:hfToken"] = {"secure": "v1:AAAABBBBCCCC"}
    loaded = load_stack_file("test", write_stack(document))
    assert loaded.config["neurodock:hfToken"] == UNKNOWN_MARKER
    assert loaded.secret_keys == {"neurodock:hfToken"}


def test_secure_values_deep_in_a_secret_key_mark_it_secret(write_stack):
    # `pulumi config set --secret --path 'neurodock:gatewayApiKeys.team-a' sk-...` writes this.
    document = stack_document("dev")
    document["config"]["neurodock:gatewayApiKeys"] = {"team-a": {"secure": "v1:AAAA"}}
    loaded = load_stack_file("test", write_stack(document))
    assert json.loads(loaded.config["neurodock:gatewayApiKeys"]) == {"team-a": UNKNOWN_MARKER}
    assert "neurodock:gatewayApiKeys" in loaded.secret_keys


def test_a_secure_value_in_a_key_that_holds_no_secret_is_rejected(write_stack):
    document = stack_document("dev")
    document["config"]["neurodock:tags"] = {"owner": {"secure": "v1:AAAA"}}
    path = write_stack(document)
    holders = ", ".join(f"neurodock:{key}" for key in SECRET_KEYS)
    assert load_error(path) == (f"{path}: 'neurodock:tags.owner' is a secure value, but only {holders} hold secrets; "
                                "write it in plain text, or put a secret in one of those keys")


def test_every_misplaced_secure_value_is_named_at_once(write_stack):
    document = stack_document("dev")
    document["config"]["neurodock:tags"] = {"owner": {"secure": "v1:AAAA"}}
    document["config"]["neurodock:models"][0]["source"] = {"secure": "v1:BBBB"}
    message = load_error(write_stack(document))
    # In the file's order: the dev stack writes models before tags.
    assert "'neurodock:models[0].source', 'neurodock:tags.owner' are secure values, but only" in message
    assert "neurodock:hfToken" in message and "write them in plain text" in message


def test_secure_values_of_other_namespaces_follow_pulumi(write_stack):
    document = stack_document("dev")
    document["config"] |= {"aws:secretKey": {"secure": "v1:AAAA"}, "acme:token": {"secure": "v1:BBBB"},
                           # Pulumi reads these two as plain objects, not secrets: so do we.
                           "acme:number": {"secure": 1}, "acme:object": {"secure": "x", "port": 1}}
    loaded = load_stack_file("test", write_stack(document))
    assert loaded.config["aws:secretKey"] == loaded.config["acme:token"] == UNKNOWN_MARKER
    assert json.loads(loaded.config["acme:number"]) == {"secure": 1}
    assert json.loads(loaded.config["acme:object"]) == {"secure": "x", "port": 1}
    assert loaded.secret_keys == {"aws:secretKey", "acme:token"}


@pytest.mark.parametrize("value", [{"secure": 1}, {"secure": "v1:AAAA", "note": "rotated"}])
def test_a_secret_key_with_a_malformed_secure_value_is_rejected(write_stack, value):
    # Pulumi would hand the program a plain object {"secure": ...} as the token, not a secret.
    document = stack_document("dev")
    document["config"]["neurodock:hfToken"] = value
    path = write_stack(document)
    assert load_error(path) == (f"{path}: 'neurodock:hfToken' has a 'secure' key, but a secret is a mapping whose "
                                "only key is 'secure', with the ciphertext as text; set it with "
                                "`pulumi config set --secret`")


def test_scalars_are_passed_as_text_and_objects_as_json(write_stack):
    document = {"config": {"neurodock:flag": True, "neurodock:count": 3, "neurodock:obj": {"a": [1, False]}}}
    loaded = load_stack_file("test", write_stack(document))
    assert loaded.config["neurodock:flag"] == "true"
    assert loaded.config["neurodock:count"] == "3"
    assert json.loads(loaded.config["neurodock:obj"]) == {"a": [1, False]}


def test_a_missing_stack_names_the_known_stacks():
    with pytest.raises(StackFileError, match=r"no stack file .*Pulumi\.nope\.yaml; stacks here: .*dev"):
        load_stack_file("nope")


def test_invalid_yaml_names_its_line_without_pyyaml_marks(raw_stack):
    path = raw_stack("config:\n  neurodock:environment: [unclosed\n")
    assert load_error(path) == (f"{path}: line 3, column 1: not valid YAML: expected ',' or ']', but got "
                                "'<stream end>' (while parsing a flow sequence from line 2)")


@pytest.mark.parametrize("text", ["config: [1, 2]\n", "config: []\n", "config: text\n"])
def test_config_that_is_not_a_mapping_is_rejected(raw_stack, text):
    path = raw_stack(text)
    assert load_error(path) == f"{path}: 'config' must be a mapping of keys to values"


def test_a_document_that_is_not_a_mapping_is_rejected(raw_stack):
    path = raw_stack("- neurodock:environment: dev\n")
    expected = """expected a mapping with a 'config' key, got [{"neurodock:environment": "dev"}]"""
    assert load_error(path) == f"{path}: {expected}"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "config:\n"])
def test_a_stack_file_without_config_is_an_empty_stack(raw_stack, text):
    loaded = load_stack_file("test", raw_stack(text))
    assert not any(key.startswith("neurodock:") for key in loaded.config)


def test_config_keys_that_are_not_names_are_named(raw_stack):
    path = raw_stack("""\
        config:
          neurodock:environment: dev
          1: one
          null: nothing
          "": empty
          ":cloud": no namespace
        """)
    assert load_error(path) == "\n".join([
        f"{path}: 4 problems:",
        *(f"  config key {key} is not a key name; keys are text such as 'neurodock:models'"
          for key in ("1", "null", '""', '":cloud"')),
    ])


def test_a_config_key_written_twice_names_both_lines(raw_stack):
    path = raw_stack("""\
        config:
          neurodock:environment: dev
          neurodock:models:
            - name: a
          neurodock:environment: prod
        """)
    assert load_error(path) == (f"{path}: key 'neurodock:environment' is written twice (lines 2 and 5); a YAML "
                                "mapping keeps only the last, so remove or merge one")


def test_a_nested_key_written_twice_is_named_by_its_path(raw_stack):
    path = raw_stack("""\
        config:
          neurodock:models:
            - name: a
            - name: b
              engine: vllm
              name: c
          neurodock:tags:
            app.kubernetes.io/team: x
            app.kubernetes.io/team: y
        """)
    assert load_error(path) == "\n".join([
        f"{path}: 2 problems:",
        "  key 'neurodock:models[1].name' is written twice (lines 4 and 6); a YAML mapping keeps only the last, "
        "so remove or merge one",
        """  key 'neurodock:tags["app.kubernetes.io/team"]' is written twice (lines 8 and 9); a YAML mapping keeps """
        "only the last, so remove or merge one",
    ])


def test_top_level_keys_written_twice_are_named_as_written(raw_stack):
    path = raw_stack("config:\n  neurodock:environment: dev\n"
                     "config:\n  neurodock:cloud: {provider: kind, provider: eks}\n")
    message = load_error(path)
    assert "key 'config' is written twice (lines 1 and 3)" in message
    assert "key 'neurodock:cloud.provider' is written twice (line 4 column 21 and line 4 column 37)" in message


def test_a_key_written_three_times_lists_every_line(raw_stack):
    path = raw_stack("config:\n  acme:x: 1\n  acme:x: 2\n  acme:x: 3\n")
    assert "key 'acme:x' is written 3 times (lines 2, 3 and 4); a YAML mapping keeps only the last, so remove or " \
           "merge the others" in load_error(path)


def test_a_merge_key_may_be_overridden(raw_stack):
    path = raw_stack("""\
        defaults: &tags {team: ml, owner: a}
        config:
          neurodock:tags:
            <<: *tags
            owner: b
        """)
    assert json.loads(load_stack_file("test", path).config["neurodock:tags"]) == {"team": "ml", "owner": "b"}


def test_a_key_written_twice_in_the_project_file_is_an_error(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: a\nruntime: python\nname: b\n")
    with pytest.raises(StackFileError) as caught:
        load_stack_file("test", root=tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'Pulumi.yaml'}: key 'name' is written twice (lines 1 and 3); a YAML "
                                 "mapping keeps only the last, so remove or merge one")


def test_a_tab_that_indents_a_line_is_named(raw_stack):
    path = raw_stack("config:\n  neurodock:environment: dev\n  neurodock:cloud:\n  \tprovider: kind\n")
    assert load_error(path) == (f"{path}: line 4: a tab indents this line; YAML indents with spaces only "
                                "(replace the tab with spaces)")


def test_a_tab_after_a_colon_is_named(raw_stack):
    path = raw_stack("config:\n  neurodock:environment:\tdev\n")
    assert load_error(path) == f"{path}: line 2, column 25: a tab where YAML needs a space; replace it with a space"


def test_a_file_that_is_not_utf8_names_where(raw_stack):
    path = raw_stack("config:\n  neurodock:environment: dev\n  neurodock:tags: {owner: Andr\u00e9}\n".encode("latin-1"))
    assert load_error(path) == f"{path}: line 3, column 31: byte 0xE9 is not UTF-8; save the file as UTF-8"


def test_a_utf16_file_is_told_to_be_saved_as_utf8(raw_stack):
    path = raw_stack("config:\n  neurodock:environment: dev\n".encode("utf-16"))
    assert load_error(path).endswith(": the file is UTF-16 text (Windows PowerShell's `>` writes it); save it as UTF-8")


def test_a_utf8_byte_order_mark_is_accepted(raw_stack):
    path = raw_stack(codecs.BOM_UTF8 + "config:\n  neurodock:environment: caf\u00e9\n".encode())
    assert load_stack_file("test", path).config["neurodock:environment"] == "caf\u00e9"


def test_a_control_character_is_named_by_line(raw_stack):
    path = raw_stack("config:\n  neurodock:environment: dev\x00\n")
    assert load_error(path) == (f"{path}: line 2: not valid YAML: the control character U+0000 is not allowed; "
                                "remove it")


CLI_CASES = {
    "duplicate key": ("config:\n  neurodock:models: []\n  neurodock:models: []\n",
                      "key 'neurodock:models' is written twice (lines 2 and 3)"),
    "not utf-8": (b"config:\n  neurodock:environment: \xff\n", "line 2, column 26: byte 0xFF is not UTF-8"),
    "tab": ("config:\n\tneurodock:environment: dev\n", "line 2: a tab indents this line"),
    "syntax": ("config:\n  neurodock:environment: [dev\n", "line 3, column 1: not valid YAML: expected ','"),
    "misplaced secret": ("config:\n  neurodock:tags: {owner: {secure: v1:AAAA}}\n",
                         "'neurodock:tags.owner' is a secure value, but only neurodock:hfToken"),
    "not a mapping": ("[]\n", "expected a mapping with a 'config' key, got []"),
    "config key": ("config:\n  null: x\n", "config key null is not a key name"),
}


@pytest.mark.parametrize("text, expected", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_the_cli_reports_an_unreadable_stack_file_as_a_usage_error(raw_stack, capsys, text, expected):
    from infra.cli import main

    path = raw_stack(text)
    assert main(["plan", "test", "--stack-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neurodock: {path}: ") and expected in err
    assert "Traceback" not in err


def test_a_stack_initialised_with_a_kms_secrets_provider_still_loads(write_stack):
    # `pulumi stack init prod --secrets-provider gcpkms://...` writes these keys next to `config`.
    document = stack_document("prod")
    document["secretsprovider"] = "gcpkms://projects/p/locations/europe/keyRings/neurodock-state/cryptoKeys/pulumi-state"
    document["encryptedkey"] = "CiQAbc123=="
    stack = load_stack_file("prod", write_stack(document, name="prod"))
    assert stack.config["neurodock:environment"] == "prod"
    assert not any(key.startswith(("secretsprovider", "encryptedkey")) for key in stack.config)


def test_the_bootstrap_project_reads_its_own_stacks():
    import yaml

    from infra.plan.engine import BOOTSTRAP_DIR

    project = yaml.safe_load((BOOTSTRAP_DIR / "Pulumi.yaml").read_text())
    assert project["name"] == "neurodock-bootstrap" and project["config"]["pulumi:disable-default-providers"]
    assert stack_names(BOOTSTRAP_DIR) == ["aws", "gcp"]
    assert load_stack_file("aws", root=BOOTSTRAP_DIR).config["neurodock-bootstrap:location"] == "us-west-2"


# Scalars as Pulumi reads them: go-yaml v3 (gopkg.in/yaml.v3 v3.0.1, Pulumi's reader) resolves plain scalars by its
# resolve.go tables, not YAML 1.1's; an unquoted timestamp reaches the program as Go's time.Time.String().
GO_YAML_SCALARS = [
    # (as written, the text a top-level value reaches the program as, the value inside an object)
    # YAML 1.1 booleans are text; only true and false, in any of three cases, are booleans.
    ("no", "no", "no"), ("NO", "NO", "NO"), ("on", "on", "on"), ("off", "off", "off"), ("y", "y", "y"),
    ("yes", "yes", "yes"), ("Yes", "Yes", "Yes"), ("true", "true", True), ("True", "true", True),
    ("TRUE", "true", True), ("False", "false", False), ("tRUE", "tRUE", "tRUE"),
    # Integers: Go's ParseInt with base prefixes (0o is a number, 017 octal), underscores dropped.
    ("0o17", "15", 15), ("017", "15", 15), ("0x1F", "31", 31), ("0b101", "5", 5), ("1_000", "1000", 1000),
    ("+5", "5", 5),
    # Floats, written back by Go's JSON encoder (a whole float as an integer); 08 is a float to go-yaml.
    ("1e3", "1000", 1000), ("1.30", "1.3", 1.3), (".5", "0.5", 0.5), ("08", "8", 8), ("2.0", "2", 2),
    # Text for go-yaml, something else (or an error) for PyYAML: sexagesimal, '=', an impossible date.
    ("1:30", "1:30", "1:30"), ("=", "=", "="), ("2026-02-30", "2026-02-30", "2026-02-30"),
    # Timestamps: as Go prints them.
    ("2026-01-03", "2026-01-03 00:00:00 +0000 UTC", "2026-01-03 00:00:00 +0000 UTC"),
    ("2026-01-03T01:00:00Z", "2026-01-03 01:00:00 +0000 UTC", "2026-01-03 01:00:00 +0000 UTC"),
    ("2026-01-03 01:00:00", "2026-01-03 01:00:00 +0000 UTC", "2026-01-03 01:00:00 +0000 UTC"),
    ("2026-01-03t01:00:00.50+02:00", "2026-01-03 01:00:00.5 +0200 +0200", "2026-01-03 01:00:00.5 +0200 +0200"),
    # Tags: quoted and !!str scalars are text, and so is one tagged !; !!binary is decoded.
    ('"no"', "no", "no"), ("'TRUE'", "TRUE", "TRUE"), ("!!str 12", "12", "12"), ("! 12", "12", "12"),
    ("!!binary aGVsbG8=", "hello", "hello"), ("!!float 1", "1", 1), ("~", "null", None),
]


@pytest.mark.parametrize(("written", "text", "value"), GO_YAML_SCALARS, ids=[c[0] for c in GO_YAML_SCALARS])
def test_a_scalar_reaches_the_program_as_pulumi_passes_it(raw_stack, written, text, value):
    loaded = load_stack_file("test", raw_stack(f"config:\n  neurodock:value: {written}\n"
                                               f"  neurodock:object: {{key: {written}}}\n"))
    assert loaded.config["neurodock:value"] == text
    assert json.loads(loaded.config["neurodock:object"]) == {"key": value}


def test_go_resolve_follows_go_yaml_tables():
    from infra.plan.stackfile import go_resolve

    assert go_resolve("", "no") == ("str", "no")
    assert go_resolve("", "FALSE") == ("bool", False)
    assert go_resolve("", "") == ("null", None)
    assert go_resolve("", "99999999999999999999") == ("float", 1e20)  # past uint64: a float, as in resolve.go
    assert go_resolve("", "1e400") == ("str", "1e400")  # out of range for ParseFloat: text
    assert go_resolve("float", "1") == ("float", 1.0)
    with pytest.raises(ValueError, match="cannot decode !!str `yes` as a !!bool"):
        go_resolve("bool", "yes")


def test_environment_no_is_the_name_no_as_pulumi_deploys_it(raw_stack):
    from infra.config import parse_config

    text = (REPO_ROOT / "stacks" / "Pulumi.dev.yaml").read_text().replace("neurodock:environment: dev",
                                                                          "neurodock:environment: no")
    loaded = load_stack_file("test", raw_stack(text))
    assert loaded.config["neurodock:environment"] == "no"
    assert parse_config(loaded.config).cluster_name == "neurodock-no"


def test_an_explicit_tag_go_yaml_refuses_names_its_line(raw_stack):
    path = raw_stack("config:\n  neurodock:environment: dev\n  neurodock:value: !!int abc\n")
    assert load_error(path).startswith(f"{path}: line 3, column 20: not valid YAML: cannot decode !!str `abc` as a "
                                       "!!int")


@pytest.mark.parametrize("written", [".inf", "-.Inf", ".NaN"])
def test_a_number_pulumi_cannot_pass_is_named_by_its_key(raw_stack, written):
    path = raw_stack(f"config:\n  neurodock:monitoring: {{storageGib: {written}}}\n")
    message = load_error(path)
    assert message.startswith(f"{path}: key 'neurodock:monitoring.storageGib': {written.lower()} is not a number "
                              "Pulumi can pass to a program"), message
    # The control: a finite number is passed as written.
    assert json.loads(load_stack_file("test", raw_stack("config:\n  neurodock:monitoring: {storageGib: 5}\n"))
                      .config["neurodock:monitoring"]) == {"storageGib": 5}


def test_a_key_that_is_not_text_is_passed_as_go_prints_it(raw_stack):
    loaded = load_stack_file("test", raw_stack("config:\n  neurodock:tags: {404: a, true: b, 2.0: c}\n"))
    assert json.loads(loaded.config["neurodock:tags"]) == {"404": "a", "true": "b", "2": "c"}

"""docs/configuration.md is generated from the config models, and says what they say."""

from __future__ import annotations

import json
import re

import annotated_types
import pytest
from pydantic import BaseModel

from infra.config import EksCloud, Slo, StackConfig
from infra.config.reference import REFERENCE, REGENERATE, generate, sections


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[str, dict[str, str]]]:
    """Section title -> key -> {type, default, allowed, description}, read back from the committed file."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    section = None
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("## "):
            section = out.setdefault(line[3:], {})
        elif line.startswith("| `") and section is not None:
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if len(cells) == 5:
                section[cells[0].strip("`")] = dict(zip(("type", "default", "allowed", "description"), cells[1:],
                                                        strict=True))
    return out


def test_the_committed_reference_is_what_the_models_generate():
    assert REFERENCE.read_text() == generate(), f"docs/configuration.md is out of date: run `{REGENERATE}`"


def _all_models() -> set[type[BaseModel]]:
    """Every model reachable from StackConfig, found here without the generator's walk."""
    found: set[type[BaseModel]] = set()

    def visit(annotation) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in found:
            found.add(annotation)
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for arg in getattr(annotation, "__args__", ()) or ():
            visit(arg)
        if hasattr(annotation, "__origin__") and hasattr(annotation, "__metadata__"):
            visit(annotation.__origin__)

    visit(StackConfig)
    return found


def test_every_model_and_key_is_documented_with_its_default_and_range(tables):
    models = _all_models()
    assert {m for _, m in sections()} == models
    assert len(models) > 20  # the walk found the nested models, not just the root
    for model in models:
        rows = tables[model.__name__]
        assert set(rows) == {f.alias or n for n, f in model.model_fields.items()}, model.__name__
        for name, field in model.model_fields.items():
            row = rows[field.alias or name]
            if field.is_required():
                assert row["default"] == "**required**", (model.__name__, name)
            else:
                value = field.get_default(call_default_factory=True)
                if not isinstance(value, BaseModel):
                    assert row["default"] == f"`{json.dumps(value, default=str)}`", (model.__name__, name)
            for item in field.metadata:
                for attr, symbol in (("ge", "≥"), ("le", "≤"), ("gt", ">"), ("lt", "<")):
                    if isinstance(item, getattr(annotated_types, attr.capitalize())):
                        assert f"{symbol} {getattr(item, attr)}" in row["allowed"], (model.__name__, name)


def test_claims_the_issue_found_wrong_now_come_from_the_code(tables):
    availability = Slo.model_fields["availability"]
    [minimum] = [m.ge for m in availability.metadata if isinstance(m, annotated_types.Ge)]
    assert tables["Slo"]["availability"]["allowed"].startswith(f"≥ {minimum}")
    default = EksCloud.model_fields["kubernetes_version"].default
    assert tables["EksCloud"]["kubernetesVersion"]["default"] == f'`"{default}"`'


def test_descriptions_are_the_fields_docstrings(tables):
    assert tables["Gateway"]["public"]["description"].startswith("Expose it through a cloud load balancer")
    assert all(row["description"] for rows in tables.values() for row in rows.values())
    assert tables["KindCloud"]["provider"]["description"] == "Selects this variant: `kind`."

"""The configuration reference, docs/configuration.md, generated from the config models so that it
cannot drift from the code: every key with its type, default, allowed range and description (each
field's docstring).

    python -m infra.config.reference            # rewrite docs/configuration.md
    python -m infra.config.reference --check    # exit 1 when the committed file differs

tests/test_docs_reference.py fails when the committed file and the models disagree.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from infra.config.base import CONFIG_NAMESPACE, PATTERN_HINTS
from infra.config.stack import SECRET_KEYS, StackConfig

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
REGENERATE = "python -m infra.config.reference"


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal right below it), from ``cls`` and its bases, as one line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """The annotation without ``Optional`` and ``Annotated``, the metadata those carried, and whether
    it may be null."""
    metadata: list[Any] = []
    nullable = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            metadata += list(annotation.__metadata__)
            annotation = annotation.__origin__
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) < len(typing.get_args(annotation)):
                nullable = True
                if len(args) == 1:
                    annotation = args[0]
                    continue
        return annotation, metadata, nullable


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config models an annotation holds (in a list, a map, a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _anchor(model: type) -> str:
    return model.__name__.lower()


def type_text(annotation: Any) -> str:
    annotation, _metadata, nullable = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = f"[{annotation.__name__}](#{_anchor(annotation)})"
    elif origin is typing.Literal:
        text = "one of " + ", ".join(f"`{json.dumps(v)}`" for v in typing.get_args(annotation))
    elif origin is list:
        text = f"list of {type_text(typing.get_args(annotation)[0])}"
    elif origin is dict:
        key, value = typing.get_args(annotation)
        text = f"map of {type_text(key)} to {type_text(value)}"
    elif origin in (typing.Union, types.UnionType):
        text = " or ".join(type_text(a) for a in typing.get_args(annotation))
    else:
        text = {str: "string", int: "integer", float: "number", bool: "boolean"}.get(annotation, str(annotation))
    return text + (" or null" if nullable else "")


def constraints_text(field: FieldInfo) -> str:
    """The range and form a value must have: bounds, lengths, the pattern's description."""
    annotation, inner, _ = _unwrap(field.annotation)
    parts = []
    for item in [*field.metadata, *inner]:
        for attr, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                parts.append(f"{symbol} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen):
            parts.append(f"at least {item.min_length} item{'s' if item.min_length > 1 else ''}")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length} items")
        if getattr(item, "pattern", None):
            parts.append(PATTERN_HINTS.get(item.pattern, f"matches `{item.pattern}`"))
    if typing.get_origin(annotation) is list:
        _item_annotation, item_meta, _ = _unwrap(typing.get_args(annotation)[0])
        hints = [PATTERN_HINTS.get(m.pattern, "") for m in item_meta if getattr(m, "pattern", None)]
        parts += [f"each item {h}" for h in hints if h]
    return "; ".join(dict.fromkeys(parts))


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return f"[its defaults](#{_anchor(type(value))})"
    return f"`{json.dumps(value, default=str)}`"


UNDOCUMENTED = "*(no docstring in the model yet)*"


def _fallback(model: type[BaseModel], field: FieldInfo) -> str:
    """A field without a docstring: a union's discriminator says which variant it selects; any other is
    marked, so the gap shows in the reference rather than hides."""
    annotation = _unwrap(field.annotation)[0]
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    if field.is_required() and len(choices) == 1:
        return f"Selects this variant: `{typing.get_args(annotation)[0]}`."
    return UNDOCUMENTED


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def sections(root: type[BaseModel] = StackConfig) -> list[tuple[str, type[BaseModel]]]:
    """``(key path, model)`` of every config model, breadth first from ``root``, each once (at the first
    key that holds it)."""
    out: list[tuple[str, type[BaseModel]]] = []
    seen: set[type] = set()
    queue: list[tuple[str, type[BaseModel]]] = [(CONFIG_NAMESPACE, root)]
    while queue:
        path, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        out.append((path, model))
        for name, field in model.model_fields.items():
            key = field.alias or name
            annotation = _unwrap(field.annotation)[0]
            suffix = "[]" if typing.get_origin(annotation) is list else ".*" if typing.get_origin(annotation) is dict \
                else ""
            sep = ":" if path == CONFIG_NAMESPACE else "."
            for inner in _models_in(annotation):
                queue.append((f"{path}{sep}{key}{suffix}", inner))
    return out


def generate() -> str:
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from the config models (infra/config/*.py) by `{REGENERATE}`: do not edit by hand. -->",
        "",
        f"Every key of a stack file, `stacks/Pulumi.<stack>.yaml`, lives under the `{CONFIG_NAMESPACE}:` namespace: "
        f"the top-level keys are `{CONFIG_NAMESPACE}:<key>`, and nested keys are written as YAML under them. The "
        "program refuses an unknown key, a value of the wrong type or one out of range, and names the key. The "
        "constraints below are those the models enforce; checks that span several keys (a model's pool exists, "
        "a zone is in the region, a GPU type is offered) are described with the key they are about.",
        "",
        "Columns: **key** (camelCase, as written in the file), **type**, **default** (`**required**`: no "
        "default), **allowed** (range and form), **description**.",
        "",
        "## Contents",
        "",
    ]
    all_sections = sections()
    lines += [f"- [{model.__name__}](#{_anchor(model)}): `{path}`" for path, model in all_sections]
    lines += ["- [Secrets](#secrets)", ""]
    for path, model in all_sections:
        doc = " ".join((model.__doc__ or "").split())
        lines += [f"## {model.__name__}", "", f"`{path}`" + (f": {doc}" if doc else ""), "",
                  "| key | type | default | allowed | description |", "|---|---|---|---|---|"]
        docs = field_docs(model)
        for name, field in model.model_fields.items():
            lines.append("| " + " | ".join(_cell(c) for c in (
                f"`{field.alias or name}`", type_text(field.annotation), default_text(field),
                constraints_text(field), docs.get(name) or _fallback(model, field))) + " |")
        lines.append("")
    lines += ["## Secrets", "",
              f"Set with `pulumi config set --secret {CONFIG_NAMESPACE}:<key>`; never in plain text. The program "
              "reads them as secret outputs.", "", "| key | description |", "|---|---|"]
    lines += [f"| `{CONFIG_NAMESPACE}:{key}` | {_cell(text)} |" for key, text in SECRET_KEYS.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = generate()
    if "--check" in argv:
        if not REFERENCE.is_file() or REFERENCE.read_text() != text:
            print(f"{REFERENCE} is out of date with the config models: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__: list[str] = []

"""Edits of a stack file for ``neurodock rollout step|promote|rollback``, as a person would make them: only the
changed values' text is replaced, inserted or removed, so comments, key order and quoting elsewhere stay as
written and the reviewed diff is the change itself.

The repository reads stack files with PyYAML (``infra.plan.stackfile``) and ships no round-trip YAML library;
PyYAML's composer gives every node's position in the text, which is all an in-place edit needs. Each edit is
checked before the file is written: the edited text, read back, must equal the original document with only the
intended change applied; anything else (a layout this editor does not handle) is an error and the file is left
as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from infra.config import ModelSpec

MODELS_KEY = "neurodock:models"
PROMOTED = {"source": ("source",), "revision": ("revision",), "extraArgs": ("engineArgs", "extraArgs")}
"""What a promoted canary's settings become on the model: its weights and its engine flags."""


class EditError(Exception):
    """The edit cannot be made (nothing to do, or a layout this editor does not handle): exit 2."""


@dataclass(frozen=True)
class _Splice:
    start: int
    end: int
    text: str


def _get(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    """Just past the newline ending the line that holds ``index``."""
    end = text.find("\n", index)
    return len(text) if end < 0 else end + 1


def _last_index(node: yaml.Node) -> int:
    """Where the node's last scalar or flow collection ends (a block collection's own end mark lies at the
    next key)."""
    if isinstance(node, yaml.ScalarNode) or node.flow_style:
        return node.end_mark.index
    if isinstance(node, yaml.MappingNode):
        return max(_last_index(v) for pair in node.value for v in pair)
    return max(_last_index(v) for v in node.value)


def _flow(value: Any) -> str:
    """A value as one line of flow YAML (JSON is flow YAML; strings quoted, so never retyped)."""
    return json.dumps(value)


def _block_range(text: str, key: yaml.Node, value: yaml.Node) -> tuple[int, int]:
    """The lines of ``key: value``, with the comment lines right above it at the key's indentation (they
    describe it, and would describe nothing once it is gone)."""
    start = _line_start(text, key.start_mark.index)
    indent = " " * key.start_mark.column
    while start > 0:
        previous = _line_start(text, start - 1)
        if not text[previous:start].startswith(indent + "#"):
            break
        start = previous
    return start, _line_end(text, _last_index(value))


def _models(text: str, path: Path) -> list[yaml.MappingNode]:
    root = yaml.compose(text)
    config = _get(root, "config") if isinstance(root, yaml.MappingNode) else None
    models = _get(config[1], MODELS_KEY) if config and isinstance(config[1], yaml.MappingNode) else None
    if models is None or not isinstance(models[1], yaml.SequenceNode):
        raise EditError(f"{path}: no {MODELS_KEY} list under config")
    return models[1].value


def _model_node(nodes: list[yaml.MappingNode], name: str, path: Path) -> yaml.MappingNode:
    for node in nodes:
        if isinstance(node, yaml.MappingNode) and (n := _get(node, "name")) and n[1].value == name:
            return node
    raise EditError(f"{path}: model {name!r} is not written in this file (is it in Pulumi.yaml's defaults?)")


def _set(text: str, mapping: yaml.MappingNode, keys: tuple[str, ...], value: Any, before: int) -> _Splice:
    """Set ``keys`` (a path below ``mapping``) to ``value``: replace a one-line value, or insert the missing keys
    as new lines at ``before`` (a line start) with the mapping's indentation."""
    indent = mapping.value[0][0].start_mark.column
    found = _get(mapping, keys[0])
    if found is None:
        lines = []
        for depth, key in enumerate(keys):
            tail = f" {_flow(value)}" if depth == len(keys) - 1 else ""
            lines.append(f"{' ' * (indent + 2 * depth)}{key}:{tail}\n")
        return _Splice(before, before, "".join(lines))
    key, node = found
    if len(keys) > 1:
        if not isinstance(node, yaml.MappingNode) or node.flow_style:
            raise EditError(f"{keys[0]} at line {key.start_mark.line + 1} is not a block mapping; move the "
                            f"canary's settings by hand")
        return _set(text, node, keys[1:], value, _line_end(text, _last_index(node)))
    if node.start_mark.line != node.end_mark.line:
        raise EditError(f"{keys[0]} at line {key.start_mark.line + 1} spans several lines; write it on one line "
                        "(flow style) or move the canary's settings by hand")
    return _Splice(node.start_mark.index, node.end_mark.index, _flow(value))


def _expected(document: dict, name: str, action: str, weight: int | None) -> dict:
    """``document`` (the file as read, changed in place) as the edit must leave it."""
    out = document
    [model] = [m for m in out["config"][MODELS_KEY] if m.get("name") == name]
    if action == "promote":
        canary = model.pop("canary")
        for key, target in PROMOTED.items():
            if key in canary:
                holder = model
                for part in target[:-1]:
                    holder = holder.setdefault(part, {})
                holder[target[-1]] = canary[key]
    else:
        model["canary"]["weight"] = weight
    return out


def edit_text(text: str, path: Path, model: ModelSpec, action: str) -> tuple[str, str]:
    """The stack file's text with one model's canary stepped, promoted or rolled back, and what changed."""
    canary = model.canary
    assert canary is not None
    node = _model_node(_models(text, path), model.name, path)
    found = _get(node, "canary")
    assert found is not None
    canary_key, canary_node = found
    where = f"models[{model.name}].canary"
    weight: int | None = None
    if action == "step":
        if not canary.steps:
            raise EditError(f"{where}.steps is not set: list the weights to move through, e.g. steps: [5, 25, 50]")
        from infra.rollout import next_weight

        weight = next_weight(model)
        if weight is None:
            raise EditError(f"{where} is at its last step ({canary.weight}%): `neurodock rollout promote` is next")
        splices = [_set(text, canary_node, ("weight",), weight, 0)]
        change = f"{where}.weight {canary.weight} -> {weight}"
    elif action == "rollback":
        if canary.weight == 0:
            raise EditError(f"{where}.weight is already 0: the canary takes no traffic")
        weight = 0
        splices = [_set(text, canary_node, ("weight",), 0, 0)]
        change = f"{where}.weight {canary.weight} -> 0 (rolled back)"
    else:
        if canary.image is not None:
            raise EditError(f"{where}.image: the stable version runs the engine image pinned in components/versions.py;"
                            " pin the canary's image there, then remove the canary")
        start, end = _block_range(text, canary_key, canary_node)
        splices = [_Splice(start, end, "")]
        moved = []
        for key, target in PROMOTED.items():
            value = getattr(canary, {"extraArgs": "extra_args"}.get(key, key))
            if value is not None:
                splices.append(_set(text, node, target, value, start))
                moved.append(".".join(target))
        change = f"{where} promoted: {', '.join(moved) or 'nothing'} moved to the model, the canary removed"
    edited = text
    for splice in sorted(splices, key=lambda s: (s.start, s.end), reverse=True):
        edited = edited[:splice.start] + splice.text + edited[splice.end:]
    if yaml.safe_load(edited) != _expected(yaml.safe_load(text), model.name, action, weight):
        raise EditError(f"{path}: the edit of {where} would change more than intended (an unusual layout); edit "
                        "the file by hand")
    return edited, change


def apply(path: Path, models: list[ModelSpec], action: str) -> list[str]:
    """Edit the stack file for every model given, all or nothing; the changes made, in words."""
    from infra.config import ConfigError, parse_config
    from infra.plan.stackfile import StackFileError, load_stack_file

    text = path.read_text()
    changes = []
    for model in models:
        text, change = edit_text(text, path, model, action)
        changes.append(change)
    # The edited stack must still be valid configuration before it replaces the file.
    scratch = path.with_name(f".{path.name}.rollout")
    scratch.write_text(text)
    try:
        stack = load_stack_file("rollout", scratch)
        parse_config(stack.config, stack.secret_keys)
    except (StackFileError, ConfigError) as exc:
        detail = "; ".join(map(str, getattr(exc, "problems", []))) or str(exc)
        raise EditError(f"the edited stack would not be valid, so {path} is unchanged: {detail}") from None
    finally:
        scratch.unlink(missing_ok=True)
    path.write_text(text)
    return changes

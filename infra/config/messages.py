"""Pydantic's errors as problems users can act on: the key as they wrote it, and a plain sentence."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from infra.config.base import CONFIG_NAMESPACE, PATTERN_HINTS, Problem, key_path

GO_TIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)? [-+]\d{4} \S+")
"""How Pulumi passes an unquoted YAML timestamp to the program: Go's ``time.Time.String()``
(``2026-01-03 01:00:00 +0000 UTC``; infra.plan.stackfile reads stack files the same way)."""

# --------------------------------------------------------------------------------------------
# Structural problems: pydantic errors rewritten as key paths and plain sentences
# --------------------------------------------------------------------------------------------


def structural_problems(exc: ValidationError, data: Any, root: type[BaseModel] | None = None,
                        namespace: str = CONFIG_NAMESPACE) -> list[Problem]:
    """One problem per pydantic error, each naming the key as written (``namespace:a.b[1].c``).
    ``root`` is the model validated (default ``StackConfig``), for "did you mean" hints."""
    if root is None:
        from infra.config.stack import StackConfig as root  # the package's root model
    problems = []
    for error in exc.errors(include_url=False):
        loc = _user_loc(error["loc"], data)
        kind = error["type"]
        value = error.get("input")
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            tag = error["ctx"]["discriminator"].strip("'")
            # pydantic lists the tags only when the one given is wrong, not when it is missing.
            allowed = ", ".join(repr(t) for t in _union_tags(loc, data, root, tag))
            got = error["ctx"].get("tag")
            loc = (*loc, tag)
            message = (f"must be one of {allowed} (got {got!r})" if got is not None
                       else f"is required: one of {allowed}")
        elif kind == "extra_forbidden":
            message = _unknown_key_message(loc, data, root)
        elif kind == "missing":
            message = "is required but missing"
        elif value is None or value == "null":
            message = "is empty; give it a value, or remove the key for its default"
        elif kind == "string_type" and isinstance(value, bool):
            # Pulumi's YAML (go-yaml v3) reads only true and false (any case: True, TRUE) as booleans, and
            # `pulumi config set --path` stores "true"/"false" as booleans unless told --type string.
            message = (f"must be text, but YAML read the unquoted {str(value).lower()} as a boolean; put the value in "
                       f"quotes, e.g. \"{str(value).lower()}\" (with `pulumi config set --path`, add --type string)")
        elif kind == "string_type" and isinstance(value, (int, float)):
            # YAML has already turned 1.30 into 1.3: only an integer can be quoted back as written.
            quoted = value if isinstance(value, int) else _example(error, data, root) or value
            message = (f"must be text, but YAML read the unquoted {value!r} as a number"
                       + (" (1.30 reads as 1.3)" if isinstance(value, float) else "")
                       + f"; put the value in quotes, e.g. \"{quoted}\"")
        elif kind == "string_pattern_mismatch" and isinstance(value, str) and GO_TIME_TEXT.fullmatch(value):
            message = (f"{PATTERN_HINTS.get(error['ctx']['pattern'], 'must be text')}, but YAML read an unquoted date "
                       f"or time as a timestamp, which Pulumi passes on as {value!r}; put the value in quotes")
        elif kind == "string_pattern_mismatch" and error["ctx"]["pattern"] in PATTERN_HINTS:
            message = f"{PATTERN_HINTS[error['ctx']['pattern']]} (got {value!r})"
        else:
            message = _sentence(error["msg"])
            if "input" in error and not isinstance(value, (dict, list)):
                message += f" (got {value!r})"
        problems.append(Problem(key_path(loc, namespace), message))
    return problems


def _user_loc(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """Drop the tags pydantic inserts into locations inside discriminated unions.

    For ``cloud: {provider: eks, zones: ...}`` pydantic reports ``("cloud", "eks", "zones")``; the
    user wrote ``cloud.zones``. A string that is not a key of the input mapping but is the value of
    one of its keys is such a tag.
    """
    out: list[str | int] = []
    node = data
    for part in loc:
        is_tag = (isinstance(node, Mapping) and isinstance(part, str) and part not in node
                  and part in {v for v in node.values() if isinstance(v, str)})
        if is_tag:
            continue
        out.append(part)
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def _unknown_key_message(loc: tuple[str | int, ...], data: Any, root: type[BaseModel]) -> str:
    allowed = _allowed_keys(loc[:-1], data, root)
    key = str(loc[-1])
    if not allowed:
        return "unknown key"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}allowed keys: {', '.join(allowed)}"


def _allowed_keys(loc: tuple[str | int, ...], data: Any, root: type[BaseModel]) -> list[str]:
    """The camelCase keys of the model found at ``loc``."""
    annotation = _resolve(*_annotation_at(loc, data, root))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sorted(f.alias or n for n, f in annotation.model_fields.items())
    return []


def _union_tags(loc: tuple[str | int, ...], data: Any, root: type[BaseModel], tag: str) -> list[str]:
    """The values the discriminator ``tag`` may take in the tagged union at ``loc``."""
    annotation, _ = _annotation_at(loc, data, root)
    while get_origin(annotation) is Annotated or _is_union(annotation):
        members = get_args(annotation)
        if get_origin(annotation) is Annotated or (len(members) == 2 and type(None) in members):
            annotation = next(m for m in members if m is not type(None))
            continue
        return [value for member in members if isinstance(member, type) and tag in member.model_fields
                for value in get_args(member.model_fields[tag].annotation)]
    return []


def _example(error: Any, data: Any, root: type[BaseModel]) -> str | None:
    """The documented example value of the field an error is about."""
    pending = [_annotation_at(_user_loc(error["loc"], data), data, root)[0]]
    while pending:
        annotation = pending.pop()
        if getattr(annotation, "examples", None):
            return str(annotation.examples[0])
        pending.extend(get_args(annotation))
    return None


def _annotation_at(loc: tuple[str | int, ...], data: Any, root: type[BaseModel]) -> tuple[Any, Any]:
    """The type annotation of the key at ``loc``, and the input there (walked alongside, to pick the
    member of a tagged union the input chose)."""
    annotation: Any = root
    node = data
    for part in loc:
        annotation = _resolve(annotation, node)
        if isinstance(part, int):
            args = get_args(annotation)
            annotation = args[0] if args else Any
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = next(
                (f for n, f in annotation.model_fields.items() if (f.alias or n) == part), None
            )
            if field is None:
                return Any, None
            annotation = field.annotation
            # Field metadata (the pattern's description and example) travels with the annotation.
            if field.metadata or field.examples:
                annotation = Annotated[annotation, *field.metadata, field]
        else:
            args = get_args(annotation)
            annotation = args[-1] if args else Any
        node = node.get(part) if isinstance(node, Mapping) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
        )
    return annotation, node


def _resolve(annotation: Any, node: Any) -> Any:
    """Unwrap ``Annotated`` and ``Optional``, and pick a union member by its ``provider`` tag."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    members = [a for a in get_args(annotation) if a is not type(None)] if _is_union(annotation) else []
    if not members:
        return annotation
    if len(members) == 1:
        return _resolve(members[0], node)
    for member in members:
        tag = member.model_fields.get("provider") if isinstance(member, type) else None
        if tag and isinstance(node, Mapping) and node.get("provider") in get_args(tag.annotation):
            return member
    return annotation


def _is_union(annotation: Any) -> bool:
    import types

    return get_origin(annotation) in (Union, types.UnionType)


def _sentence(msg: str) -> str:
    """Pydantic's 'Input should be a valid dictionary' becomes 'must be a mapping of keys to values'."""
    for pydantic_words, ours in (
        (r"^Input should be a valid dictionary or object to extract fields from", "must be a mapping of keys"),
        (r"^Input should be a valid dictionary", "must be a mapping of keys to values"),
        (r"^Input should be a valid list", "must be a list"),
        (r"^Input should be a valid string", "must be text"),
        (r"^Input should be a valid integer, got a number with a fractional part", "must be a whole number"),
        (r"^Input should be", "must be"),
        (r"^List should have at least (\d+) items? after validation, not 0", r"must have at least \1 (got none)"),
        (r"^List should have at least (\d+) items? after validation, not (\d+)", r"must have at least \1 (got \2)"),
        (r"^Value error, ", ""),
    ):
        msg = re.sub(pydantic_words, ours, msg)
    return msg[:1].lower() + msg[1:]


__all__ = [
    "GO_TIME_TEXT",
    "structural_problems"
]

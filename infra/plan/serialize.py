"""The SDK's serialisation of a resource's inputs, with a synchronous path for plain values.

``pulumi.runtime.rpc.serialize_property`` awaits one coroutine per value of an input, however deep: a
CustomResourceDefinition's schema is tens of thousands of values, and serialising them was a fifth of a
plan's time. Values that hold nothing to await (``str``, ``bool``, ``int``, ``float``, ``None``, and
``list``, ``tuple`` and ``dict`` of those) are serialised here without coroutines, by the same steps as
the SDK's (pulumi 3.272 ``rpc.py``, ``serialize_property``: the sequence and mapping branches, the type's
names and types where it is an input type, a discriminated union reduced to its member); anything else
(an ``Output``, a resource, an asset, an input type, an enum) goes to the SDK's own, and so does a value
this path cannot serialise, so that the SDK raises its own error.
"""

from __future__ import annotations

import typing
from collections import abc
from collections.abc import Callable
from typing import Any, get_args, get_origin

from pulumi import _types
from pulumi.runtime import rpc, settings

_SCALARS = frozenset({str, bool, int, float, type(None)})
_MAPPING_ORIGINS = (dict, typing.Dict, abc.Mapping, typing.Mapping)  # noqa: UP006 - the SDK's own list
_unwrapped: dict[Any, Any] = {}


class _NotPlain(Exception):
    """The value holds something only the SDK's own serialisation handles."""


def _unwrap(typ: Any) -> Any:
    if not typ:
        return typ
    try:
        return _unwrapped[typ]
    except KeyError:
        unwrapped = _unwrapped[typ] = _types.unwrap_type(typ)
        return unwrapped
    except TypeError:  # not hashable
        return _types.unwrap_type(typ)


def plain(value: Any, input_transformer: Callable[[str], str] | None, typ: Any) -> Any:
    """``value`` as ``serialize_property`` serialises it (``_NotPlain`` where it holds more than plain data)."""
    typ = _unwrap(typ)
    if typ is Any:
        typ = None
    cls = type(value)
    if cls in _SCALARS:
        return value
    if cls is list or cls is tuple:
        element_type = rpc._get_list_element_type(typ)
        return [plain(item, input_transformer, element_type) for item in value]
    if cls is not dict:
        raise _NotPlain
    get_type: Callable[[str], Any] = lambda k: None  # noqa: E731
    translate = input_transformer
    if typ is not None:
        case = _types.reduce_discriminated_union(typ, value, _types._py_name_for)
        if case is not None:
            typ = case
        if _types.is_input_type(typ):
            py_name_to_pulumi_name = _types.input_type_py_to_pulumi_names(typ)
            types = _types.input_type_types(typ)
            translate = lambda k: py_name_to_pulumi_name.get(k) or k  # noqa: E731
            get_type = types.get
        elif typ is dict or get_origin(typ) in _MAPPING_ORIGINS:
            args = get_args(typ)
            if len(args) == 2 and args[0] is str:
                get_type = lambda k: args[1]  # noqa: E731
                translate = None
        else:
            translate = None
    out = {}
    for key in value:
        translated = translate(key) if translate is not None else key
        out[translated] = plain(value[key], input_transformer, get_type(translated))
    return out


def with_plain_path(original: Callable[..., Any]) -> Callable[..., Any]:
    """``rpc.serialize_property`` (``original``) serialising plain values through ``plain``: a plan puts it in
    the SDK's place while the program runs (the SDK's recursion calls it by its module's name)."""

    async def serialize_property(value, deps, property_key, resource_obj=None, input_transformer=None, typ=None,
                                 keep_output_values=False, exclude_resource_refs_from_deps=False,
                                 return_protobuf_value=False):
        if not return_protobuf_value and not settings.excessive_debug_output:
            try:
                return plain(value, input_transformer, typ)
            except Exception:  # the SDK's own path decides, and raises its own error
                pass
        return await original(value, deps, property_key, resource_obj, input_transformer, typ, keep_output_values,
                              exclude_resource_refs_from_deps, return_protobuf_value)

    return serialize_property

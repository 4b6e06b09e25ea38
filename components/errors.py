"""Component input errors: every problem with a component's Args, collected before any child exists and
raised at once as one ``pulumi.InputPropertiesError`` (STYLE #20), as pulumi-eks's node groups do
(``nodejs/eks/nodes/nodegroup.ts``: ``validationErrors`` pushed, then one ``InputPropertiesError``).

The pinned SDK (pulumi 3.272.0):

- ``pulumi/errors.py:34-52``: ``InputPropertiesError(message, errors)``, where ``errors`` is a list of
  ``InputPropertyErrorDetails``, a TypedDict ``{"property_path": str, "reason": str}``; ``str()`` of the
  error is ``message`` (``Exception.__init__(message)``).
- ``pulumi/provider/server.py:89-118`` and ``:120-139`` (``Construct``), ``:345-358`` (``Call``): a
  component *provider* turns it into a gRPC ``INVALID_ARGUMENT`` status carrying a
  ``pulumirpc.InputPropertiesError`` detail (``runtime/proto/errors_pb2.pyi:47-86``: "the path to the
  property that is invalid", "the reason"), which the engine prints as ``path: reason`` lines.
- ``pulumi/provider/experimental/component.py:160-162`` and ``:231-235``: the path form the SDK itself
  builds for a component's inputs: input names joined with ``.``, a list item as ``name[i]``.

NeuroDock's components run inside the program, not behind a provider: there the error is an ordinary
exception. The language host prints anything but a ``pulumi.RunError`` as "Program failed with an
unhandled exception" and its traceback (pulumi/pulumi ``sdk/python/cmd/pulumi-language-python-exec``),
as it did the ``ValueError`` this replaces, so the message keeps every reason, joined with ``; `` as
before, and ``errors`` carries each with its path.

Paths name the Args fields as the component's inputs name them (its dataclass fields, snake_case):
``allowed_cidrs``, ``settings.gguf_file``, ``node_pools[1].instance_types``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pulumi

_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")


def property_path(*parts: str | int) -> str:
    """An input's property path: field names joined with ``.``, list indices as ``[i]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            if not out:
                raise ValueError("a property path starts with a field name")
            out += f"[{part}]"
        else:
            if not _FIELD.match(part):
                raise ValueError(f"not an Args field name: {part!r}")
            out += f".{part}" if out else part
    if not out:
        raise ValueError("an empty property path")
    return out


class InputProblems:
    """A component's input errors, collected in order, then raised together by :meth:`raise_any`."""

    def __init__(self) -> None:
        self._errors: list[pulumi.InputPropertyErrorDetails] = []

    def add(self, path: str | Sequence[str | int], reason: str) -> None:
        """One problem: the Args field it is about (a name, or the parts of a nested path) and a sentence
        naming the field and the fix."""
        parts = (path,) if isinstance(path, str) else tuple(path)
        self._errors.append({"property_path": property_path(*parts), "reason": reason})

    def __bool__(self) -> bool:
        return bool(self._errors)

    def raise_any(self) -> None:
        """Raise every problem as one ``pulumi.InputPropertiesError``; nothing when there is none."""
        if self._errors:
            raise pulumi.InputPropertiesError("; ".join(e["reason"] for e in self._errors), list(self._errors))

"""How the pack's process hands values to its policies, set up by the pack's entry point (``__main__.py``)
before it serves: over pulumi-policy 1.21.0's server (``pulumi_policy/policy.py``), whose names
``deserialize_properties``, ``unknown_checking_proxy`` and ``json_format`` are wrapped here.

1. Secrets keep a mark (``neurodock_policies.secrets``): the engine sends them wrapped, pulumi-policy unwraps
   them into bare plaintext.
2. Policies get plain ``dict``/``list`` values with each unknown as the string ``"[unknown]"`` (as offline),
   not pulumi-policy's read-only proxies, whose every read of an unknown raises ``UnknownValueError`` and
   turns the whole policy advisory for the run (``support.plain`` explains why NeuroDock's policies judge
   what is known instead).
3. A stack policy run converts every resource's properties from protobuf again, once per policy
   (``AnalyzeStack``): the conversion of one message is kept for the next policies of the same call.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from neurodock_policies.secrets import keep_secret_marks
from neurodock_policies.support import plain


def _unknowns_marked(props: Any) -> Any:
    """What ``unknown_checking_proxy`` is replaced by: plain values, unknowns marked."""
    return plain(props)


class _CachingJsonFormat:
    """``google.protobuf.json_format`` for pulumi-policy's server, remembering the last conversions by the
    message's deterministic serialisation (conversions are pure; their results are only read)."""

    def __init__(self, json_format: Any, size: int = 8192) -> None:
        self._json_format = json_format
        self._cache: OrderedDict[bytes, Any] = OrderedDict()
        self._size = size

    def MessageToDict(self, message, *args, **kwargs):
        if args or kwargs:
            return self._json_format.MessageToDict(message, *args, **kwargs)
        key = hashlib.blake2b(message.SerializeToString(deterministic=True), digest_size=20).digest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = self._json_format.MessageToDict(message)
        self._cache[key] = value
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._json_format, name)


def prepare() -> None:
    """Set up pulumi-policy's server as this module's docstring says; idempotent."""
    import pulumi_policy.policy as server

    keep_secret_marks()
    if server.unknown_checking_proxy is not _unknowns_marked:
        server.unknown_checking_proxy = _unknowns_marked
    if not isinstance(server.json_format, _CachingJsonFormat):
        server.json_format = _CachingJsonFormat(server.json_format)

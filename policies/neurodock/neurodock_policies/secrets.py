"""Which values a policy sees are Pulumi secrets.

The engine sends a policy pack every secret wrapped with its value (pulumi
``pkg/resource/plugin/analyzer_plugin.go``: ``MarshalOptions{KeepSecrets: true}``), and pulumi-policy
unwraps it before any policy runs (pulumi_policy 1.21.0 ``deserialize.py``, ``_deserialize_property``:
``proxy_secrets`` is False for ``Analyze`` and ``AnalyzeStack``), so a policy sees a secret's plaintext and
cannot tell it from a plain value. The pack's entry point (``__main__.py``) calls ``keep_secret_marks``
first: every secret's leaves then arrive as ``str``/``int``/``float`` subclasses that say so, and behave
as the plain values everywhere else.
"""

from __future__ import annotations

from typing import Any

SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class SecretStr(str):
    """A string that was a Pulumi secret."""


class SecretInt(int):
    """A number that was a Pulumi secret."""


class SecretFloat(float):
    """A number that was a Pulumi secret."""


def is_secret(value: Any) -> bool:
    """Whether ``value`` (a leaf a policy read) was a Pulumi secret."""
    return isinstance(value, (SecretStr, SecretInt, SecretFloat))


def mark(value: Any) -> Any:
    """``value`` with each leaf marked secret: a secret object's fields are secrets too."""
    if isinstance(value, dict):
        return {k: mark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mark(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value  # bool cannot be subclassed; a secret flag or null reveals little
    if isinstance(value, str):
        return SecretStr(value)
    if isinstance(value, int):
        return SecretInt(value)
    if isinstance(value, float):
        return SecretFloat(value)
    return value


def unwrap_marking(value: Any) -> Any:
    """Wire properties with each secret replaced by its value, marked."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            return mark(unwrap_marking(value.get("value")))
        return {k: unwrap_marking(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_marking(v) for v in value]
    return value


def keep_secret_marks() -> None:
    """Make pulumi-policy's server hand policies marked secrets (``is_secret``) instead of bare plaintext.
    Its ``Analyze`` and ``AnalyzeStack`` deserialize properties through ``pulumi_policy.policy``'s own
    name ``deserialize_properties``; that name is wrapped to unwrap the secrets first, marking them."""
    import pulumi_policy.policy as server

    original = server.deserialize_properties
    if getattr(original, "keeps_secret_marks", False):
        return

    def deserialize_properties(props, proxy_secrets=False):
        return original(props if proxy_secrets else unwrap_marking(props), proxy_secrets)

    deserialize_properties.keeps_secret_marks = True  # type: ignore[attr-defined]
    server.deserialize_properties = deserialize_properties

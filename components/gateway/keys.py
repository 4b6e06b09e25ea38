"""The gateway's API keys document (``neurodock:gatewayApiKeys``), read by the configuration check when the
program starts and by the gateway when it writes its key Secret: one definition, free of the SDKs, so the
configuration check can import it cheaply."""

from __future__ import annotations

import json
import re

SMOKE_TEST_CLIENT = "neurodock-smoke-test"
"""The client id of the smoke test's own key, which the stack adds to the gateway's keys."""
MIN_KEY_LENGTH = 16
CLIENT_ID = re.compile(r"[-._a-zA-Z0-9]+")


def api_keys_problem(text: str) -> str | None:
    """What is wrong with a ``neurodock:gatewayApiKeys`` document, as the end of a sentence about the key
    (never quoting a key); None when it is a JSON object of client id to key."""
    try:
        keys = json.loads(text)
    except ValueError:
        return 'must be a JSON object of client id to key, e.g. {"team-a": "sk-..."}; it is not JSON'
    if not isinstance(keys, dict) or not keys or not all(
            isinstance(k, str) and isinstance(v, str) and k and len(v) >= MIN_KEY_LENGTH for k, v in keys.items()):
        return ('must be a non-empty JSON object of client id to key, with keys of at least '
                f'{MIN_KEY_LENGTH} characters, e.g. {{"team-a": "sk-..."}}')
    if SMOKE_TEST_CLIENT in keys:
        return f"has the client id {SMOKE_TEST_CLIENT!r}, which is reserved for the smoke test; rename that client"
    # Client ids become the keys of the gateway's key Secret, which the API server refuses otherwise (Kubernetes
    # core/v1 Secret.data: "The key must consist of alphanumeric characters, '-', '_' or '.'"; apimachinery
    # validation.IsConfigMapKey, at most 253 characters, and neither '.' nor '..' nor starting with '..').
    bad = [k for k in keys if not CLIENT_ID.fullmatch(k) or len(k) > 253 or k in (".", "..") or k.startswith("..")]
    if bad:
        return (f"has the client id {bad[0]!r}, which cannot be a key of the gateway's Secret: use letters, digits, "
                "'-', '_' and '.' only (at most 253, not starting with '..')")
    return None


def parse_api_keys(text: str) -> dict[str, str]:
    """``neurodock:gatewayApiKeys`` as client id to key (``ValueError`` naming the key)."""
    if (problem := api_keys_problem(text)) is not None:
        raise ValueError(f"neurodock:gatewayApiKeys {problem}")
    return json.loads(text)

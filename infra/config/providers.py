"""Credentials in the cloud providers' own config namespaces (``aws:``, ``gcp:``, ``kubernetes:``): a stack file
holding one in plain text puts it in git and in every plan, whatever NeuroDock's keys say."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from infra.config.base import Problem, decode, key_path

# The credential-bearing keys of each provider's configuration, as the provider schemas generate them into the
# pinned SDKs (read 2026-12-06): pulumi_aws 7.51.1 config/vars.py and config/outputs.py (accessKey, secretKey,
# token; assumeRoleWithWebIdentity.webIdentityToken), pulumi_gcp 10.2.0 config/vars.py and config/outputs.py
# (credentials, accessToken; externalCredentials.identityToken), pulumi_kubernetes 4.34.2 provider.py (kubeconfig:
# "The contents of a kubeconfig file or the path to a kubeconfig file").
PROVIDER_CREDENTIALS: dict[str, str] = {
    "aws:accessKey": "an AWS access key id",
    "aws:secretKey": "an AWS secret access key",
    "aws:token": "an AWS session token",
    "gcp:accessToken": "a Google Cloud OAuth access token",
}
"""Keys whose every value is a credential."""
PROVIDER_NESTED_CREDENTIALS: dict[str, tuple[str, str]] = {
    "aws:assumeRoleWithWebIdentity": ("webIdentityToken", "a web identity (OIDC) token"),
    "gcp:externalCredentials": ("identityToken", "an identity token"),
}
"""Keys holding an object, one field of which is a credential."""
PROVIDER_FILE_OR_CONTENT: dict[str, str] = {
    "gcp:credentials": "a Google Cloud service account key",
    "kubernetes:kubeconfig": "a kubeconfig with user credentials",
}
"""Keys that take a file's path (no secret) or its contents (a credential, for a key file or a kubeconfig whose
user holds a token, a client key or a password)."""
KUBECONFIG_CREDENTIAL = re.compile(r"""["']?(token|client-key-data|client-key|password)["']?\s*:""")


def _is_content(value: str) -> bool:
    text = value.strip()
    return "\n" in text or text.startswith(("{", "apiVersion"))


def provider_credential_problems(values: Mapping[str, Any], secret_keys: Iterable[str]) -> list[Problem]:
    """A problem for each provider credential given in plain text (a ``secure:`` value is fine)."""
    secret = set(secret_keys)
    out = []

    def add(full_key: str, field: str | None, what: str) -> None:
        namespace, _, key = full_key.partition(":")
        where = key_path((key, field) if field else (key,), namespace)
        command = f"pulumi config set --secret {'--path ' if field else ''}{where}"
        out.append(Problem(where, (
            f"holds {what} in plain text, which would sit in git and in every plan; remove it, revoke it, and set it "
            f"with `{command}` (or leave it out and give the deploy its credentials through its environment)")))

    for full_key, value in values.items():
        if full_key in secret or value in (None, ""):
            continue
        if full_key in PROVIDER_CREDENTIALS:
            add(full_key, None, PROVIDER_CREDENTIALS[full_key])
        elif full_key in PROVIDER_NESTED_CREDENTIALS:
            field, what = PROVIDER_NESTED_CREDENTIALS[full_key]
            if isinstance(obj := decode(value), Mapping) and obj.get(field):
                add(full_key, field, what)
        elif full_key in PROVIDER_FILE_OR_CONTENT and isinstance(value, str) and _is_content(value):
            if full_key == "kubernetes:kubeconfig" and not KUBECONFIG_CREDENTIAL.search(value):
                continue  # an exec plugin or auth provider fetches the credential: the file holds none
            add(full_key, None, PROVIDER_FILE_OR_CONTENT[full_key])
    return out


__all__ = [
    "KUBECONFIG_CREDENTIAL", "PROVIDER_CREDENTIALS", "PROVIDER_FILE_OR_CONTENT", "PROVIDER_NESTED_CREDENTIALS",
    "provider_credential_problems"
]

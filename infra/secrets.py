"""Secret configuration values, read as secret Outputs and never as plain strings.

``neurodock plan`` runs without the stack's secrets provider, so it cannot decrypt ``secure:``
values; it hands the program the engine's own marker for an unknown value instead, and the program
sees an unknown secret, exactly as ``pulumi preview`` shows a value that is not known yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER

from infra.config import CONFIG_NAMESPACE


@dataclass(frozen=True)
class StackSecrets:
    hf_token: pulumi.Output[str] | None
    """Hugging Face token (``neurodock:hfToken``), when set."""
    grafana_admin_password: pulumi.Output[str] | None = None
    """Grafana admin password (``neurodock:grafanaAdminPassword``), when set."""
    gateway_api_keys: pulumi.Output[str] | None = None
    """API keys of the gateway (``neurodock:gatewayApiKeys``): a JSON object of client id to key."""
    gateway_tls_cert: pulumi.Output[str] | None = None
    """PEM certificate chain of the gateway (``neurodock:gatewayTlsCert``)."""
    gateway_tls_key: pulumi.Output[str] | None = None
    """PEM private key of the gateway (``neurodock:gatewayTlsKey``)."""
    alert_receiver_secrets: pulumi.Output[str] | None = None
    """Credentials of the alert receivers (``neurodock:alertReceiverSecrets``): a JSON object of
    receiver name to credential."""

    @classmethod
    def from_pulumi_config(cls) -> StackSecrets:
        return cls(hf_token=read_secret("hfToken"), grafana_admin_password=read_secret("grafanaAdminPassword"),
                   gateway_api_keys=read_secret("gatewayApiKeys"), gateway_tls_cert=read_secret("gatewayTlsCert"),
                   gateway_tls_key=read_secret("gatewayTlsKey"),
                   alert_receiver_secrets=read_secret("alertReceiverSecrets"))


def read_secret(key: str) -> pulumi.Output[str] | None:
    """The secret ``neurodock:<key>`` as a secret Output, or None when it is not set."""
    # The raw value: Config.get would warn that a secret is read as plain text.
    value = pulumi.runtime.get_config(f"{CONFIG_NAMESPACE}:{key}")
    if value is None:
        return None
    if value == UNKNOWN_MARKER:
        return unknown_secret()
    return pulumi.Output.secret(value)


def unknown_secret() -> pulumi.Output[str]:
    """A secret Output whose value is not known, as during a preview."""

    async def const(value):
        return value

    return pulumi.Output(set(), const(None), const(False), const(True))

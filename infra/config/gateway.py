"""The gateway: the stack's one OpenAI-compatible entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.config.base import (
    CONFIG_NAMESPACE,
    Cidr,
    Model,
    Problem,
    allowlist_breadth_problem,
    cidr_problem,
    key_path,
)

if TYPE_CHECKING:
    from infra.config.stack import StackConfig


class Gateway(Model):
    """The single OpenAI-compatible entry point for every model."""

    enabled: bool = True
    """Install the gateway (default true)."""
    public: bool = False
    """Expose it through a cloud load balancer (default false: in-cluster only); needs ``allowedCidrs``, ``tls`` and
    the secret ``gatewayApiKeys``."""
    allowed_cidrs: list[Cidr] = []
    """Sources allowed to a public gateway; required when ``public`` is true."""
    tls: bool = False
    """Serve HTTPS with the certificate in the secrets ``gatewayTlsCert``/``gatewayTlsKey`` (default false)."""
    smoke_test: bool = True
    """After each deployment, send a chat completion to every model; `pulumi up` fails if one does
    not answer (default true)."""


def gateway_problems(config: StackConfig) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(key_path(loc), message))

    if config.gateway.public and not config.gateway.allowed_cidrs:
        add(("gateway", "allowedCidrs"), "a public gateway needs an allow-list of source CIDRs, or set gateway.public "
            "to false")
    for j, cidr in enumerate(config.gateway.allowed_cidrs):
        problem = cidr_problem(cidr)
        if problem or cidr.endswith("/0"):
            add(("gateway", "allowedCidrs", j), problem or "0.0.0.0/0 opens the models to the internet; list your "
                "own CIDRs")
    wide = allowlist_breadth_problem(config.gateway.allowed_cidrs, "the models")
    if wide is not None and not any(c.endswith("/0") for c in config.gateway.allowed_cidrs):
        add(("gateway", "allowedCidrs"), wide)
    # Secure by default: on the internet, HTTPS and API keys, however narrow the allow-list.
    if config.gateway.enabled and config.gateway.public:
        if not config.gateway.tls:
            add(("gateway", "tls"), "a public gateway must serve HTTPS, or prompts, answers and API keys cross the "
                "internet in clear: set gateway.tls to true, with the certificate in the secrets gatewayTlsCert and "
                "gatewayTlsKey, or set gateway.public to false")
        if f"{CONFIG_NAMESPACE}:gatewayApiKeys" not in config.secrets_set:
            add(("gatewayApiKeys",), "a public gateway needs API keys, or any address of gateway.allowedCidrs may "
                "use every model: `pulumi config set --secret neurodock:gatewayApiKeys '{\"team-a\": \"<key>\"}'`, "
                "or set gateway.public to false")
    return problems


__all__ = [
    "Gateway", "gateway_problems"
]

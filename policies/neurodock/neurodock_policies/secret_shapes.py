"""Values shaped like well-known credentials, and flags that take one: the one list that both the stack
config check (``infra.config``) and the no-plaintext-secrets policy read.

Every shape is anchored on a vendor prefix, so it never matches a 40-hex Hugging Face revision, an image
digest, an ARN or a name such as ``hf_transfer``. Sources (docs/upstream.md, "Secrets in plain text"):
gitleaks ``config/gitleaks.toml`` at b58d3f10 and Yelp/detect-secrets ``detect_secrets/plugins`` at 5e141933;
Google's own API-key example; GitHub's 2021 token-format changelog.
"""

from __future__ import annotations

import re

SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((what, re.compile(regex)) for what, regex in (
    # gitleaks huggingface-access-token: hf_ and 34 letters (digits allowed here too, to be safe).
    ("a Hugging Face token", r"(?<![A-Za-z0-9_])(?:hf|api_org)_[A-Za-z0-9]{34,}(?![A-Za-z0-9_])"),
    # gitleaks aws-access-token; AKIA long-term, ASIA temporary (STS GetAccessKeyInfo).
    # A digit among the 16 spares words such as ASIAPACIFICSALESTEAM; a random id lacks one 3% of the time.
    ("an AWS access key id", r"(?<![A-Z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)(?=[A-Z2-7]{0,15}[2-7])[A-Z2-7]{16}"
                             r"(?![A-Z0-9])"),
    ("a GitHub token", r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,})"),
    ("an OpenAI API key", r"(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}"
                          r"|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})"),
    ("an Anthropic API key", r"(?<![A-Za-z0-9_-])sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{40,}"),
    ("a Slack token", r"(?<![A-Za-z0-9])(?:xox[abposer]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9]+-\d+-[a-z0-9]+)"),
    ("a Slack webhook URL", r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_+/]{20,}"),
    ("a Google API key", r"(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])"),
    ("a Google service-account key", r"\"type\"\s*:\s*\"service_account\""),
    ("a private key", r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-"),
    ("a JSON Web Token", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*"),
    ("a password in a URL", r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
))
"""(what it is, its shape)."""

SECRET_FLAG = re.compile(r"^--?(?:[a-z0-9]+[-_])*(?:api[-_]?key|token|password|passwd|secret|secret[-_]key"
                         r"|access[-_]key|credentials?)$", re.IGNORECASE)
"""An engine flag whose value is a credential: vLLM's and llama.cpp's ``--api-key``, vLLM's ``--hf-token``.
``--max-num-batched-tokens`` and ``--tokenizer`` are not."""
REFERENCE = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)")
"""``$(VAR)``: Kubernetes puts the container's env var there, read from a Secret: the way to pass one."""


def secret_shape(value: str) -> str | None:
    """What credential ``value`` looks like (``"a Hugging Face token"``), or None."""
    return next((what for what, shape in SHAPES if shape.search(value)), None)


def secret_args(args: list[str]) -> list[tuple[int, str]]:
    """``(index, what)`` for each command-line item that holds a credential: a value shaped like one, or
    the value given to a flag such as ``--api-key`` (``--api-key=KEY`` or ``--api-key KEY``)."""
    out = []
    for i, arg in enumerate(args):
        flag, joined, value = arg.partition("=")
        following = args[i + 1] if i + 1 < len(args) else "-"
        given = value if joined else following
        if SECRET_FLAG.match(flag) and given and not given.startswith("-") and not REFERENCE.fullmatch(given):
            out.append((i if joined else i + 1, f"the value of {flag}"))
        elif (what := secret_shape(arg)) is not None and (i, f"the value of {args[i - 1]}") not in out:
            out.append((i, what))
    return out

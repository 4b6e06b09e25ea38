"""Offline plans: the stack program run in process under Pulumi's mocks.

``run_plan`` runs ``infra/__main__.py`` exactly as the Python language host does for ``pulumi up``,
with a resource monitor that records every registration instead of creating anything, and mock
providers that answer with outputs shaped like the real ones (ids, ARNs, endpoints, kubeconfigs).
"""

from __future__ import annotations

import pulumi

_offline = False


def previewing() -> bool:
    """Whether the program runs as a preview: ``pulumi preview`` and the first phase of ``pulumi up``
    (the engine's dry run), or an offline plan (which runs its mocks as an update, so that every output
    resolves)."""
    return _offline or pulumi.runtime.is_dry_run()

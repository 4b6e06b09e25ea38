"""What a destroyed stack leaves behind on purpose and a new one must adopt rather than create."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Retained:
    """Ids of resources a destroyed stack left behind on purpose (``retainOnDelete``) and that cannot be
    created again under the same name: Cloud KMS key rings and keys are never deleted."""

    key_ring_id: str | None = None
    crypto_key_id: str | None = None

"""Project-wide data files.

``image-digests.json`` is the image digest lock: each tag-pinned image NeuroDock sets (``name:tag``, as
``components.versions.LOCKABLE_IMAGES`` lists them) mapped to ``{"digest": "sha256:<64 hex>", "resolved":
"YYYY-MM-DD"}``, the digest its tag named on the day it was read from the registry. ``components.versions.pinned``
appends the digest to the reference; an image absent from the lock is deployed by its tag alone. Fill or refresh it
where the registries are reachable with ``python -m components.images lock``; ``python -m components.images lock
--check`` fails when an image is missing or its tag has moved (docs/operations.md, "Image digests").

Source: each registry's own answer (OCI distribution API), never a digest copied from elsewhere. The lock was
committed empty: it was written where no registry is reachable, and no upstream publishes a digest for exactly
these tags (searched: the Kubernetes image promoter manifests, NVIDIA's GPU Operator bundles, Docker's repo-info;
docs/upstream.md, "Image digests").
"""

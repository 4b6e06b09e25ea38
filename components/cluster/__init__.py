"""Clusters with node pools: one interface (:class:`~components.cluster.base.Cluster`), three clouds."""

"""Offline plans: the stack program run in process under Pulumi's mocks.

``run_plan`` runs ``infra/__main__.py`` exactly as the Python language host does for ``pulumi up``,
with a resource monitor that records every registration instead of creating anything, and mock
providers that answer with outputs shaped like the real ones (ids, ARNs, endpoints, kubeconfigs).
"""

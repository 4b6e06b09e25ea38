"""Long-lived storage that outlives clusters: Pulumi state, secrets-provider keys, model weights."""

from components.state.backend import Cloud, StateBackend, StateBackendArgs

__all__ = ["Cloud", "StateBackend", "StateBackendArgs"]

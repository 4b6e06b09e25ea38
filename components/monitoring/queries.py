"""PromQL shared by the alert rules and the dashboards."""

from __future__ import annotations

from components.monitoring import metrics as m

XID_WINDOW = "10m"
"""An XID pages for this long after it happens, then resolves: the exporter's counter never falls."""

GPU_LABELS = "hostname, gpu, modelName"
"""What identifies a GPU in the DCGM exporter's series, whichever pod holds it."""
XID_LABELS = f"{GPU_LABELS}, xid"
"""What identifies an XID: the GPU and the code, not the pod that held the GPU then."""


def xid_errors(matcher: str = "") -> str:
    """XID errors of the last ``XID_WINDOW``, per GPU and XID. The exporter creates a (GPU, xid) series
    at its first error, already at 1, where ``increase`` sees nothing: a GPU and XID with no sample in
    the hour before the window counts whole. The pod labels are aggregated away first, so a series
    that only changed pods, or paused while scrapes failed, is not new."""
    total = f"{m.DCGM_XID_TOTAL.name}{{{matcher}}}"
    return (f"sum by ({XID_LABELS}) (increase({total}[{XID_WINDOW}])) > 0 "
            f"or (max by ({XID_LABELS}) ({total}) unless on ({XID_LABELS}) "
            f"max by ({XID_LABELS}) (last_over_time({total}[1h] offset {XID_WINDOW})))")

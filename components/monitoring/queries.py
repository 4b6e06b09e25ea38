"""PromQL shared by the alert rules, the recording rules and the dashboards."""

from __future__ import annotations

from components.monitoring import metrics as m

XID_WINDOW = "10m"
"""An XID pages for this long after it happens, then resolves: the exporter's counter never falls."""

GPU_LABELS = "hostname, gpu, modelName"
"""What identifies a GPU in the DCGM exporter's series, whichever pod holds it."""
XID_LABELS = f"{GPU_LABELS}, xid"
"""What identifies an XID: the GPU and the code, not the pod that held the GPU then."""
GPU_PRESENCE = m.DCGM_TEMP
"""A field every GPU reports on every scrape: how often an exporter answered for a GPU."""

CLIENT_LISTENERS = 'envoy_http_conn_manager_prefix=~"https?-[0-9]+"'
"""The HTTP connection managers of the Gateway's listeners, the ones clients talk to: Envoy Gateway names each
``http-<port>`` or ``https-<port>`` (v1.7.0 ``internal/xds/translator/listener.go:509-519``, the same at v1.8.3
``:542-552``), the port being the proxy's container port, 10080 for 80 and 10443 for 443
(``internal/gatewayapi/listener.go:119-127``), or the Gateway's own port with the ``XDSNameSchemeV2`` runtime flag.
The proxy's other connection managers are its own: ``eg-stats-http`` (each Prometheus scrape, and again as
``admin``) and ``eg-ready-http`` (kubelet probes; ``bootstrap.yaml.tpl:126``, ``listener_ready.go:41``)."""

EPP_CLIENT_ERRORS = ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "PreconditionFailed")
"""The picker's refusals that are the request's fault (400, 401, 403, 404, 412): answered, and good."""
EPP_SERVER_ERRORS = ("ResourceExhausted", "ServiceUnavailable", "Internal", "Unknown")
"""The picker's refusals that are the service's fault, as clients get them (llm-d-router v0.10.0
``pkg/common/error/error.go:88-141``): 429 for a full queue, a held request past its time while the pool has
replicas, or a scheduler without room; 503 for a pool with no replica (a model waking from zero), a hold past its
time with none, a cancelled hold or the picker shutting down; 500 for an internal error, and for ``Unknown``,
which the picker returns as a gRPC error and Envoy answers with ``status_on_error``, 500 by default
(``requestcontrol/admission.go:246-285``, ``director.go:301-345``). ``ModelServerError`` (a replica answered a
status other than 200) is left to the route's Envoy cluster, which counts the same response."""


def any_of(values: tuple[str, ...] | list[str]) -> str:
    return "|".join(values)


def xid_errors(matcher: str = "") -> str:
    """XID errors of the last ``XID_WINDOW``, per GPU and XID.

    The exporter counts XIDs in memory from its start (``DCGM_EXP_XID_ERRORS_TOTAL``, dcgm-exporter 7ad5832
    ``internal/pkg/collector/xid_total_collector.go``): a (GPU, xid) series is born at its first XID, already at
    1, where ``increase`` sees nothing, and a restarted exporter forgets every count, so an XID after a restart
    is born again at 1, maybe with the labels it had before. A series is therefore new when the exporter that
    answers now (``exporter_pod``) has, in the window, answered for the GPU more often than with the XID. Its
    pod labels are summed away first, so a GPU that only changed pods has as many XID samples as GPU samples,
    and so has a GPU through a scrape gap; a count the restart forgot, without a new XID, is no series now.
    Each sharing pod of a time-shared GPU holds a copy of its counts (``metrics.DCGM_PER_PROCESS``): ``max``,
    never ``sum``, over them."""
    total = f"{m.DCGM_XID_TOTAL.name}{{{matcher}}}"
    exporter = f"exporter_pod, {XID_LABELS}"
    return (f"max by ({XID_LABELS}) (increase({total}[{XID_WINDOW}])) > 0 "
            f"or max by ({XID_LABELS}) ("
            f"sum by ({exporter}) (count_over_time({total}[{XID_WINDOW}])) "
            f"< on (exporter_pod, {GPU_LABELS}) group_left () "
            f"sum by (exporter_pod, {GPU_LABELS}) (count_over_time({GPU_PRESENCE.name}[{XID_WINDOW}])) "
            f"and on ({exporter}) {total})")


def per_gpu(metric: m.Metric, matcher: str = "", by: str = GPU_LABELS) -> str:
    """One value per GPU of a DCGM field: the exporter copies a GPU's value onto each pod sharing it (and onto
    each MIG instance of it), so ``max`` takes it once."""
    return f"max by ({by}) ({metric.name}{{{matcher}}})"

"""A checker for the Pod Security Standards "baseline" and "restricted" profiles, written from the
standard (kubernetes.io/docs/concepts/security/pod-security-standards/, policy version "latest").

``violations(pod_spec, "restricted")`` lists, in plain sentences, every control a pod spec breaks;
an empty list means the Pod Security Admission controller would admit it in a namespace enforcing
that level. Fields left unset count as their Kubernetes defaults. A value not known yet (a first preview's
``"[unknown]"``) breaks nothing: what it would hold is judged once it is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UNKNOWN = "[unknown]"

# Baseline: capabilities a container may add.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted: the only volume types allowed.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
_VOLUME_META = {"name"}


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in _list(pod.get(key))
            if isinstance(c, Mapping)]


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` where it is a mapping; an unset or unknown one holds nothing to judge."""
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    """``value`` where it is a list; an unset or unknown one holds nothing to judge."""
    return value if isinstance(value, list) else []


def violations(pod: dict[str, Any], level: str = "restricted") -> list[str]:
    """Every control of ``level`` (``baseline`` or ``restricted``) the pod spec violates."""
    out = _baseline(pod)
    if level == "restricted":
        out += _restricted(pod)
    return out


def _baseline(pod: dict[str, Any]) -> list[str]:
    out: list[str] = []
    psc = _map(pod.get("securityContext"))
    if _map(psc.get("windowsOptions")).get("hostProcess") is True:
        out.append("HostProcess: the pod must not run Windows host processes")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field) is True:
            out.append(f"Host namespaces: {field} must be false")
    for volume in map(_map, _list(pod.get("volumes"))):
        if "hostPath" in volume:
            out.append(f"HostPath volumes: volume {volume.get('name')!r} is a hostPath")
    for sysctl in map(_map, _list(psc.get("sysctls"))):
        if sysctl.get("name", UNKNOWN) not in (*SAFE_SYSCTLS, UNKNOWN):
            out.append(f"Sysctls: {sysctl.get('name')} is not a safe sysctl")
    out += _selinux_and_apparmor("pod", psc)
    if _map(psc.get("seccompProfile")).get("type") == "Unconfined":
        out.append("Seccomp: the pod's seccompProfile must not be Unconfined")
    for c in containers(pod):
        name = c.get("name")
        sc = _map(c.get("securityContext"))
        if _map(sc.get("windowsOptions")).get("hostProcess") is True:
            out.append(f"HostProcess: container {name!r} must not be a host process")
        if sc.get("privileged") is True:
            out.append(f"Privileged containers: container {name!r} is privileged")
        added = {a for a in _list(_map(sc.get("capabilities")).get("add")) if a != UNKNOWN}
        if added - BASELINE_CAPABILITIES:
            out.append(f"Capabilities: container {name!r} adds {sorted(added - BASELINE_CAPABILITIES)}")
        for port in map(_map, _list(c.get("ports"))):
            if port.get("hostPort", 0) not in (0, None, UNKNOWN):
                out.append(f"Host ports: container {name!r} uses hostPort {port['hostPort']}")
        out += _selinux_and_apparmor(f"container {name!r}", sc)
        if sc.get("procMount", "Default") not in ("Default", UNKNOWN):
            out.append(f"/proc mount type: container {name!r} must use the Default procMount")
        if _map(sc.get("seccompProfile")).get("type") == "Unconfined":
            out.append(f"Seccomp: container {name!r} seccompProfile must not be Unconfined")
    return out


def _selinux_and_apparmor(where: str, context: dict[str, Any]) -> list[str]:
    out = []
    se = _map(context.get("seLinuxOptions"))
    if se.get("type", "") not in (*SELINUX_TYPES, UNKNOWN):
        out.append(f"SELinux: {where} uses SELinux type {se.get('type')!r}")
    if se.get("user") not in (None, "", UNKNOWN) or se.get("role") not in (None, "", UNKNOWN):
        out.append(f"SELinux: {where} must not set SELinux user or role")
    apparmor = _map(context.get("appArmorProfile")).get("type")
    if apparmor not in (None, "RuntimeDefault", "Localhost", UNKNOWN):
        out.append(f"AppArmor: {where} uses AppArmor profile {apparmor!r}")
    return out


def _restricted(pod: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for volume in map(_map, _list(pod.get("volumes"))):
        kinds = set(volume) - _VOLUME_META
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"Volume types: volume {volume.get('name')!r} is {sorted(kinds)[0]}, not an allowed type")
    if pod.get("securityContext") == UNKNOWN:
        return out  # what the containers inherit from it is not known yet
    psc = _map(pod.get("securityContext"))
    if psc.get("runAsUser") == 0:
        out.append("Running as non-root user: the pod's runAsUser must not be 0")
    pod_seccomp = psc.get("seccompProfile")
    for c in containers(pod):
        name = c.get("name")
        if c.get("securityContext") == UNKNOWN:
            continue  # judged once known
        sc = _map(c.get("securityContext"))
        if sc.get("allowPrivilegeEscalation") not in (False, UNKNOWN):
            out.append(f"Privilege escalation: container {name!r} must set allowPrivilegeEscalation: false")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root not in (True, UNKNOWN):
            out.append(f"Running as non-root: container {name!r} must run with runAsNonRoot: true")
        if sc.get("runAsUser") == 0:
            out.append(f"Running as non-root user: container {name!r} runAsUser must not be 0")
        profile = sc.get("seccompProfile", pod_seccomp)
        seccomp = _map(profile).get("type")
        if profile != UNKNOWN and seccomp not in ("RuntimeDefault", "Localhost", UNKNOWN):
            out.append(f"Seccomp: container {name!r} needs seccompProfile RuntimeDefault or Localhost")
        caps = sc.get("capabilities")
        drop = _map(caps).get("drop", [])
        if caps != UNKNOWN and drop != UNKNOWN and "ALL" not in _list(drop) and UNKNOWN not in _list(drop):
            out.append(f"Capabilities: container {name!r} must drop ALL capabilities")
        if {a for a in _list(_map(caps).get("add")) if a != UNKNOWN} - {"NET_BIND_SERVICE"}:
            out.append(f"Capabilities: container {name!r} may add only NET_BIND_SERVICE")
    return out

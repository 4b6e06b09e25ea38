"""A checker for the Pod Security Standards "baseline" and "restricted" profiles, written from the
standard (kubernetes.io/docs/concepts/security/pod-security-standards/, policy version "latest").

``violations(pod_spec, "restricted")`` lists, in plain sentences, every control a pod spec breaks;
an empty list means the Pod Security Admission controller would admit it in a namespace enforcing
that level. Fields left unset count as their Kubernetes defaults.
"""

from __future__ import annotations

from typing import Any

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
    return [*pod.get("initContainers", []), *pod.get("containers", []), *pod.get("ephemeralContainers", [])]


def violations(pod: dict[str, Any], level: str = "restricted") -> list[str]:
    """Every control of ``level`` (``baseline`` or ``restricted``) the pod spec violates."""
    out = _baseline(pod)
    if level == "restricted":
        out += _restricted(pod)
    return out


def _baseline(pod: dict[str, Any]) -> list[str]:
    out: list[str] = []
    psc = pod.get("securityContext") or {}
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("HostProcess: the pod must not run Windows host processes")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            out.append(f"Host namespaces: {field} must be false")
    for volume in pod.get("volumes", []):
        if "hostPath" in volume:
            out.append(f"HostPath volumes: volume {volume['name']!r} is a hostPath")
    for sysctl in psc.get("sysctls", []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"Sysctls: {sysctl.get('name')} is not a safe sysctl")
    out += _selinux_and_apparmor("pod", psc)
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append("Seccomp: the pod's seccompProfile must not be Unconfined")
    for c in containers(pod):
        name = c.get("name")
        sc = c.get("securityContext") or {}
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"HostProcess: container {name!r} must not be a host process")
        if sc.get("privileged"):
            out.append(f"Privileged containers: container {name!r} is privileged")
        added = set((sc.get("capabilities") or {}).get("add", []))
        if added - BASELINE_CAPABILITIES:
            out.append(f"Capabilities: container {name!r} adds {sorted(added - BASELINE_CAPABILITIES)}")
        for port in c.get("ports", []):
            if port.get("hostPort", 0):
                out.append(f"Host ports: container {name!r} uses hostPort {port['hostPort']}")
        out += _selinux_and_apparmor(f"container {name!r}", sc)
        if sc.get("procMount", "Default") != "Default":
            out.append(f"/proc mount type: container {name!r} must use the Default procMount")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            out.append(f"Seccomp: container {name!r} seccompProfile must not be Unconfined")
    return out


def _selinux_and_apparmor(where: str, context: dict[str, Any]) -> list[str]:
    out = []
    se = context.get("seLinuxOptions") or {}
    if se.get("type", "") not in SELINUX_TYPES:
        out.append(f"SELinux: {where} uses SELinux type {se.get('type')!r}")
    if se.get("user") or se.get("role"):
        out.append(f"SELinux: {where} must not set SELinux user or role")
    apparmor = (context.get("appArmorProfile") or {}).get("type")
    if apparmor not in (None, "RuntimeDefault", "Localhost"):
        out.append(f"AppArmor: {where} uses AppArmor profile {apparmor!r}")
    return out


def _restricted(pod: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for volume in pod.get("volumes", []):
        kinds = set(volume) - _VOLUME_META
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"Volume types: volume {volume['name']!r} is {sorted(kinds)[0]}, not an allowed type")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsUser") == 0:
        out.append("Running as non-root user: the pod's runAsUser must not be 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in containers(pod):
        name = c.get("name")
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"Privilege escalation: container {name!r} must set allowPrivilegeEscalation: false")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"Running as non-root: container {name!r} must run with runAsNonRoot: true")
        if sc.get("runAsUser") == 0:
            out.append(f"Running as non-root user: container {name!r} runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"Seccomp: container {name!r} needs seccompProfile RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            out.append(f"Capabilities: container {name!r} must drop ALL capabilities")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"Capabilities: container {name!r} may add only NET_BIND_SERVICE")
    return out

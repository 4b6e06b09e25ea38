"""Read ``Pulumi.yaml`` and ``stacks/Pulumi.<stack>.yaml`` the way the Pulumi CLI does.

The result is the configuration map the CLI would hand the program: project-level defaults
overlaid by the stack's values, keys fully qualified (``neurodock:models``), structured values as
JSON text. ``secure:`` values cannot be decrypted offline: they become the engine's unknown marker,
and their keys are listed as secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER

REPO_ROOT = Path(__file__).resolve().parents[2]


class StackFileError(Exception):
    """The project or stack file cannot be read (a usage error: exit code 2)."""


@dataclass(frozen=True)
class StackFile:
    stack: str
    """Stack name (``dev``)."""
    path: Path
    """The stack file read."""
    project: str
    """Project name from ``Pulumi.yaml``."""
    config: dict[str, str] = field(default_factory=dict)
    """Fully qualified key -> value as the CLI passes it to programs."""
    secret_keys: frozenset[str] = frozenset()
    """Keys whose value (or part of it) was ``secure:``."""

    def decoded(self) -> dict[str, Any]:
        """The config with structured values decoded (for validation and display)."""
        out: dict[str, Any] = {}
        for key, value in self.config.items():
            try:
                out[key] = json.loads(value) if value[:1] in ("{", "[") else value
            except json.JSONDecodeError:
                out[key] = value
        return out


def stack_names(root: Path = REPO_ROOT) -> list[str]:
    directory = root / _project(root).get("stackConfigDir", ".")
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))


def load_stack_file(stack: str, stack_file: Path | None = None, root: Path = REPO_ROOT) -> StackFile:
    project = _project(root)
    name = project.get("name")
    if not isinstance(name, str):
        raise StackFileError(f"{root / 'Pulumi.yaml'}: the project has no name")
    path = stack_file or root / project.get("stackConfigDir", ".") / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_names(root)) or "none"
        raise StackFileError(f"no stack file {path}; stacks here: {known} (or pass --stack-file PATH)")
    document = _read_yaml(path) or {}
    if not isinstance(document, dict):
        raise StackFileError(f"{path}: expected a mapping with a 'config' key")
    stack_config = document.get("config") or {}
    if not isinstance(stack_config, dict):
        raise StackFileError(f"{path}: 'config' must be a mapping of keys to values")

    merged: dict[str, Any] = {}
    for key, declared in (project.get("config") or {}).items():
        value = declared.get("value", declared.get("default")) if isinstance(declared, dict) else declared
        if value is not None:
            merged[_qualify(key, name)] = value
    for key, value in stack_config.items():
        merged[_qualify(str(key), name)] = value

    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    for key, value in merged.items():
        plain, had_secret = _strip_secure(value)
        if had_secret:
            secret_keys.add(key)
        # Programs receive every value as text: scalars as YAML wrote them ("true", "3"),
        # objects and lists as JSON.
        config[key] = plain if isinstance(plain, str) else json.dumps(plain)
    return StackFile(stack=stack, path=path, project=name, config=config, secret_keys=frozenset(secret_keys))


def _project(root: Path) -> dict[str, Any]:
    path = root / "Pulumi.yaml"
    if not path.is_file():
        raise StackFileError(f"no Pulumi.yaml in {root}")
    document = _read_yaml(path)
    if not isinstance(document, dict):
        raise StackFileError(f"{path}: expected a mapping")
    return document


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise StackFileError(f"{path}: cannot be read: {exc.strerror}") from None


def _qualify(key: str, project: str) -> str:
    """Project-level keys without a namespace belong to the project's namespace."""
    return key if ":" in key else f"{project}:{key}"


def _strip_secure(value: Any) -> tuple[Any, bool]:
    """Replace ``{secure: ...}`` values (at any depth) by the unknown marker."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return UNKNOWN_MARKER, True
        found = False
        out = {}
        for k, v in value.items():
            out[k], secret = _strip_secure(v)
            found |= secret
        return out, found
    if isinstance(value, list):
        items = [_strip_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False

"""Read ``Pulumi.yaml`` and ``stacks/Pulumi.<stack>.yaml`` the way the Pulumi CLI does.

The result is the configuration map the CLI would hand the program: project-level defaults
overlaid by the stack's values, keys fully qualified (``neurodock:models``), structured values as
JSON text. ``secure:`` values cannot be decrypted offline: they become the engine's unknown marker,
and their keys are listed as secret.

Where YAML would let a file silently mean something other than what it says, reading is stricter than
Pulumi's: a key written twice in one mapping (YAML keeps the last), a file that is not UTF-8, and a
``secure:`` value under a ``neurodock:*`` key that does not hold a secret are errors naming the file,
the key and the line.
"""

from __future__ import annotations

import codecs
import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER

from infra.config import CONFIG_NAMESPACE, PLAIN_KEY, SECRET_KEYS

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
"""What Pulumi's stack settings file holds (pulumi.com/docs/iac/concepts/projects/stack-settings-file)."""
STACK_NAME = re.compile(r"(?:[A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+")
"""Pulumi's rule for stack names (letters, digits, '-', '_' and '.'), fully qualified as ORG/PROJECT/STACK
or not."""
MERGE_TAG = "tag:yaml.org,2002:merge"
"""The tag of a ``<<:`` merge key."""


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
    project_path = root / "Pulumi.yaml"
    project = _project(root)
    name = project.get("name")
    if not isinstance(name, str):
        raise StackFileError(f"{project_path}: the project has no name")
    if not STACK_NAME.fullmatch(stack) or {".", ".."} & set(stack.split("/")):
        raise StackFileError(f"stack name {stack!r}: a stack name holds only letters, digits, '-', '_' and '.', "
                             "optionally as ORG/PROJECT/STACK (to read a file elsewhere, pass --stack-file PATH)")
    # `pulumi up -s acme/neurodock/prod` reads Pulumi.prod.yaml, as the CLI does.
    path = stack_file or root / project.get("stackConfigDir", ".") / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"
    if path.is_dir():
        raise StackFileError(f"--stack-file {path}: is a directory; pass a stack file, e.g. {path}/Pulumi.{stack}.yaml")
    if not path.is_file():
        known = ", ".join(stack_names(root)) or "none"
        raise StackFileError(f"no stack file {path}; stacks here: {known} (or pass --stack-file PATH)")
    document = _read_yaml(path)
    if document is None:  # an empty file: a stack with no configuration yet
        document = {}
    if not isinstance(document, dict):
        raise StackFileError(f"{path}: expected a mapping with a 'config' key, got {_shown(document)}")
    # Pulumi ignores other top-level keys (a YAML anchor may live there), but a misspelt `config` would drop
    # the whole configuration without a word.
    for key in document:
        close = [] if key in STACK_FILE_KEYS else difflib.get_close_matches(str(key), STACK_FILE_KEYS, n=1, cutoff=0.7)
        if close:
            raise StackFileError(f"{path}: top-level key {key!r} is not one Pulumi reads; did you mean {close[0]!r}? "
                                 f"(a stack file holds {', '.join(STACK_FILE_KEYS)})")

    defaults: dict[str, Any] = {}
    for key, declared in _config_of(project_path, project).items():
        value = declared.get("value", declared.get("default")) if isinstance(declared, dict) else declared
        if value is not None:
            defaults[_qualify(key, name)] = value
    values = {_qualify(key, name): value for key, value in _config_of(path, document).items()}
    _check_secure(project_path, defaults)
    _check_secure(path, values)

    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    for key, value in (defaults | values).items():
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
        raise StackFileError(f"{path}: expected a mapping, got {_shown(document)}")
    return document


def _config_of(path: Path, document: dict[Any, Any]) -> dict[str, Any]:
    """The document's ``config:`` mapping, its keys checked."""
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: 'config' must be a mapping of keys to values")
    _fail(path, [f"config key {_shown(key)} is not a key name; keys are text such as 'neurodock:models'"
                 for key in config if not _is_key(key)])
    return config


def _is_key(key: Any) -> bool:
    """``name`` or ``namespace:name``, as Pulumi parses config keys."""
    if not isinstance(key, str) or not key:
        return False
    namespace, colon, name = key.partition(":")
    return not colon or bool(namespace and name)


def _read_yaml(path: Path) -> Any:
    try:
        text = _decode(path, path.read_bytes())
    except OSError as exc:
        raise StackFileError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            # Checked on the nodes, before construction: a constructed dict has kept only the last.
            _fail(path, list(_duplicates(loader, node, "", top=True)))
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise StackFileError(_syntax_error(path, text, exc)) from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids: it has an offset, not a line
        line = text.count("\n", 0, exc.position) + 1
        raise StackFileError(f"{path}: line {line}: not valid YAML: the control character U+{exc.character:04X} "
                             "is not allowed; remove it") from None


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise StackFileError(f"{path}: the file is UTF-16 text (Windows PowerShell's `>` writes it); save it as UTF-8")
    try:
        # Windows editors may start a UTF-8 file with a byte order mark; go-yaml, Pulumi's reader, skips it.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8-sig")) + 1  # all valid up to the first bad byte
        raise StackFileError(f"{path}: line {line}, column {column}: byte 0x{data[exc.start]:02X} is not UTF-8; "
                             "save the file as UTF-8") from None


def _syntax_error(path: Path, text: str, exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem and its context, with lines, without its dump of internal marks."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return f"{path}: not valid YAML: {exc.problem or exc.context}"
    lines = text.split("\n")
    line = lines[mark.line] if mark.line < len(lines) else ""
    if line[mark.column:mark.column + 1] == "\t":
        # PyYAML calls it "found character '\t' that cannot start any token".
        if not line[:mark.column].strip():
            return (f"{path}: line {mark.line + 1}: a tab indents this line; YAML indents with spaces only "
                    "(replace the tab with spaces)")
        return (f"{path}: line {mark.line + 1}, column {mark.column + 1}: a tab where YAML needs a space; "
                "replace it with a space")
    where = f"{path}: line {mark.line + 1}, column {mark.column + 1}: not valid YAML"
    if not (exc.problem and exc.context and exc.context_mark):
        return f"{where}: {exc.problem or exc.context}"
    if exc.problem.startswith("but "):  # "expected a single document in the stream" / "but found another document"
        return f"{where}: {exc.context} (line {exc.context_mark.line + 1}), {exc.problem}"
    return f"{where}: {exc.problem} ({exc.context} from line {exc.context_mark.line + 1})"


def _duplicates(loader: yaml.SafeLoader, node: yaml.Node, where: str, top: bool = False,
                seen: set[int] | None = None) -> Iterator[str]:
    """A problem for each key written twice in one mapping, at any depth.

    ``where`` is the node's path as a user writes keys. The document's ``config:`` holds Pulumi keys,
    which users name without it (``neurodock:models[1].name``)."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias: its anchor is checked where it is written
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicates(loader, item, f"{where}[{index}]", seen=seen)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    marks: dict[Any, list[yaml.Mark]] = {}
    children: list[tuple[yaml.Node, str]] = []
    for key_node, value_node in node.value:
        # A `<<:` merge brings in keys this mapping may override: that is what merges are for.
        if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            children.append((value_node, where))
            continue
        key = loader.construct_object(key_node)
        marks.setdefault(key, []).append(key_node.start_mark)
        children.append((value_node, "" if top and key == "config" else _child(where, key)))
    for key, at in marks.items():
        if len(at) > 1:
            times = "twice" if len(at) == 2 else f"{len(at)} times"
            one_line = len({m.line for m in at}) < len(at)  # a flow mapping, {a: 1, a: 2}: say where on the line
            spots = [f"line {m.line + 1} column {m.column + 1}" if one_line else str(m.line + 1) for m in at]
            listed = ("" if one_line else "lines ") + ", ".join(spots[:-1]) + f" and {spots[-1]}"
            yield (f"key '{_child(where, key)}' is written {times} ({listed}); a YAML mapping keeps only "
                   f"the last, so remove or merge {'one' if len(at) == 2 else 'the others'}")
    for child, child_where in children:
        yield from _duplicates(loader, child, child_where, seen=seen)


def _child(where: str, key: Any) -> str:
    """The path of a mapping's key as Pulumi's ``--path`` writes it: ``a.b``, ``a["b.c"]``."""
    text = key if isinstance(key, str) else _shown(key)
    if not where:
        return text
    return f"{where}.{text}" if PLAIN_KEY.fullmatch(text) else f"{where}[{json.dumps(text)}]"


def _shown(value: Any, limit: int = 60) -> str:
    """A value as YAML or JSON would write it (``null``, ``1``, ``[1, 2]``), cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _fail(path: Path, problems: list[str]) -> None:
    """Raise every problem found in one file at once."""
    if len(problems) == 1:
        raise StackFileError(f"{path}: {problems[0]}")
    if problems:
        raise StackFileError(f"{path}: {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems))


def _qualify(key: str, project: str) -> str:
    """Project-level keys without a namespace belong to the project's namespace."""
    return key if ":" in key else f"{project}:{key}"


def _is_secure(value: Any) -> bool:
    """Pulumi's rule: a secret is a mapping whose only key is ``secure``, with text (the ciphertext)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str)


def _check_secure(path: Path, values: dict[str, Any]) -> None:
    """``neurodock:*`` keys hold a secret only where the program reads one (``SECRET_KEYS``).

    The program reads every other key with ``config.get``: a secret there would reach resources in
    plain text, and offline its unknown marker would reach validation messages. Other namespaces
    follow Pulumi's rules, not ours."""
    misplaced, malformed = [], []
    for key, value in values.items():
        namespace, _, name = key.partition(":")
        if namespace != CONFIG_NAMESPACE:
            continue
        for where, well_formed in _secure_values(value, key):
            if name not in SECRET_KEYS:
                misplaced.append(f"'{where}'")
            elif not well_formed:
                # Pulumi would pass it on as a plain object with a "secure" field, not as a secret.
                malformed.append(f"'{where}' has a 'secure' key, but a secret is a mapping whose only key is "
                                 "'secure', with the ciphertext as text; set it with `pulumi config set --secret`")
    problems = malformed
    if misplaced:
        holders = ", ".join(f"{CONFIG_NAMESPACE}:{key}" for key in SECRET_KEYS)
        what, it = ((f"{misplaced[0]} is a secure value", "it") if len(misplaced) == 1
                    else (f"{', '.join(misplaced)} are secure values", "them"))
        problems = [f"{what}, but only {holders} hold secrets; write {it} in plain text, or put a secret in one "
                    "of those keys", *malformed]
    _fail(path, problems)


def _secure_values(value: Any, where: str) -> Iterator[tuple[str, bool]]:
    """The path of each mapping with a ``secure`` key, at any depth, and whether it is a secret."""
    if isinstance(value, dict):
        if "secure" in value:
            yield where, _is_secure(value)
            return
        for key, item in value.items():
            yield from _secure_values(item, _child(where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secure_values(item, f"{where}[{index}]")


def _strip_secure(value: Any) -> tuple[Any, bool]:
    """Replace ``{secure: ...}`` values (at any depth) by the unknown marker."""
    if _is_secure(value):
        return UNKNOWN_MARKER, True
    if isinstance(value, dict):
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

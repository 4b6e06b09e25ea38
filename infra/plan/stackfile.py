"""Read ``Pulumi.yaml`` and ``stacks/Pulumi.<stack>.yaml`` the way the Pulumi CLI does.

The result is the configuration map the CLI would hand the program: project-level defaults
overlaid by the stack's values, keys fully qualified (``neurodock:models``), structured values as
JSON text. ``secure:`` values cannot be decrypted offline: they become the engine's unknown marker,
and their keys are listed as secret.

Scalars are read as Pulumi reads them: go-yaml v3 resolves plain scalars by YAML 1.2's core schema
(``no``, ``on``, ``y`` are text; ``0o17`` is a number; an unquoted date is a timestamp that Pulumi hands
the program as Go prints it), not by the YAML 1.1 rules PyYAML follows, so the plan checks the values the
deploy will get (:class:`PulumiYamlLoader`).

Where YAML would let a file silently mean something other than what it says, reading is stricter than
Pulumi's: a key written twice in one mapping (YAML keeps the last), a file that is not UTF-8, and a
``secure:`` value under a ``neurodock:*`` key that does not hold a secret are errors naming the file,
the key and the line.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import codecs
import difflib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER

from infra.config import CONFIG_NAMESPACE, PLAIN_KEY, SECRET_KEYS
from infra.config.base import REPO_ROOT, is_secure

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
    unpassable: list[str] = []
    for key, value in (defaults | values).items():
        plain, had_secret = _strip_secure(value)
        if had_secret:
            secret_keys.add(key)
        # Programs receive every value as text: scalars as Pulumi writes them ("true", "3"),
        # objects and lists as JSON.
        config[key] = _dumps(_go_json(plain, key, unpassable))
    _fail(path, unpassable)
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


# --------------------------------------------------------------------------------------------
# Scalars as Pulumi reads them
# --------------------------------------------------------------------------------------------
# Pulumi reads stack and project files with gopkg.in/yaml.v3 v3.0.1 (pulumi/pulumi
# sdk/go/common/encoding/marshal.go, sdk/go.mod; read 2026-12-06 at 1b5949891b3c, 2026-08-21), decoding each
# config value into `any` (sdk/go/common/resource/config/object.go UnmarshalYAML). go-yaml v3 resolves plain
# scalars by the tables of its resolve.go (go-yaml/yaml tag v3.0.1, f6f7691b1fdeb, read 2026-12-06), ported
# below; PyYAML follows YAML 1.1, where `no`, `on`, `y` are booleans and `0o17` is text.
GO_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
"""resolve.go ``resolveMapList``: the only booleans (YAML 1.1's yes/no/on/off/y/n are text)."""
GO_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
GO_SPECIAL_FLOATS = {**dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
                     **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
                     **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf)}
GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
"""resolve.go ``yamlStyleFloat``, tried after the integer forms on text starting with a sign or digit."""
GO_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
"""What Go's ``strconv.ParseFloat`` takes of text starting with '.' (resolve.go's '.' hint)."""
GO_TIMESTAMP = re.compile(r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})(?:(?:(?P<t>[Tt])| +)(?P<h>[0-9]{1,2}):"
                          r"(?P<mi>[0-9]{1,2}):(?P<s>[0-9]{1,2})(?:[.,](?P<f>[0-9]+))?(?P<z>Z|[-+][0-9]{2}:[0-9]{2})?)?")
"""resolve.go ``allowedTimestampFormats`` as Go's ``time.Parse`` reads them: ``2006-1-2T15:4:5.999999999Z07:00``
(also with 't'; a zone required), ``2006-1-2 15:4:5.999999999`` (no zone) and ``2006-1-2``."""
YAML_TAG = "tag:yaml.org,2002:"
INT64_MAX = 2**63 - 1


def _go_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, 64)``, else ``ParseUint(text, 0, 64)``: a sign, then 0x, 0o, 0b or a
    leading 0 (octal) prefix, or decimal digits; None for anything else or out of range."""
    sign, body = (text[0], text[1:]) if text[:1] in "+-" else ("", text)
    base, digits = 10, body
    if body.startswith("0") and len(body) > 1:
        base, digits = (({"b": 2, "o": 8, "x": 16}[body[1].lower()], body[2:]) if len(body) >= 3 and
                        body[1].lower() in "box" else (8, body[1:]))
    if not body or not all(c in "0123456789abcdef"[:base] for c in digits.lower()):
        return None
    value = int(digits or "0", base) * (-1 if sign == "-" else 1)
    if -INT64_MAX - 1 <= value <= INT64_MAX or (not sign and value < 2**64):
        return value
    return None


def _go_time(match: re.Match[str]) -> str | None:
    """A timestamp as Pulumi passes it on: Go's ``time.Time.String()`` (``2026-01-03 01:00:00 +0000 UTC``;
    object.go turns a decoded ``time.Time`` into that text). None for a date ``time.Parse`` refuses (February 30
    stays text, as in go-yaml). An offset of zero prints as UTC, as on a machine whose local zone is UTC."""
    year, month, day = int(match["y"]), int(match["mo"]), int(match["d"])
    hour, minute, second = (int(match[k] or 0) for k in ("h", "mi", "s"))
    if (match["t"] and not match["z"]) or (not match["t"] and match["z"]):
        return None  # the 'T' form needs a zone, the space form takes none
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour < 24 and minute < 60
            and second < 60):
        return None
    fraction = (match["f"] or "")[:9].rstrip("0")
    zone = match["z"] or "Z"
    offset = "+0000" if zone == "Z" else zone.replace(":", "")
    name = "UTC" if offset in ("+0000", "-0000") else offset
    return (f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
            f"{'.' + fraction if fraction else ''} {'+0000' if name == 'UTC' else offset} {name}")


def go_resolve(tag: str, text: str) -> tuple[str, Any]:
    """go-yaml v3's ``resolve(tag, in)``: the tag (``str``, ``bool``, ``int``, ``float``, ``null``, ``timestamp``,
    ``merge``) and value of a scalar, ``tag`` being its explicit tag or '' for a plain one. A timestamp's value is
    the text Pulumi hands the program. Raises ValueError where go-yaml refuses an explicit tag."""
    if tag not in ("", "str", "bool", "int", "float", "null", "timestamp"):
        return tag, text
    rtag, value = "str", text
    hint = text[:1] or "N"
    if text == "<<" and tag == "":
        rtag = "merge"  # decode.go isMerge: a plain `<<` key merges the mapping it names
    elif tag != "str" and hint in "+-0123456789yYnNtTfFoO~.N":
        if text in GO_BOOLS:
            rtag, value = "bool", GO_BOOLS[text]
        elif text in GO_NULLS:
            rtag, value = "null", None
        elif text in GO_SPECIAL_FLOATS:
            rtag, value = "float", GO_SPECIAL_FLOATS[text]
        elif hint == "." and GO_DOT_FLOAT.fullmatch(text) and math.isfinite(float(text)):
            rtag, value = "float", float(text)
        elif hint in "+-0123456789":
            plain = text.replace("_", "")
            stamp = GO_TIMESTAMP.fullmatch(text) if tag in ("", "timestamp") else None
            if stamp and (when := _go_time(stamp)) is not None:
                rtag, value = "timestamp", when
            elif (number := _go_int(plain)) is not None:
                rtag, value = "int", number
            elif GO_FLOAT.fullmatch(plain) and math.isfinite(float(plain)):
                rtag, value = "float", float(plain)
    if tag in ("", "str", rtag):
        return rtag, value
    if tag == "float" and rtag == "int":
        return "float", float(value)
    raise ValueError(f"cannot decode !!{rtag} `{text}` as a !!{tag}")


class PulumiYamlLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
                       yaml.constructor.SafeConstructor, yaml.resolver.BaseResolver):
    """PyYAML's safe loader with go-yaml v3's scalars: what :func:`go_resolve` resolves, ``!!binary`` as text,
    tags go-yaml does not know read by the node's kind, and a scalar tagged ``!`` as text."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.BaseResolver.__init__(self)

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return YAML_TAG + go_resolve("", value)[0]
        return super().resolve(kind, value, implicit)

    def compose_scalar_node(self, anchor: str | None) -> yaml.ScalarNode:
        event = self.peek_event()
        if event.tag == "!":  # the non-specific tag: text for go-yaml, resolved again by PyYAML
            event.tag = YAML_TAG + "str"
        return super().compose_scalar_node(anchor)

    def construct_go_scalar(self, node: yaml.Node) -> Any:
        text = self.construct_scalar(node)
        try:
            return go_resolve(node.tag.removeprefix(YAML_TAG), text)[1]
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None

    def construct_go_binary(self, node: yaml.Node) -> str:
        try:
            data = base64.b64decode(re.sub(r"[\r\n]", "", self.construct_scalar(node)), validate=True)
        except binascii.Error:
            raise yaml.constructor.ConstructorError(None, None, "!!binary value contains invalid base64 data",
                                                    node.start_mark) from None
        return data.decode("utf-8", "replace")  # Go's JSON encoder writes bad UTF-8 as U+FFFD

    def construct_by_kind(self, node: yaml.Node) -> Any:
        """A node whose tag go-yaml does not resolve (``!!set``, ``!!omap``, ``!custom``): decoded as what it is."""
        if isinstance(node, yaml.MappingNode):
            return self.construct_yaml_map(node)
        if isinstance(node, yaml.SequenceNode):
            return self.construct_yaml_seq(node)
        return self.construct_scalar(node)


for _tag in ("str", "bool", "int", "float", "null", "timestamp"):
    PulumiYamlLoader.add_constructor(YAML_TAG + _tag, PulumiYamlLoader.construct_go_scalar)
PulumiYamlLoader.add_constructor(YAML_TAG + "binary", PulumiYamlLoader.construct_go_binary)
for _tag in ("set", "omap", "pairs"):
    PulumiYamlLoader.add_constructor(YAML_TAG + _tag, PulumiYamlLoader.construct_by_kind)
PulumiYamlLoader.add_constructor(None, PulumiYamlLoader.construct_by_kind)


def _go_json(value: Any, where: str, problems: list[str]) -> Any:
    """``value`` as Pulumi's JSON hands it to the program: a whole float as an integer (Go's encoder writes
    ``1.0`` as ``1``), keys as text (Go's ``%v``), and infinity or NaN named in ``problems``: Go's encoder
    refuses them, so Pulumi cannot load the stack."""
    if isinstance(value, float):
        if not math.isfinite(value):
            written = ".nan" if math.isnan(value) else "-.inf" if value < 0 else ".inf"
            problems.append(f"key '{where}': {written} is not a number Pulumi can pass to a program (it stops with "
                            "\"json: unsupported value\"); write a finite number, or quote the text")
            return None
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, dict):
        return {_go_key(k): _go_json(v, _child(where, _go_key(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_json(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _go_key(key: Any) -> str:
    """A mapping key as Go's ``fmt.Sprintf("%v", key)`` writes it (object.go ``unmarshalObject``)."""
    if isinstance(key, bool):
        return str(key).lower()
    if key is None:
        return "<nil>"
    if isinstance(key, float) and key.is_integer() and abs(key) < 1e21:
        return str(int(key))
    return key if isinstance(key, str) else str(key)


def _dumps(value: Any) -> str:
    """A config value as the text Pulumi hands the program: scalars as written, objects and lists as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _read_yaml(path: Path) -> Any:
    try:
        text = _decode(path, path.read_bytes())
    except OSError as exc:
        raise StackFileError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        loader = PulumiYamlLoader(text)
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


def _duplicates(loader: PulumiYamlLoader, node: yaml.Node, where: str, top: bool = False,
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
            yield where, is_secure(value)
            return
        for key, item in value.items():
            yield from _secure_values(item, _child(where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secure_values(item, f"{where}[{index}]")


def _strip_secure(value: Any) -> tuple[Any, bool]:
    """Replace ``{secure: ...}`` values (at any depth) by the unknown marker."""
    if is_secure(value):
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

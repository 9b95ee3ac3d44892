"""The strict loader: YAML files in, a checked `Project` out, or every error with its location.

YAML is composed into nodes (not loaded straight into Python) so each value keeps its
line and column; pydantic validates the plain data, and each pydantic error's `loc` is
walked back to the node it is about. Cross-references are checked by `engine.checks`.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import pydantic
import yaml
from jinja2 import TemplateSyntaxError

from engine import checks
from engine.errors import PlaybookError, PlaybookLoadError, describe_value, suggest
from engine.model import STEP_KINDS, Expression, Lifecycle, Playbook, Step
from engine.project import Project, templates_used

DataPath = tuple[Any, ...]

# Alias expansion can blow a small file up exponentially ("billion laughs"); stop early.
MAX_NODES = 100_000
TEMPLATE_SUFFIX = ".txt"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_BREAKS = "\n\r\x85\u2028\u2029"


class _Resolver(yaml.resolver.Resolver):
    """Booleans as YAML 1.2 reads them: only true/false.

    YAML 1.1 also reads `on`, `off`, `yes` and `no` as booleans, which turns the `on:` of a
    transition into `True`; keys are kept as text anyway, values follow this rule.
    """

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


_Resolver.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Loader(
    yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
    yaml.constructor.SafeConstructor, _Resolver,
):
    """The pure-Python loader: slow, but its error messages are the most precise."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)


try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    _FastLoader: type = _Loader
else:

    class _FastLoader(CParser, yaml.composer.Composer, yaml.constructor.SafeConstructor, _Resolver):  # type: ignore[no-redef]
        """libyaml scans and parses (ten times faster); Python composes the nodes.

        libyaml's own composer recurses in C and crashes the process on very deep nesting;
        Python's stops at the recursion limit, which the loader reports as an error.
        """

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            _Resolver.__init__(self)

        get_single_node = yaml.composer.Composer.get_single_node
        check_node = yaml.composer.Composer.check_node
        get_node = yaml.composer.Composer.get_node


class _TooLarge(Exception):
    pass


# ---------------------------------------------------------------- located YAML documents


@dataclass
class Document:
    """A parsed YAML file: its plain data and where each value and key came from."""

    path: str
    text: str
    data: Any = None
    nodes: dict[DataPath, yaml.Node] = field(default_factory=dict)
    key_nodes: dict[DataPath, yaml.Node] = field(default_factory=dict)
    _line_starts: list[int] | None = None

    def position(self, path: DataPath, key: bool = False) -> tuple[int, int]:
        """(line, column) of the value at `path`, or of its key; the nearest ancestor if absent."""
        path = tuple(path)
        if key and path in self.key_nodes:
            return self._mark(self.key_nodes[path].start_mark.index)
        while path:
            if path in self.nodes:
                return self._mark(self.nodes[path].start_mark.index)
            if path in self.key_nodes:
                return self._mark(self.key_nodes[path].start_mark.index)
            path = path[:-1]
        node = self.nodes.get(())
        return self._mark(node.start_mark.index) if node is not None else (1, 1)

    def error(self, path: DataPath, message: str, key: bool = False) -> PlaybookError:
        """An error located at the value (or the key) at `path`."""
        line, column = self.position(path, key)
        return PlaybookError(self.path, line, column, message)

    def expression_error(self, path: DataPath, line: int, column: int, message: str) -> PlaybookError:
        """An error at (line, column) inside the expression held by the scalar at `path`."""
        try:
            where = self._expression_position(tuple(path), line, column)
        except Exception:  # a position is a courtesy; never let it hide the error itself
            where = self.position(path)
        return PlaybookError(self.path, where[0], where[1], message)

    def _expression_position(self, path: DataPath, line: int, column: int) -> tuple[int, int]:
        node = self.nodes.get(path)
        if not isinstance(node, yaml.ScalarNode) or not isinstance(node.value, str):
            return self.position(path)
        value = node.value
        lines = value.split("\n")
        line = min(max(line, 1), len(lines))
        offset = sum(len(text) + 1 for text in lines[: line - 1]) + max(column - 1, 0)
        offset = min(offset, len(value))
        start, end = node.start_mark.index, max(node.end_mark.index, node.start_mark.index)
        cursor = start
        if node.style in ("|", ">"):
            # The content starts on the line after the block indicator.
            newline = self.text.find("\n", start, end)
            cursor = newline + 1 if newline >= 0 else start
        elif node.style in ("'", '"'):
            cursor = start + 1
        # Align the value with the raw text character by character: exact for plain and
        # simple quoted scalars, close enough where escapes or folding change the text.
        for char in value[:offset]:
            found = self.text.find(char, cursor, min(end, cursor + 200))
            if found >= 0:
                cursor = found + 1
        if offset < len(value):
            found = self.text.find(value[offset], cursor, min(end, cursor + 200))
            if found >= 0:
                cursor = found
        return self._mark(min(cursor, max(end, start)))

    def _mark(self, index: int) -> tuple[int, int]:
        if self._line_starts is None:
            starts = [0]
            text = self.text
            for i, char in enumerate(text):
                if char in _BREAKS and not (char == "\r" and text[i + 1 : i + 2] == "\n"):
                    starts.append(i + 1)
            self._line_starts = starts
        line = bisect.bisect_right(self._line_starts, index)
        return line, index - self._line_starts[line - 1] + 1


def parse_yaml(path: str, text: str) -> tuple[Document, list[PlaybookError]]:
    """Compose `text` into a located Document; YAML errors come back located, never raised."""
    doc = Document(path, text)
    errors: list[PlaybookError] = []
    loader: Any = None
    try:
        try:
            loader = _FastLoader(text)  # the reader rejects control characters right here
            node = loader.get_single_node()
        except yaml.YAMLError:
            # Parse again in Python for its clearer message; it fails the same way.
            loader = _Loader(text)
            node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = doc._mark(mark.index) if mark is not None else (1, 1)
        message = error.problem or "invalid YAML"
        if message.startswith("but found another document"):
            errors.append(PlaybookError(path, line, column, "a file holds one YAML document; "
                                                            "remove the second '---'"))
            return doc, errors
        if "<block" in message or "mapping values are not allowed" in message:
            message += "; check the indentation"
        if error.context:
            message = f"{message} ({error.context}"
            if error.context_mark is not None and error.problem_mark is not None:
                message += f" at line {doc._mark(error.context_mark.index)[0]}"
            message += ")"
        errors.append(PlaybookError(path, line, column, f"YAML syntax error: {message}"))
        return doc, errors
    except yaml.reader.ReaderError as error:
        line, column = doc._mark(error.position)
        errors.append(PlaybookError(
            path, line, column, f"character {chr(error.character)!r} is not allowed in a YAML file"
            if isinstance(error.character, int) else "text is not readable YAML",
        ))
        return doc, errors
    except yaml.YAMLError as error:
        errors.append(PlaybookError(path, 1, 1, f"YAML error: {str(error).splitlines()[0]}"))
        return doc, errors
    except RecursionError:
        errors.append(PlaybookError(path, 1, 1, "the file is nested too deeply"))
        return doc, errors
    if node is None:
        loader.dispose()
        return doc, errors
    builder = _Builder(doc, loader, errors)
    try:
        doc.data = builder.build(node, ())
    except _TooLarge:
        errors.append(PlaybookError(path, 1, 1, f"the file expands to more than {MAX_NODES} values"))
        doc.data = None
    except RecursionError:
        errors.append(PlaybookError(path, 1, 1, "the file is nested too deeply"))
        doc.data = None
    finally:
        loader.dispose()
    return doc, errors


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _Builder:
    """Turn composed nodes into plain data, recording each node under its data path."""

    def __init__(self, doc: Document, loader: Any, errors: list[PlaybookError]) -> None:
        self.doc = doc
        self.loader = loader
        self.errors = errors
        self.count = 0
        self.active: set[int] = set()

    def at(self, node: yaml.Node, message: str) -> None:
        line, column = self.doc._mark(node.start_mark.index)
        self.errors.append(PlaybookError(self.doc.path, line, column, message))

    def build(self, node: yaml.Node, path: DataPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        if id(node) in self.active:
            self.at(node, "an alias refers to the collection that contains it")
            return None
        self.doc.nodes[path] = node
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ_TAG:
                    self.at(node, f"unsupported YAML tag '{_short_tag(node.tag)}'")
                return [self.build(child, (*path, index)) for index, child in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if node.tag != _MAP_TAG:
                    self.at(node, f"unsupported YAML tag '{_short_tag(node.tag)}'")
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        return None  # pragma: no cover - composer yields only the three node kinds

    def scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            if node.tag == "tag:yaml.org,2002:timestamp":
                self.at(node, f"'{node.value}' is not a valid date or time")
            elif node.tag not in self.loader.yaml_constructors:
                self.at(node, f"unknown YAML tag '{_short_tag(node.tag)}'")
            else:
                self.at(node, f"cannot read '{node.value}' as {_short_tag(node.tag)}")
            return node.value

    def mapping(self, node: yaml.MappingNode, path: DataPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[yaml.Node] = []
        entries: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.at(key_node, "a key must be a plain name, not a list or a mapping")
                continue
            # Keys are names: keep their text, so `on:` stays 'on' and `1:` stays '1'.
            key = str(key_node.value)
            if key in seen:
                first = self.doc._mark(seen[key].start_mark.index)[0]
                self.at(key_node, f"duplicate key '{key}' (first given at line {first})")
                continue
            seen[key] = key_node
            entries.append((key, key_node, value_node))
        # `<<: *defaults` merges: explicit keys win, earlier merge sources win over later ones.
        for merge in reversed(merges):
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for source in reversed(sources):
                if not isinstance(source, yaml.MappingNode):
                    self.at(source, "'<<' merges only mappings")
                    continue
                merged = self.build(source, path)
                if isinstance(merged, dict):
                    result.update(merged)
        self.doc.nodes[path] = node
        for key, key_node, value_node in entries:
            self.doc.key_nodes[(*path, key)] = key_node
            result[key] = self.build(value_node, (*path, key))
        return result


# ---------------------------------------------------------------- pydantic errors, located


def validate(doc: Document, model: type[pydantic.BaseModel]) -> tuple[Any, list[PlaybookError]]:
    """Validate a document's data against `model`; (instance or None, located errors)."""
    if doc.data is None:
        what = "lifecycle" if model is Lifecycle else "stage playbook"
        return None, [PlaybookError(doc.path, 1, 1, f"the file is empty; expected a {what}")]
    try:
        # by_name=False: a YAML author writes `from`, `elif`, `else`, never `from_`.
        return model.model_validate(doc.data, by_alias=True, by_name=False), []
    except pydantic.ValidationError as exc:
        return None, _translate(doc, model, exc.errors())
    except (RecursionError, ValueError, TypeError) as error:
        return None, [PlaybookError(doc.path, 1, 1, f"cannot read the file: {error}")]


@dataclass
class _Where:
    """Where a pydantic `loc` lands in the data, and what the models say about it."""

    path: DataPath
    key: bool = False
    owner: type | None = None  # the model whose field the error is about
    owner_path: DataPath = ()
    field: str | None = None  # that field's name as written in YAML
    type: Any = None  # the expected type at the error
    member: tuple[Any, ...] = ()  # leftover loc segments: union members pydantic tried
    missing: bool = False


def _translate(doc: Document, model: type, raw: list[dict[str, Any]]) -> list[PlaybookError]:
    errors: list[PlaybookError] = []
    unions: dict[tuple[DataPath, bool], list[tuple[_Where, dict[str, Any]]]] = {}
    for error in raw:
        where = _walk(doc.data, model, tuple(error["loc"]))
        if where.member:
            unions.setdefault((where.path, where.key), []).append((where, error))
            continue
        message, key = _message(doc, where, error)
        errors.append(doc.error(where.path, message, key=key))
    for (path, key), group in unions.items():
        where, first = group[0]
        errors.append(doc.error(path, _union_message(where, [e for _, e in group], first["input"]), key=key))
    return errors


@lru_cache(maxsize=None)
def _hints(model: type) -> dict[str, Any]:
    return typing.get_type_hints(model, include_extras=True)


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip Annotated and Optional: (bare type, metadata)."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            metadata.extend(tp.__metadata__)
            tp = tp.__origin__
            continue
        if _is_union(tp):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, metadata


def _is_union(tp: Any) -> bool:
    import types

    return typing.get_origin(tp) in (Union, types.UnionType)


def _field_for(model: type, segment: Any) -> str | None:
    for name, info in model.model_fields.items():
        if segment in (info.alias, name) and (info.alias is None or segment == info.alias):
            return name
    return None


def _walk(data: Any, model: type, loc: tuple[Any, ...]) -> _Where:
    where = _Where(path=())
    tp: Any = model
    for index, segment in enumerate(loc):
        base, metadata = _unwrap(tp)
        if segment == "[key]":
            where.key = True
            args = typing.get_args(base)
            tp = args[0] if len(args) == 2 else str
            continue
        if _is_union(base):
            discriminated = any(getattr(m, "discriminator", None) for m in metadata)
            if discriminated:
                tp = next((c for c in typing.get_args(base) if _kind(c) == segment), Any)
                continue
            where.member = loc[index:]
            break
        if isinstance(base, type) and issubclass(base, pydantic.BaseModel):
            where.owner, where.owner_path, where.field = base, where.path, str(segment)
            name = _field_for(base, segment)
            tp = _hints(base)[name] if name else Any
        elif typing.get_origin(base) is list:
            tp = (typing.get_args(base) or (Any,))[0]
        elif typing.get_origin(base) is dict:
            tp = (typing.get_args(base) or (Any, Any))[-1]
        else:
            tp = Any
        if isinstance(data, dict) and segment in data:
            data = data[segment]
            where.path = (*where.path, segment)
        elif isinstance(data, list) and isinstance(segment, int) and 0 <= segment < len(data):
            data = data[segment]
            where.path = (*where.path, segment)
        else:
            where.missing = True
            where.member = loc[index + 1 :] if index + 1 < len(loc) else ()
            break
    where.type = tp
    if where.key and where.path:
        where.owner_path = where.path[:-1]
    return where


def _kind(model: Any) -> str | None:
    info = getattr(model, "model_fields", {}).get("kind")
    return info.default if info is not None else None


def _describe(owner: type | None, path: DataPath) -> str:
    """How an author would name the thing an error is in: 'wait_for step', "event 'x'"."""
    name = path[-1] if path else None
    if owner is None:
        return "this mapping"
    if isinstance(owner, type) and issubclass(owner, Step) and _kind(owner):
        return f"{_kind(owner)} step"
    named = {
        "Lifecycle": "the lifecycle",
        "Playbook": "the playbook",
        "Transition": "transition",
        "EventSpec": f"event '{name}'",
        "ChannelSpec": f"channel '{name}'",
        "StageSpec": f"stage '{name}'",
        "FactSpec": f"fact '{name}'",
        "FieldSpec": f"field '{name}'",
        "TaskSpec": "'otherwise' task",
        "Branch": "'elif' branch",
    }
    return named.get(owner.__name__, owner.__name__)


def _fields(owner: type | None) -> list[str]:
    if owner is None:
        return []
    return [info.alias or name for name, info in owner.model_fields.items()]


def _is_step(tp: Any) -> bool:
    """Whether `tp` is the discriminated union of step kinds."""
    base, metadata = _unwrap(tp)
    return _is_union(base) and any(getattr(m, "discriminator", None) for m in metadata)


def _is_steps(tp: Any) -> bool:
    """Whether `tp` is a list of steps."""
    base, _ = _unwrap(tp)
    return typing.get_origin(base) is list and _is_step(typing.get_args(base)[0])


def _is_expression(tp: Any) -> bool:
    stripped = tp
    while _is_union(stripped):
        members = [a for a in typing.get_args(stripped) if a is not type(None)]
        if len(members) != 1:
            return False
        stripped = members[0]
    return stripped == Expression


def _snake(text: str) -> str:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_") or "name"


def _message(doc: Document, where: _Where, error: dict[str, Any]) -> tuple[str, bool]:
    """The author-facing text for one pydantic error, and whether it points at a key."""
    kind = error["type"]
    value = error.get("input")
    context = _describe(where.owner, where.owner_path)
    name = where.field
    if kind == "missing":
        return f"missing required field '{name}' in {context}", False
    if kind == "extra_forbidden":
        return f"unknown field '{name}' in {context}{suggest(name, _fields(where.owner))}", True
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", value)
        kinds = [_kind(c) for c in STEP_KINDS]
        hint = suggest(str(tag), kinds) or f" (expected one of: {', '.join(kinds)})"
        if isinstance(doc_value(doc, where.path), dict) and "kind" in doc_value(doc, where.path):
            where.path = (*where.path, "kind")
        return f"unknown step kind '{tag}'{hint}", False
    if kind == "union_tag_not_found":
        kinds = ", ".join(_kind(c) for c in STEP_KINDS)
        return f"missing required field 'kind' in step (one of: {kinds})", False
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if not where.path and where.owner is None:
            what = "a lifecycle" if where.type is Lifecycle else "a stage playbook"
            return f"expected a mapping with the fields of {what}, got {describe_value(value)}", False
        if _is_step(where.type) or _kind(_unwrap(where.type)[0]):
            return f"expected a step (a mapping with 'kind'), got {describe_value(value)}", False
        return f"expected a mapping, got {describe_value(value)}", False
    if kind == "list_type":
        what = "a list"
        if _is_steps(where.type):
            what = "a list of steps"
        elif name == "from":
            what = "a stage name, '*' or a list of stage names"
        elif name == "events":
            what = "a list of event names"
        return f"expected {what}, got {describe_value(value)}", False
    if kind == "too_short":
        what = "step" if _is_steps(where.type) else "event" if name == "events" else "item"
        return f"expected at least one {what} in '{name}'", False
    if kind == "string_type":
        if _is_expression(where.type):
            quoted = str(value).lower() if isinstance(value, bool) else value
            if isinstance(value, (bool, int, float, date)) or value is None:
                return f"expected an expression as text, got {describe_value(value)} (quote it: '{quoted}')", False
            return f"expected an expression as text, got {describe_value(value)}", False
        return f"expected text, got {describe_value(value)}", where.key
    if kind == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        if "\\." in pattern:
            return (f"'{value}' is not a valid event name: use lower_snake_case words joined by "
                    f"dots, e.g. 'order.delivered'"), where.key
        return (f"'{value}' is not a valid name: use lower_snake_case, "
                f"e.g. '{_snake(str(value))}'"), where.key
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        hint = suggest(str(value), options) or ""
        return f"{_short(value)} is not one of: {', '.join(options)}{hint}", False
    if kind == "value_error":
        text = str(error.get("msg", "")).removeprefix("Value error, ")
        target = _unwrap(where.type)[0]
        if isinstance(target, type) and issubclass(target, pydantic.BaseModel):
            # A model validator: the error is about the whole mapping, e.g. a wait step.
            return f"{text} in {_describe(target, where.path)}", False
        return text, False
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {describe_value(value)}", False
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {describe_value(value)}", False
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number, got {describe_value(value)}", False
    msg = str(error.get("msg", "invalid value"))
    return f"{msg[:1].lower()}{msg[1:]} (in {context})", False


def _short(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else describe_value(value)


def doc_value(doc: Document, path: DataPath) -> Any:
    """The plain value at a data path, or None."""
    value = doc.data
    for segment in path:
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and isinstance(segment, int) and 0 <= segment < len(value):
            value = value[segment]
        else:
            return None
    return value


def _union_message(where: _Where, errors: list[dict[str, Any]], value: Any) -> str:
    """One message for a value that fits none of a union's members (e.g. `Duration | float`)."""
    labels = [str(e["loc"][-1]) for e in errors]
    if any("timedelta" in label for label in labels) and "float" in labels:
        return (f"expected a duration (examples: 30m, 2d, 1w, 1d12h, P14D) or a number, "
                f"got {describe_value(value)}")
    texts = []
    for error in errors:
        text = str(error.get("msg", "")).removeprefix("Value error, ")
        if text not in texts:
            texts.append(text)
    return f"invalid value {_short(value)}: " + "; or ".join(texts)


# ---------------------------------------------------------------- files


def _display(path: Path) -> str:
    return str(path)


def _read(path: Path, at: Callable[[str], PlaybookError] | None = None) -> tuple[bytes | None, str | None, list[PlaybookError]]:
    """(bytes, text, errors) of a file; `at` places a 'cannot read' error (default: path:1:1)."""
    shown = _display(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        message = f"file not found: {shown}"
    except IsADirectoryError:
        message = f"{shown} is a folder, not a file"
    except OSError as error:
        message = f"cannot read {shown}: {error.strerror or error}"
    else:
        try:
            return raw, raw.decode("utf-8-sig"), []
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
            return raw, None, [PlaybookError(shown, line, column, "the file is not UTF-8 text")]
    return None, None, [at(message) if at else PlaybookError(shown, 1, 1, message)]


def load_document(path: Path, at: Callable[[str], PlaybookError] | None = None) -> tuple[bytes | None, Document | None, list[PlaybookError]]:
    """Read and parse one YAML file into a located Document."""
    raw, text, errors = _read(path, at)
    if text is None:
        return raw, None, errors
    doc, errors = parse_yaml(_display(path), text)
    return raw, doc, errors


def _validatable(doc: Document, errors: list[PlaybookError]) -> bool:
    """Validate the models unless YAML errors left nothing (or only a guess) to validate."""
    return doc.data is not None or not errors


def load_playbook_file(path: str | Path, lifecycle: Lifecycle | None = None) -> Playbook:
    """Load one stage playbook; with its lifecycle, also check its references.

    `load_project` is what the engine uses; this is for tools that look at a single file.
    """
    path = Path(path)
    _, doc, errors = load_document(path)
    playbook = None
    if doc is not None and _validatable(doc, errors):
        playbook, more = validate(doc, Playbook)
        errors += more
    if playbook is not None and lifecycle is not None:
        folder = path.parent / lifecycle.templates
        available = _template_files(folder)
        errors += checks.check_playbook(
            lifecycle, playbook.playbook, playbook, doc,
            promises=None, templates=available, templates_folder=_display(folder),
        )
    if errors or playbook is None:
        raise PlaybookLoadError(sorted(set(errors)))
    return playbook


def _template_files(folder: Path) -> set[str]:
    try:
        return {p.name[: -len(TEMPLATE_SUFFIX)] for p in folder.iterdir()
                if p.name.endswith(TEMPLATE_SUFFIX) and p.is_file()}
    except OSError:
        return set()


def compile_template(path: str, source: str) -> list[PlaybookError]:
    """Syntax errors of a template file, compiled the way `engine.templates` renders it."""
    from engine.templates import split_subject

    subject, body = split_subject(source)
    parts = [(body, 1)]
    if subject:
        _, _, rest = source.partition("\n")
        parts = [(subject, 1), (body, 2 + len(rest) - len(rest.lstrip("\n")))]
    errors = []
    for text, first_line in parts:
        try:
            checks.parse_template(text)
        except TemplateSyntaxError as error:
            line = first_line + max((error.lineno or 1) - 1, 0)
            errors.append(PlaybookError(path, line, 1, f"template syntax error: {error.message}"))
        except RecursionError:
            errors.append(PlaybookError(path, first_line, 1, "template is nested too deeply"))
    return errors


def _version(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        # Length-prefixed so that moving bytes between parts changes the version.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:12]


def load_project(lifecycle_path: str | Path) -> Project:
    """Load and check a lifecycle, its stage playbooks and templates; raise PlaybookLoadError."""
    return _ProjectLoader(Path(lifecycle_path)).load()


class _ProjectLoader:
    """One load: collects every error across files before deciding."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[PlaybookError] = []
        self.file_order: list[str] = [_display(path)]

    def load(self) -> Project:
        try:
            return self._load()
        except PlaybookLoadError:
            raise
        except Exception as error:  # a bug must still surface as one located line
            self.errors.append(PlaybookError(
                _display(self.path), 1, 1, f"internal error while loading: {type(error).__name__}: {error}"
            ))
            raise PlaybookLoadError(self._sorted()) from error

    def _sorted(self) -> list[PlaybookError]:
        order = {name: index for index, name in enumerate(self.file_order)}
        unique = sorted(set(self.errors), key=lambda e: (order.get(e.path, len(order)), e.path, e.line, e.column, e.message))
        return unique

    def _load(self) -> Project:
        raw, doc, errors = load_document(self.path)
        self.errors += errors
        if doc is None or raw is None:
            raise PlaybookLoadError(self._sorted())
        lifecycle = None
        if _validatable(doc, errors):
            lifecycle, errors = validate(doc, Lifecycle)
            self.errors += errors
        if lifecycle is None:
            # The lifecycle is unusable, but the playbook files it names can still be checked.
            self._check_named_playbooks(doc)
            raise PlaybookLoadError(self._sorted())

        self.errors += checks.check_lifecycle(lifecycle, doc)
        playbooks, sources, docs = self._load_playbooks(lifecycle, doc)
        folder = self.path.parent / lifecycle.templates
        available = _template_files(folder)
        all_loaded = len(playbooks) == sum(1 for s in lifecycle.stages.values() if s.playbook)
        # With a playbook missing, its promises and gotos are unknown: check less, not wrongly.
        promises = checks.promises_recorded(playbooks.values()) if all_loaded else None
        entries = checks.stage_events(lifecycle, playbooks) if all_loaded else {}
        for stage, playbook in playbooks.items():
            self.errors += checks.check_playbook(
                lifecycle, stage, playbook, docs[stage], promises=promises,
                templates=available, templates_folder=_display(folder), entry=entries.get(stage),
            )
        templates = self._load_templates(lifecycle, playbooks, folder, available, promises)
        if self.errors:
            raise PlaybookLoadError(self._sorted())

        versions = {}
        for stage in lifecycle.stages:
            playbook = playbooks.get(stage)
            parts = [raw, sources.get(stage, b"")]
            for name in sorted(templates_used(playbook)):
                parts += [name.encode(), templates[name].encode()]
            versions[stage] = _version(*parts)
        return Project(path=self.path, lifecycle=lifecycle, playbooks=playbooks,
                       templates=templates, versions=versions)

    def _check_named_playbooks(self, doc: Document) -> None:
        stages = doc.data.get("stages") if isinstance(doc.data, dict) else None
        if not isinstance(stages, dict):
            return
        seen: set[Path] = set()
        for stage, spec in stages.items():
            file = spec.get("playbook") if isinstance(spec, dict) else None
            if not isinstance(file, str) or not file:
                continue
            path = self.path.parent / file
            if path in seen:
                continue
            seen.add(path)
            self.file_order.append(_display(path))
            where = ("stages", stage, "playbook")
            _, playbook_doc, errors = load_document(path, lambda m, w=where: doc.error(w, m))
            self.errors += errors
            if playbook_doc is not None and _validatable(playbook_doc, errors):
                self.errors += validate(playbook_doc, Playbook)[1]

    def _load_playbooks(self, lifecycle: Lifecycle, doc: Document) -> tuple[dict[str, Playbook], dict[str, bytes], dict[str, Document]]:
        playbooks: dict[str, Playbook] = {}
        sources: dict[str, bytes] = {}
        docs: dict[str, Document] = {}
        cache: dict[Path, tuple[bytes | None, Document | None, Playbook | None]] = {}
        for stage, spec in lifecycle.stages.items():
            if not spec.playbook:
                continue
            path = self.path.parent / spec.playbook
            where = ("stages", stage, "playbook")
            if path not in cache:
                self.file_order.append(_display(path))
                raw, playbook_doc, errors = load_document(
                    path, lambda m, w=where: doc.error(w, f"stage '{stage}': {m}")
                )
                self.errors += errors
                playbook = None
                if playbook_doc is not None and _validatable(playbook_doc, errors):
                    playbook, errors = validate(playbook_doc, Playbook)
                    self.errors += errors
                cache[path] = (raw, playbook_doc, playbook)
            raw, playbook_doc, playbook = cache[path]
            if playbook is not None and playbook_doc is not None and raw is not None:
                playbooks[stage], sources[stage], docs[stage] = playbook, raw, playbook_doc
        return playbooks, sources, docs

    def _load_templates(self, lifecycle: Lifecycle, playbooks: dict[str, Playbook], folder: Path,
                        available: set[str], promises: set[str] | None) -> dict[str, str]:
        users: dict[str, list[Playbook]] = {}
        for playbook in playbooks.values():
            for name in templates_used(playbook):
                users.setdefault(name, []).append(playbook)
        templates: dict[str, str] = {}
        for name in sorted(users):
            if name not in available or not checks.is_template_name(name):
                continue  # reported at each send step by the checks
            path = folder / f"{name}{TEMPLATE_SUFFIX}"
            shown = _display(path)
            self.file_order.append(shown)
            _, text, errors = _read(path)
            self.errors += errors
            if text is None:
                continue
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            syntax = compile_template(shown, text)
            self.errors += syntax
            if not syntax:
                self.errors += checks.check_template(
                    lifecycle, shown, text, users[name], promises
                )
            templates[name] = text
        return templates

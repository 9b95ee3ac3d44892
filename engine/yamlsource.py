"""YAML with the source position of every value: the loader's view of a playbook file.

Files are composed into nodes (not loaded straight into Python), turned into plain data,
and every value and key is recorded under its data path, e.g. ('steps', 0, 'duration'),
so any later error about that data can be placed at `file:line:column`.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.errors import PlaybookError

DataPath = tuple[Any, ...]
"""Where a value sits in a document: mapping keys and list indexes from the top."""

# Alias expansion can blow a small file up exponentially ("billion laughs"); stop early.
MAX_NODES = 100_000
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_BREAKS = "\n\r"  # as editors count lines; YAML also breaks at \x85, \u2028, \u2029


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


def _not_plain(value: Any) -> str | None:
    """Why a scalar cannot travel as JSON (every value ends up in workflow state), or None."""
    if isinstance(value, bytes):
        return "binary data (!!binary) is not supported; write the value as text"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a number a lifecycle can keep; write a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return "the number is too large: whole numbers are 64-bit (at most 9223372036854775807)"
    return None


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
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            if node.tag == "tag:yaml.org,2002:timestamp":
                self.at(node, f"'{node.value}' is not a valid date or time")
            elif node.tag not in self.loader.yaml_constructors:
                self.at(node, f"unknown YAML tag '{_short_tag(node.tag)}'")
            else:
                self.at(node, f"cannot read '{node.value}' as {_short_tag(node.tag)}")
            return node.value
        problem = _not_plain(value)
        if problem:
            self.at(node, problem)
            return node.value
        return value

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



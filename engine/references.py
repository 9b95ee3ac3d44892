"""What a CEL expression reads: its root names, their fields and the functions it calls.

The loader uses this to reject `facts.opne_tickets` or `dayz(3)` when a playbook loads,
instead of when the expression first runs inside a workflow months later.

The expression is parsed by CEL's own parser (cel-expr-python), the one that runs it; its
syntax tree comes back as a serialized `cel.expr.ParsedExpr`, read with the few message
types declared below (field numbers from cel-spec's syntax.proto).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cel_expr_python import cel
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

# Comprehension macros: `list.exists(x, predicate)`; their first argument(s) bind local names.
MACROS = {"all": 1, "exists": 1, "exists_one": 1, "map": 1, "filter": 1, "reduce": 2}

@dataclass(frozen=True)
class Reference:
    """A dotted name an expression reads, e.g. `facts.open_tickets`; positions are 1-based.

    `names` is the whole dotted chain (`event.data.delivered_at` → 3 names) and
    `positions[i]` the (line, column) of `names[i]` inside the expression.
    """

    names: tuple[str, ...]
    positions: tuple[tuple[int, int], ...]

    @property
    def root(self) -> str:
        """The first name: customer, event, facts, vars, promises or now (if valid)."""
        return self.names[0]

    @property
    def field(self) -> str | None:
        """The first-level field, e.g. `open_tickets` in `facts.open_tickets`."""
        return self.names[1] if len(self.names) > 1 else None

    @property
    def line(self) -> int:
        """Line of the root name inside the expression."""
        return self.positions[0][0]

    @property
    def column(self) -> int:
        """Column of the root name inside the expression."""
        return self.positions[0][1]


@dataclass(frozen=True)
class Call:
    """A function or method an expression calls, e.g. `days(3)` or `s.startsWith('x')`."""

    name: str
    line: int
    column: int
    method: bool


@dataclass(frozen=True)
class ExpressionInfo:
    """Everything the checks need to know about one expression's source."""

    references: tuple[Reference, ...]
    calls: tuple[Call, ...]
    nested_loop: tuple[int, int] | None = None  # (line, column) of a macro inside another's body


class ExpressionSyntaxError(ValueError):
    """A CEL syntax error at (line, column) inside the expression, both 1-based."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@lru_cache(maxsize=4096)
def analyse(source: str) -> ExpressionInfo:
    """Parse `source` and collect its references and calls; raise ExpressionSyntaxError.

    Cached: the result is immutable, and a lifecycle is loaded again on every change.
    """
    if not isinstance(source, str) or not source.strip():
        raise ExpressionSyntaxError(1, 1, "empty expression")
    try:
        serialized = _PARSER.compile(source, disable_check=True).serialize()
    except RuntimeError as error:
        raise _syntax_error(source, str(error)) from None
    wrapper = any_pb2.Any()
    wrapper.ParseFromString(serialized)
    parsed = _PARSED()
    parsed.ParseFromString(wrapper.value)
    return _Collector(source, parsed).run()


def syntax_tree(source: str) -> Any:
    """The parsed expression (a `cel.expr.Expr` as far as declared below); raises RuntimeError
    when it does not parse."""
    wrapper = any_pb2.Any()
    wrapper.ParseFromString(_PARSER.compile(source, disable_check=True).serialize())
    parsed = _PARSED()
    parsed.ParseFromString(wrapper.value)
    return parsed.expr


def references(source: str) -> list[tuple[str, str | None, int]]:
    """(root, first-level field or None, column) of every name `source` reads."""
    return [(ref.root, ref.field, ref.column) for ref in analyse(source).references]


# ---------------------------------------------------------------- the syntax tree's types


def _syntax_types() -> Any:
    """cel.expr.ParsedExpr, as much of it as the collector reads (other fields are skipped)."""
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="lifecycle_cel_syntax.proto", package="lcsyntax",
                                              syntax="proto3")

    def add(message: Any, name: str, number: int, kind: int, type_name: str = "", repeated: bool = False,
            oneof: int | None = None) -> None:
        field = message.field.add(name=name, number=number, type=kind,
                                  label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if type_name:
            field.type_name = type_name
        if oneof is not None:
            field.oneof_index = oneof

    expr = file.message_type.add(name="Expr")
    constant = file.message_type.add(name="Constant")  # read by engine.shortcut
    constant.oneof_decl.add(name="constant_kind")
    for name, number, kind in (("null_value", 1, F.TYPE_INT32), ("bool_value", 2, F.TYPE_BOOL),
                               ("int64_value", 3, F.TYPE_INT64), ("uint64_value", 4, F.TYPE_UINT64),
                               ("double_value", 5, F.TYPE_DOUBLE), ("string_value", 6, F.TYPE_STRING),
                               ("bytes_value", 7, F.TYPE_BYTES)):
        add(constant, name, number, kind, oneof=0)
    ident = expr.nested_type.add(name="Ident")
    add(ident, "name", 1, F.TYPE_STRING)
    select = expr.nested_type.add(name="Select")
    add(select, "operand", 1, F.TYPE_MESSAGE, ".lcsyntax.Expr")
    add(select, "field", 2, F.TYPE_STRING)
    add(select, "test_only", 3, F.TYPE_BOOL)
    call = expr.nested_type.add(name="Call")
    add(call, "target", 1, F.TYPE_MESSAGE, ".lcsyntax.Expr")
    add(call, "function", 2, F.TYPE_STRING)
    add(call, "args", 3, F.TYPE_MESSAGE, ".lcsyntax.Expr", repeated=True)
    create_list = expr.nested_type.add(name="CreateList")
    add(create_list, "elements", 1, F.TYPE_MESSAGE, ".lcsyntax.Expr", repeated=True)
    create_struct = expr.nested_type.add(name="CreateStruct")
    entry = create_struct.nested_type.add(name="Entry")
    add(entry, "map_key", 3, F.TYPE_MESSAGE, ".lcsyntax.Expr")
    add(entry, "value", 4, F.TYPE_MESSAGE, ".lcsyntax.Expr")
    add(create_struct, "entries", 2, F.TYPE_MESSAGE, ".lcsyntax.Expr.CreateStruct.Entry", repeated=True)
    comprehension = expr.nested_type.add(name="Comprehension")
    for name, number in (("iter_var", 1), ("accu_var", 3), ("iter_var2", 8)):
        add(comprehension, name, number, F.TYPE_STRING)
    for name, number in (("iter_range", 2), ("accu_init", 4), ("loop_condition", 5), ("loop_step", 6),
                         ("result", 7)):
        add(comprehension, name, number, F.TYPE_MESSAGE, ".lcsyntax.Expr")
    expr.oneof_decl.add(name="expr_kind")
    add(expr, "id", 2, F.TYPE_INT64)
    for name, number, type_name in (
        ("const_expr", 3, ".lcsyntax.Constant"), ("ident_expr", 4, ".lcsyntax.Expr.Ident"),
        ("select_expr", 5, ".lcsyntax.Expr.Select"), ("call_expr", 6, ".lcsyntax.Expr.Call"),
        ("list_expr", 7, ".lcsyntax.Expr.CreateList"), ("struct_expr", 8, ".lcsyntax.Expr.CreateStruct"),
        ("comprehension_expr", 9, ".lcsyntax.Expr.Comprehension"),
    ):
        add(expr, name, number, F.TYPE_MESSAGE, type_name, oneof=0)
    info = file.message_type.add(name="SourceInfo")
    positions = info.nested_type.add(name="PositionsEntry")
    positions.options.map_entry = True
    add(positions, "key", 1, F.TYPE_INT64)
    add(positions, "value", 2, F.TYPE_INT32)
    add(info, "positions", 4, F.TYPE_MESSAGE, ".lcsyntax.SourceInfo.PositionsEntry", repeated=True)
    parsed = file.message_type.add(name="ParsedExpr")
    add(parsed, "expr", 2, F.TYPE_MESSAGE, ".lcsyntax.Expr")
    add(parsed, "source_info", 3, F.TYPE_MESSAGE, ".lcsyntax.SourceInfo")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("lcsyntax.ParsedExpr"))


_PARSED = _syntax_types()
_PARSER = cel.NewEnv()
_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Collector:
    """Walks a parsed expression (without recursion: deep expressions make deep trees)."""

    def __init__(self, source: str, parsed: Any) -> None:
        self.source = source
        self.positions = dict(parsed.source_info.positions)
        self.root = parsed.expr
        starts, offset = [], 0
        for line in source.split("\n"):
            starts.append(offset)
            offset += len(line) + 1
        self.line_starts = starts

    def place(self, offset: int) -> tuple[int, int]:
        """(line, column), both 1-based, of a character offset into the source."""
        offset = max(0, min(offset, len(self.source)))
        line = 0
        while line + 1 < len(self.line_starts) and self.line_starts[line + 1] <= offset:
            line += 1
        return line + 1, offset - self.line_starts[line] + 1

    def macro_name_before(self, paren: int) -> int:
        """The offset of the macro's name (`exists`) whose opening parenthesis is at `paren`."""
        start = paren
        while start > 0 and (self.source[start - 1].isalnum() or self.source[start - 1] == "_"):
            start -= 1
        return start

    def name_at(self, name: str, start: int) -> int:
        """The offset of `name` at or after `start` (a select's position is its dot)."""
        found = self.source.find(name, start)
        return found if found >= 0 else start

    def run(self) -> ExpressionInfo:
        refs: list[Reference] = []
        calls: list[Call] = []
        nested_loop: tuple[int, int] | None = None
        # Each entry: node, local names, and whether it is inside a loop's body (a macro there
        # runs once per element of the outer one: the cost multiplies).
        stack: list[tuple[Any, frozenset[str], bool]] = [(self.root, frozenset(), False)]
        while stack:
            node, local, in_loop = stack.pop()
            kind = node.WhichOneof("expr_kind")
            if kind == "ident_expr":
                name = node.ident_expr.name.lstrip(".")
                if name not in local:
                    refs.append(Reference((name,), (self.place(self.positions.get(node.id, 0)),)))
            elif kind == "select_expr":
                chain, bottom = self._chain(node)
                if bottom.WhichOneof("expr_kind") == "ident_expr" and \
                        bottom.ident_expr.name.lstrip(".") not in local:
                    root = bottom.ident_expr.name.lstrip(".")
                    places = [self.place(self.positions.get(bottom.id, 0))]
                    for select in chain:
                        dot = self.positions.get(select.id, 0)
                        places.append(self.place(self.name_at(select.select_expr.field, dot)))
                    names = (root, *(select.select_expr.field for select in chain))
                    refs.append(Reference(names, tuple(places)))
                else:
                    stack.append((bottom, local, in_loop))
            elif kind == "call_expr":
                call = node.call_expr
                if _FUNCTION.match(call.function):
                    calls.append(self._call(call.function, node.id, call.HasField("target")))
                if call.HasField("target"):
                    stack.append((call.target, local, in_loop))
                stack.extend((arg, local, in_loop) for arg in call.args)
            elif kind == "list_expr":
                stack.extend((element, local, in_loop) for element in node.list_expr.elements)
            elif kind == "struct_expr":
                for entry in node.struct_expr.entries:
                    if entry.HasField("map_key"):
                        stack.append((entry.map_key, local, in_loop))
                    stack.append((entry.value, local, in_loop))
            elif kind == "comprehension_expr":
                # A macro (`exists`, `all`, ...) arrives expanded: its variables are local.
                loop = node.comprehension_expr
                inner = local | {loop.iter_var, loop.accu_var} | ({loop.iter_var2} if loop.iter_var2 else set())
                if in_loop and nested_loop is None:
                    nested_loop = self.place(self.macro_name_before(self.positions.get(node.id, 0)))
                stack.append((loop.iter_range, local, in_loop))
                stack.append((loop.accu_init, local, in_loop))
                stack.extend((part, inner, True) for part in (loop.loop_condition, loop.loop_step))
                stack.append((loop.result, inner, in_loop))
        refs.sort(key=lambda r: r.positions[0])
        calls.sort(key=lambda c: (c.line, c.column))
        return ExpressionInfo(tuple(refs), tuple(calls), nested_loop)

    def _chain(self, node: Any) -> tuple[list[Any], Any]:
        """Unroll `a.b.c` into its select nodes (outermost last) and the bottom operand."""
        chain = []
        while node.WhichOneof("expr_kind") == "select_expr":
            chain.append(node)
            node = node.select_expr.operand
        chain.reverse()
        return chain, node

    def _call(self, name: str, node_id: int, method: bool) -> Call:
        # A call's position is its opening parenthesis; the name ends just before it.
        paren = self.positions.get(node_id, 0)
        start = self.source.rfind(name, 0, paren + 1)
        line, column = self.place(start if start >= 0 else paren)
        return Call(name, line, column, method=method)


_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (?:Syntax error: )?(.*)")


def _syntax_error(source: str, text: str) -> ExpressionSyntaxError:
    """The parser's first error, in the words the loader has always used."""
    lines = source.split("\n")
    end = (len(lines), len(lines[-1]) + 1)
    if "recursion" in text.lower():
        return ExpressionSyntaxError(1, 1, "expression is nested too deeply")
    match = _ERROR.search(text)
    if match is None:
        return ExpressionSyntaxError(*end, f"syntax error: {text.splitlines()[0] if text else 'invalid'}")
    line, column, message = int(match.group(1)), int(match.group(2)), match.group(3).strip()
    if not (1 <= line <= len(lines)) or column < 1:
        line, column = end
    if "'<EOF>'" in message.split(" expecting ")[0]:
        return ExpressionSyntaxError(*end, "syntax error: the expression ends too early")
    unknown = re.match(r"token recognition error at: '(.)", message)
    if unknown:
        return ExpressionSyntaxError(line, column, f"syntax error: unexpected character {unknown.group(1)!r}")
    token = re.match(r"(?:extraneous|mismatched) input '(.*?)'(?: expecting|$)", message) or \
        re.match(r"no viable alternative at input '(.*?)'$", message)
    if token:
        return ExpressionSyntaxError(line, column, f"syntax error: unexpected '{token.group(1)}'")
    return ExpressionSyntaxError(line, column, f"syntax error: {message}")

"""What a CEL expression reads: its root names, their fields and the functions it calls.

The loader uses this to reject `facts.opne_tickets` or `dayz(3)` when a playbook loads,
instead of when the expression first runs inside a workflow months later.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import celpy
import lark
from celpy.celparser import CELParseError

# Comprehension macros: `list.exists(x, predicate)`; their first argument(s) bind local names.
MACROS = {"all": 1, "exists": 1, "exists_one": 1, "map": 1, "filter": 1, "reduce": 2}

_ENV = celpy.Environment()


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
        tree = _ENV.compile(source)
    except CELParseError as error:
        raise _syntax_error(source, error) from None
    except RecursionError:
        raise ExpressionSyntaxError(1, 1, "expression is nested too deeply") from None
    return _collect(tree)


def references(source: str) -> list[tuple[str, str | None, int]]:
    """(root, first-level field or None, column) of every name `source` reads."""
    return [(ref.root, ref.field, ref.column) for ref in analyse(source).references]


def _syntax_error(source: str, error: CELParseError) -> ExpressionSyntaxError:
    cause = error.__context__
    lines = source.split("\n")
    end = (len(lines), len(lines[-1]) + 1)
    if isinstance(cause, lark.exceptions.UnexpectedToken):
        token = cause.token
        if token.type == "$END":
            return ExpressionSyntaxError(*end, "syntax error: the expression ends too early")
        line, column = _position(token.line, token.column, end)
        return ExpressionSyntaxError(line, column, f"syntax error: unexpected '{token}'")
    if isinstance(cause, lark.exceptions.UnexpectedCharacters):
        line, column = _position(cause.line, cause.column, end)
        char = cause.char if getattr(cause, "char", None) else "?"
        return ExpressionSyntaxError(line, column, f"syntax error: unexpected character {char!r}")
    if isinstance(cause, lark.exceptions.UnexpectedEOF):
        return ExpressionSyntaxError(*end, "syntax error: the expression ends too early")
    line, column = _position(error.line, error.column, end)
    first = str(error).splitlines()[0] if str(error).strip() else "invalid expression"
    return ExpressionSyntaxError(line, column, f"syntax error: {first}")


def _position(line: object, column: object, end: tuple[int, int]) -> tuple[int, int]:
    # lark reports -1 or None when it has no position; fall back to the end of the text.
    if isinstance(line, int) and isinstance(column, int) and line >= 1 and column >= 1:
        return line, column
    return end


def _token_position(token: lark.Token) -> tuple[int, int]:
    return (token.line or 1, token.column or 1)


def _collect(tree: lark.Tree) -> ExpressionInfo:
    """Walk the tree without recursion (deep expressions make deep trees)."""
    refs: list[Reference] = []
    calls: list[Call] = []
    stack: list[tuple[lark.Tree | lark.Token, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, local = stack.pop()
        if not isinstance(node, lark.Tree):
            continue
        kind = node.data
        if kind == "member_dot":
            bottom, chain = _chain(node)
            root = _ident(bottom)
            if root is not None:
                if root.value not in local:
                    names = (root.value, *(t.value for t in chain))
                    positions = tuple(_token_position(t) for t in (root, *chain))
                    refs.append(Reference(names, positions))
            else:
                stack.append((bottom, local))
            continue
        if kind == "ident":
            token = node.children[0]
            if token.value not in local:
                refs.append(Reference((token.value,), (_token_position(token),)))
            continue
        if kind == "dot_ident":
            token = node.children[0]
            refs.append(Reference((token.value,), (_token_position(token),)))
            continue
        if kind in ("ident_arg", "dot_ident_arg"):
            token = node.children[0]
            calls.append(Call(token.value, *_token_position(token), method=False))
            stack.extend((child, local) for child in node.children[1:])
            continue
        if kind == "member_dot_arg":
            receiver, token = node.children[0], node.children[1]
            calls.append(Call(token.value, *_token_position(token), method=True))
            args = _args(node)
            stack.append((receiver, local))
            bound = MACROS.get(token.value, 0)
            names = [_bare_ident(arg) for arg in args[:bound]]
            if bound and len(args) > bound and all(name is not None for name in names):
                inner = local | frozenset(name for name in names if name is not None)
                stack.extend((arg, inner) for arg in args[bound:])
            else:
                stack.extend((arg, local) for arg in args)
            continue
        if kind == "member_object":
            # `Type{field: value}`: the type name is not a variable; only the values are read.
            stack.extend((child, local) for child in node.children[1:])
            continue
        stack.extend((child, local) for child in reversed(node.children))
    refs.sort(key=lambda r: r.positions[0])
    calls.sort(key=lambda c: (c.line, c.column))
    return ExpressionInfo(tuple(refs), tuple(calls))


def _chain(node: lark.Tree) -> tuple[lark.Tree, list[lark.Token]]:
    """Unroll `a.b.c` (nested member_dot) into its bottom member and the field tokens."""
    fields: list[lark.Token] = []
    while isinstance(node, lark.Tree) and node.data == "member_dot":
        fields.append(node.children[1])
        node = node.children[0]
        # member_dot's first child is a `member` wrapper around the next link.
        while isinstance(node, lark.Tree) and node.data == "member" and len(node.children) == 1:
            node = node.children[0]
    fields.reverse()
    return node, fields


def _ident(node: lark.Tree | lark.Token) -> lark.Token | None:
    """The identifier token when `node` is a bare name (`primary → ident`), else None."""
    while isinstance(node, lark.Tree) and node.data in ("member", "primary") and len(node.children) == 1:
        node = node.children[0]
    if isinstance(node, lark.Tree) and node.data in ("ident", "dot_ident"):
        token = node.children[0]
        return token if isinstance(token, lark.Token) else None
    return None


def _bare_ident(expr: lark.Tree) -> str | None:
    """The name when an argument is nothing but an identifier (a macro's bound variable)."""
    node: lark.Tree | lark.Token = expr
    while isinstance(node, lark.Tree) and len(node.children) == 1 and node.data != "ident":
        node = node.children[0]
    if isinstance(node, lark.Tree) and node.data == "ident":
        return str(node.children[0].value)
    return None


def _args(node: lark.Tree) -> list[lark.Tree]:
    for child in node.children[2:]:
        if isinstance(child, lark.Tree) and child.data == "exprlist":
            return [c for c in child.children if isinstance(c, lark.Tree)]
    return []

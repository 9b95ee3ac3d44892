"""The common simple expressions answered in Python, without a call into the CEL runtime.

Most conditions a lifecycle evaluates are a plain read (`event.data.delivered_at`, `now`), a
literal, or a few comparisons joined by `&&`, `||` and `!` (`vars.score != null && vars.score
<= vars.detractor_max_score`). A call into the runtime costs several times what answering
those does, and the simulator makes dozens per customer-year.

The shortcut answers only when it is certain to give what the runtime gives: reads of keys
that are there, comparisons of two values of the same plain type (int, double, ASCII string,
timestamp; an int and a double below 2**53), `== null` / `!= null`, logic over booleans, `+`
and `-` of ints (inside int64) and of a timestamp and a duration, `double(...)` of a number,
and the engine's own functions (`days`, `next_local`, ...: the implementation the runtime
calls) given exactly an overload's types, `x[key]` of a key that is there, and the `all` and
`exists` macros over a map's keys or a list. Anything else (a missing key, a null compared by
order, another macro, a value of another type, an overflow, a function that raises) makes the whole
expression UNSURE, and the runtime evaluates it, errors included. tests/test_shortcut.py
holds it to the runtime's answers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from operator import methodcaller
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from engine.references import syntax_tree

UNSURE: Any = object()
"""What a shortcut answers when the runtime must decide."""

Names = dict[str, Any]
Shortcut = Callable[[Names], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INT_RANGE = range(-(2**63), 2**63)
_SECONDS_MIN, _SECONDS_MAX = -62135596800, 253402300799  # 0001-01-01 and 9999-12-31T23:59:59, UTC
_ROOTS = frozenset({"customer", "event", "facts", "vars", "promises", "now"})
_ORDER = {"_<_": lambda a, b: a < b, "_<=_": lambda a, b: a <= b,
          "_>_": lambda a, b: a > b, "_>=_": lambda a, b: a >= b}
_ORDERED = frozenset({int, float, str, datetime})
_EXACT = 2**53
_LONGEST = timedelta(days=100_000)  # well inside what the runtime holds (int64 nanoseconds: ±292 years)


def _numbers(a: Any, b: Any) -> bool:
    """An int and a double the runtime compares by value, as Python does: the int is exact as
    a double (below 2**53), so no rounding can tell them apart."""
    if type(a) is float and type(b) is int:
        a, b = b, a
    return type(a) is int and type(b) is float and -_EXACT <= a <= _EXACT


class _Unsupported(Exception):
    """The expression uses something the shortcut does not answer."""


@lru_cache(maxsize=4096)
def shortcut(source: str) -> Shortcut | None:
    """A function of the names giving the expression's value or UNSURE; None when the
    expression is not of the simple kind (then only the runtime evaluates it)."""
    try:
        node = _compile(syntax_tree(source), 0)
    except (RuntimeError, _Unsupported, RecursionError):
        return None
    if _gives_plain(node):
        return node

    def answer(names: Names) -> Any:
        return plain(node(names))

    return answer


@lru_cache(maxsize=4096)
def reader(source: str) -> Shortcut | None:
    """`shortcut` of a scope (engine.context.Scope) instead of the names: each `root.field` is
    read at once with `scope.field_<root>(name)` (`scope.has` for `has(...)`), the same value
    the names would hold, without building them (a root read whole, `promises` in
    `promises.all(...)`, comes from `scope.root(name)`). None when not of the simple kind."""
    try:
        node = _compile(syntax_tree(source), 0, fused=True)
    except (RuntimeError, _Unsupported, RecursionError):
        return None
    if _gives_plain(node):
        return node

    def answer(scope: Any) -> Any:
        return plain(node(scope))

    return answer


def plain(value: Any) -> Any:
    """A value as the runtime would give it back (`plain_value()`), or UNSURE."""
    kind = type(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        return value if value in _INT_RANGE else UNSURE
    if kind is str:
        return value if value.isascii() else UNSURE  # the runtime may refuse what UTF-8 cannot hold
    if kind is timestamp_pb2.Timestamp:  # how engine.types.to_cel hands a time inside a map
        if value.nanos % 1000 or not _SECONDS_MIN <= value.seconds <= _SECONDS_MAX:
            return UNSURE  # finer than a datetime holds, or outside the years 1 to 9999
        return _EPOCH + timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)
    if kind is datetime and value.tzinfo is timezone.utc:  # `now`
        return value
    if kind is duration_pb2.Duration:
        if value.nanos % 1000:
            return UNSURE
        value = timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)
        kind = timedelta
    if kind is timedelta:
        return value if -_LONGEST <= value <= _LONGEST else UNSURE
    return UNSURE


def _returned(value: Any) -> Any:
    """What an engine function returned, as the runtime gives it back: a time as UTC."""
    if type(value) is datetime:
        if value.tzinfo is None or value.utcoffset() is None or not 1 < value.year < 9999:
            return UNSURE  # the runtime's conversion decides at the ends of the calendar
        return value.astimezone(timezone.utc)
    return plain(value)


def _plain_node(node: Shortcut) -> Shortcut:
    """Mark a node whose every value is already what `plain` gives back (a literal, a bool,
    UNSURE): the nodes over it skip that call."""
    node.gives_plain = True  # type: ignore[attr-defined]
    return node


def _gives_plain(node: Shortcut) -> bool:
    return getattr(node, "gives_plain", False)


Bound = dict[str, list[Any]]  # a comprehension's variable → the cell holding its current value


def _compile(node: Any, depth: int, fused: bool = False, bound: Bound | None = None) -> Shortcut:
    """The node as a function of the names, or (`fused`) of a scope: see `reader`."""
    if depth > 50:
        raise _Unsupported()
    bound = bound or {}
    kind = node.WhichOneof("expr_kind")
    if kind == "const_expr":
        return _constant(node.const_expr)
    if kind == "ident_expr":
        name = node.ident_expr.name
        if name in bound:
            cell = bound[name]
            return lambda names: cell[0]
        if name not in _ROOTS:
            raise _Unsupported()
        if fused:
            if name == "now":
                return lambda scope: scope.now
            return lambda scope: scope.root(name)  # a root read whole
        return lambda names: names.get(name, UNSURE)
    if kind == "select_expr":
        select = node.select_expr
        operand = select.operand
        if fused and operand.WhichOneof("expr_kind") == "ident_expr" and operand.ident_expr.name in _ROOTS \
                and operand.ident_expr.name not in bound:
            root, field = operand.ident_expr.name, select.field
            if select.test_only:
                return _plain_node(lambda scope: scope.has(root, field))
            return methodcaller(f"field_{root}", field)  # scope.field_facts(field), ...
        return _select(select, depth, fused, bound)
    if kind == "call_expr" and not node.call_expr.HasField("target"):
        return _call(node.call_expr.function,
                     [_compile(arg, depth + 1, fused, bound) for arg in node.call_expr.args])
    if kind == "comprehension_expr":
        return _all_or_exists(node.comprehension_expr, depth, fused, bound)
    raise _Unsupported()


def _all_or_exists(loop: Any, depth: int, fused: bool, bound: Bound) -> Shortcut:
    """`range.all(x, p)` or `range.exists(x, p)` over a map's keys or a list: decided by the
    first element whose `p` decides it (false for all, true for exists: the runtime's `&&` and
    `||` take that over an error elsewhere), else by every `p` being the other bool."""
    accu, step = loop.accu_var, loop.loop_step
    if loop.accu_init.WhichOneof("expr_kind") != "const_expr" or \
            loop.accu_init.const_expr.WhichOneof("constant_kind") != "bool_value" or \
            step.WhichOneof("expr_kind") != "call_expr" or len(step.call_expr.args) != 2 or \
            step.call_expr.args[0].ident_expr.name != accu or loop.result.ident_expr.name != accu:
        raise _Unsupported()
    start = loop.accu_init.const_expr.bool_value
    if (step.call_expr.function, start) not in (("_&&_", True), ("_||_", False)):
        raise _Unsupported()  # neither all nor exists
    cell: list[Any] = [None]
    over = _compile(loop.iter_range, depth + 1, fused, bound)
    test = _compile(step.call_expr.args[1], depth + 1, fused, {**bound, loop.iter_var: cell})
    decisive = not start  # false decides `all`, true decides `exists`

    def comprehension(names: Names) -> Any:
        items = over(names)
        if type(items) is not dict and type(items) is not list:
            return UNSURE
        answer = start
        for item in list(items):
            cell[0] = item
            value = test(names)
            if value is decisive:
                return value
            if type(value) is not bool:
                answer = UNSURE  # unless a later element decides it
        return answer
    return _plain_node(comprehension)


def _constant(constant: Any) -> Shortcut:
    which = constant.WhichOneof("constant_kind")
    if which == "null_value":
        value = None
    elif which in ("bool_value", "int64_value", "double_value"):
        value = getattr(constant, which)
    elif which == "string_value" and constant.string_value.isascii():
        value = constant.string_value
    else:
        raise _Unsupported()
    return _plain_node(lambda names: value)


def _select(select: Any, depth: int, fused: bool = False, bound: Bound | None = None) -> Shortcut:
    operand, field = _compile(select.operand, depth + 1, fused, bound), select.field
    if select.test_only:  # has(x.field)
        def has(names: Names) -> Any:
            owner = operand(names)
            return field in owner if type(owner) is dict else UNSURE
        return _plain_node(has)

    def read(names: Names) -> Any:
        owner = operand(names)
        if type(owner) is not dict:
            return UNSURE
        return owner.get(field, UNSURE)
    return read


def _call(function: str, args: list[Shortcut]) -> Shortcut:
    if function == "!_" and len(args) == 1:
        (operand,) = args

        def negation(names: Names) -> Any:
            value = operand(names)
            return (not value) if type(value) is bool else UNSURE
        return _plain_node(negation)
    if function in ("_&&_", "_||_") and len(args) == 2:
        left, right = args
        decisive = function == "_||_"  # true decides `||`, false decides `&&`

        def logic(names: Names) -> Any:
            value = left(names)
            if type(value) is not bool:
                return UNSURE  # the runtime's rules for errors on either side apply
            if value is decisive:
                return value
            value = right(names)
            return value if type(value) is bool else UNSURE
        return _plain_node(logic)
    if function == "_?_:_" and len(args) == 3:
        condition, then, otherwise = args

        def choice(names: Names) -> Any:
            value = condition(names)
            if type(value) is not bool:
                return UNSURE
            return then(names) if value else otherwise(names)
        return choice
    if function in ("_==_", "_!=_") and len(args) == 2:
        left, right = args
        negate = function == "_!=_"
        left_plain, right_plain = _gives_plain(left), _gives_plain(right)

        def equality(names: Names) -> Any:
            a = left(names) if left_plain else plain(left(names))
            b = right(names) if right_plain else plain(right(names))
            if a is UNSURE or b is UNSURE:
                return UNSURE
            if a is None or b is None:
                return (a is b) != negate  # null equals only null
            if type(a) is not type(b) and not _numbers(a, b):
                return UNSURE  # different types: the runtime's rules
            return (a == b) != negate
        return _plain_node(equality)
    if function in _ORDER and len(args) == 2:
        left, right = args
        compare = _ORDER[function]
        left_plain, right_plain = _gives_plain(left), _gives_plain(right)

        def order(names: Names) -> Any:
            a = left(names) if left_plain else plain(left(names))
            b = right(names) if right_plain else plain(right(names))
            if a is UNSURE or b is UNSURE or type(a) not in _ORDERED or \
                    type(a) is not type(b) and not _numbers(a, b):
                return UNSURE
            return compare(a, b)
        return _plain_node(order)
    if function == "_[_]" and len(args) == 2:
        owner_of, key_of = args

        def index(names: Names) -> Any:
            owner, key = owner_of(names), plain(key_of(names))
            if type(owner) is dict and type(key) is str:
                return owner.get(key, UNSURE)
            if type(owner) is list and type(key) is int and 0 <= key < len(owner):
                return owner[key]
            return UNSURE
        return index
    if function in ("_+_", "_-_") and len(args) == 2:
        left, right = args
        add = function == "_+_"
        left_plain, right_plain = _gives_plain(left), _gives_plain(right)

        def arithmetic(names: Names) -> Any:
            a = left(names) if left_plain else plain(left(names))
            b = right(names) if right_plain else plain(right(names))
            ka, kb = type(a), type(b)
            if ka is kb is int:
                value = a + b if add else a - b
                return value if value in _INT_RANGE else UNSURE  # int64 overflow: the runtime's error
            if ka is datetime and kb is timedelta or add and ka is timedelta and kb is datetime:
                try:
                    return a + b if add else a - b
                except OverflowError:  # past the year 9999 (or before 1): the runtime's error
                    return UNSURE
            return UNSURE
        return arithmetic
    if function == "double" and len(args) == 1:
        (operand,) = args

        def to_double(names: Names) -> Any:
            value = plain(operand(names))
            if type(value) is float:
                return value
            return float(value) if type(value) is int and -_EXACT <= value <= _EXACT else UNSURE
        return _plain_node(to_double)
    return _engine_function(function, args)


def _engine_function(function: str, args: list[Shortcut]) -> Shortcut:
    """One of the engine's own functions (engine.expressions.FUNCTION_SIGNATURES), called with
    the implementation the runtime calls, when the arguments have exactly an overload's types."""
    from engine.expressions import FUNCTION_SIGNATURES, T  # it imports this module

    python_types = ((T.INT, int), (T.DOUBLE, float), (T.STRING, str), (T.BOOL, bool),
                    (T.TIMESTAMP, datetime), (T.DURATION, timedelta))

    def python_type(cel_type: Any) -> type:
        for known, kind in python_types:
            if cel_type == known:
                return kind
        raise _Unsupported()

    overloads = [(tuple(python_type(param) for param in params), impl)
                 for _, params, _, impl in FUNCTION_SIGNATURES.get(function, []) if len(params) == len(args)]
    if not overloads:
        raise _Unsupported()

    given_plain = [_gives_plain(arg) for arg in args]

    def call(names: Names) -> Any:
        values = [arg(names) if is_plain else plain(arg(names)) for arg, is_plain in zip(args, given_plain)]
        kinds = tuple(type(value) for value in values)
        for types, impl in overloads:
            if kinds == types:
                try:
                    return _returned(impl(*values))
                except Exception:  # noqa: BLE001 - the runtime reports it, with its message
                    return UNSURE
        return UNSURE
    return _plain_node(call)  # `_returned` gives what `plain` does

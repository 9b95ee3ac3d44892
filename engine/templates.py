"""Message templates: Jinja2's immutable sandbox, compiled without evaluating anything, rendered
on a budget, so a template can format data but never change it, reach outside it, or exhaust
the worker.

A template file is an optional `Subject: ...` line, a blank line, then the body.

What a template cannot do, and where that is caught:
- change the state it reads (`customer.update(...)`): the immutable sandbox refuses it at render
  time, and `unsafe_uses` reports it at load time, like `_`-prefixed attributes;
- make the loader or the compiler evaluate it (`{{ 'x' * 10**9 }}`): templates are compiled with
  Jinja's constant folding off, and checks only parse;
- take unbounded memory or time when it renders: every message has a budget (characters out,
  loop iterations, calls, the size of any value it builds) and stops with TemplateRenderError.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import lru_cache, wraps
from numbers import Number
from types import TracebackType
from typing import Any

from jinja2 import ChainableUndefined
from jinja2 import nodes as jinja_nodes
from jinja2.compiler import CodeGenerator
from jinja2.meta import TrackingCodeGenerator
from jinja2.runtime import LoopContext
from jinja2.sandbox import (
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    ImmutableSandboxedEnvironment,
    _mutable_spec,
)
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

# The budget of one message (subject and body together). Generous for any message a person
# reads, small next to Temporal's 2 MB payload and a workflow task's one second.
MAX_OUTPUT = 64 * 1024
"""Characters a message may produce, counting text built inside macros and `set` blocks."""
MAX_ITERATIONS = 10_000
"""Loop iterations per message, across all loops, nested and recursive."""
MAX_CALLS = 10_000
"""Function, method, filter and macro calls per message."""
MAX_VALUE = 64 * 1024
"""Characters or items in any value a template builds (a string, a list, a mapping)."""
MAX_INT_BITS = 4096
"""Bits of any whole number a template computes (2**4096 has 1,234 digits)."""


class TemplateRenderError(Exception):
    """A template failed while rendering: over its budget, or any error on the way.

    `render` raises nothing else, so a caller catches this one type and holds the customer.
    """

    def __init__(self, template: str, reason: str) -> None:
        super().__init__(template, reason)  # both in args: the error pickles and copies whole
        self.template = template
        self.reason = reason

    def __str__(self) -> str:
        return f"template '{self.template}': {self.reason}"


class _OverBudget(Exception):
    """Raised inside a render when a limit is reached; becomes a TemplateRenderError."""


class _Budget:
    """What one message has used so far."""

    def __init__(self) -> None:
        self.output = 0
        self.iterations = 0
        self.calls = 0
        # id -> (value, size); holding the value keeps its id from being reused mid-render.
        self._sizes: dict[int, tuple[Any, int]] = {}

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise _OverBudget(f"loops ran more than {MAX_ITERATIONS} times")
            yield item

    def call(self) -> None:
        self.calls += 1
        if self.calls > MAX_CALLS:
            raise _OverBudget(f"more than {MAX_CALLS} calls (functions, filters, macros)")

    def size(self, value: Any) -> int:
        """Characters and items `value` expands to when printed, each shared part counted
        every time it appears; stops counting past MAX_VALUE."""
        if isinstance(value, (str, bytes)):
            return len(value)
        if not isinstance(value, (list, tuple, dict, set, frozenset)):
            return 1
        known = self._sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        total = len(value)
        for item in (value.items() if isinstance(value, dict) else value):
            total += self.size(item)
            if total > MAX_VALUE:
                break
        self._sizes[id(value)] = (value, total)
        return total

    def check(self, value: Any) -> Any:
        """`value`, unless it is larger than any value a template may build."""
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise _OverBudget(f"a number larger than 2**{MAX_INT_BITS}")
        if self.size(value) > MAX_VALUE:
            raise _OverBudget(f"a value of more than {MAX_VALUE} characters or items")
        return value

    def expect_at_most(self, size: int, what: str) -> None:
        if size > MAX_VALUE:
            raise _OverBudget(f"{what} would make a value of more than {MAX_VALUE} characters or items")


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # compiled templates used outside `render`: still bounded
        budget = _Budget()
        _BUDGET.set(budget)
    return budget


def _emit(value: Any) -> str:
    """A piece of the message's output, counted against its budget (one call: every piece of
    every message goes through it)."""
    budget = _BUDGET.get() or _budget()
    text = str(value)
    budget.output += len(text)
    if budget.output > MAX_OUTPUT:
        raise _OverBudget(f"the message is longer than {MAX_OUTPUT} characters")
    return text


# ---------------------------------------------------------------- predicting sizes

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _ints(values: Any) -> list[int]:
    items = values if isinstance(values, (tuple, list)) else (values,)
    return [v for v in items if isinstance(v, int) and not isinstance(v, bool)]


def _check_percent(budget: _Budget, template: Any, args: Any) -> None:
    """`'%10s' % x`: no width or precision, written or passed with `*`, beyond MAX_VALUE."""
    if not isinstance(template, (str, bytes)):
        return
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    star = False
    for match in _PERCENT_SPEC.finditer(text):
        for part in match.groups():
            if part == "*":
                star = True
            elif part:
                budget.expect_at_most(int(part), "a width or precision")
    if star:
        for value in _ints(args):
            budget.expect_at_most(value, "a width or precision")


def _check_format(budget: _Budget, template: str, args: Any, kwargs: Any) -> None:
    """`'{:>10}'.format(x)`: the same, for str.format."""
    nested = False
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is None or not spec:
            continue
        nested = nested or "{" in spec
        for digits in re.findall(r"\d+", spec):
            budget.expect_at_most(int(digits), "a width or precision")
    if nested:
        for value in [*_ints(list(args)), *_ints(list(kwargs.values()))]:
            budget.expect_at_most(value, "a width or precision")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_binop(budget: _Budget, operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int) and count > 0:
                budget.expect_at_most(budget.size(seq) * count, "repeating")
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _OverBudget(f"a number larger than 2**{MAX_INT_BITS}")
    elif operator == "**":
        if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1 \
                and right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
            raise _OverBudget(f"a number larger than 2**{MAX_INT_BITS}")
    elif operator == "%":
        _check_percent(budget, left, right)


def _width_of(value: Any) -> int:
    return value if _is_int(value) else 0


# str and bytes methods that can make a value much larger than their inputs.
def _check_text_method(budget: _Budget, text: str | bytes, name: str, args: tuple, kwargs: dict) -> tuple:
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        budget.expect_at_most(max(len(text), _width_of(width)), f"'{name}'")
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        times = len(text) + 1 if not old else text.count(old)
        budget.expect_at_most(len(text) + times * len(new), "'replace'")
    elif name == "join" and args:
        items = list(budget.iterate(args[0])) if not isinstance(args[0], (list, tuple)) else args[0]
        total = sum(budget.size(item) for item in items) + len(text) * max(len(items) - 1, 0)
        budget.expect_at_most(total, "'join'")
        return (items, *args[1:])
    return args


# Methods a template may not call at all: they grow text by a table or a tab width.
BLOCKED_METHODS = frozenset({"translate", "maketrans", "expandtabs"})
MUTATING_METHODS = frozenset(name for _, names in _mutable_spec for name in names)
UNSAFE_ATTRIBUTES = frozenset(
    UNSAFE_FUNCTION_ATTRIBUTES | UNSAFE_METHOD_ATTRIBUTES | UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES | {"mro", "format_map"}
)


# ---------------------------------------------------------------- filters


def _wrap_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts as a call, refuses arguments that would blow up, checks its result."""
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    @wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.call()
        value, rest = (args[skip], args[skip + 1:]) if len(args) > skip else (None, ())
        if name in _WIDTH_FILTERS:
            for number in [*_ints(list(rest)), *_ints(list(kwargs.values()))]:
                budget.expect_at_most(number, f"'{name}' with {number}")
        if name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            per_line = len(width) if isinstance(width, str) else _width_of(width)
            budget.expect_at_most(len(value) + (value.count("\n") + 1) * per_line, "'indent'")
        elif name == "wordwrap" and isinstance(value, str):
            wrap = kwargs.get("wrapstring") or (rest[2] if len(rest) > 2 else None) or "\n"
            budget.expect_at_most(len(value) * (1 + len(str(wrap))), "'wordwrap'")
        elif name == "format":
            _check_percent(budget, value, kwargs or tuple(rest))
        elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
            _check_text_method(budget, value, "replace", (str(rest[0]), str(rest[1])), {})
        elif name == "join" and value is not None:
            separator = rest[0] if rest else kwargs.get("d", "")
            items = list(budget.iterate(value))
            _check_text_method(budget, str(separator), "join", (items,), {})
            args = (*args[:skip], items, *rest)
        elif name == "sum":
            start = kwargs.get("start", rest[1] if len(rest) > 1 else 0)
            if not isinstance(start, Number):
                raise _OverBudget("'sum' adds numbers only")
        elif name == "center" and isinstance(value, str):
            _check_text_method(budget, value, "center", tuple(rest), kwargs)
        return budget.check(func(*args, **kwargs))

    return bounded


_WIDTH_FILTERS = frozenset({"center", "indent", "truncate", "wordwrap", "batch", "slice", "tojson",
                            "urlize", "pprint", "round", "filesizeformat"})
# Nondeterministic (a workflow must replay the same message) or pure bulk.
_REMOVED_FILTERS = frozenset({"random"})
_REMOVED_GLOBALS = frozenset({"lipsum"})


# ---------------------------------------------------------------- compiling


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator without compile-time evaluation.

    Jinja folds constant expressions while compiling (`{{ 'x' * 10**9 }}` is computed right
    there); with `optimized=False` and this, compiling evaluates nothing.
    """

    def _output_child_to_const(self, node: Any, frame: Any, finalize: Any) -> str:
        if isinstance(node, jinja_nodes.TemplateData):
            return super()._output_child_to_const(node, frame, finalize)
        raise jinja_nodes.Impossible()


class _Tracking(TrackingCodeGenerator):
    """`jinja2.meta.find_undeclared_variables`'s generator, also without folding."""

    def __init__(self, environment: Any) -> None:
        CodeGenerator.__init__(self, environment, "<introspection>", "<introspection>", optimized=False)
        self.undeclared_identifiers: set[str] = set()

    _output_child_to_const = _CodeGenerator._output_child_to_const


_DICT_ATTRIBUTES = frozenset(dir(dict))  # what `getattr(some_dict, name)` can find
_ABSENT = object()


class _MessageEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox every template runs in: read-only data, every operation on the budget."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in BLOCKED_METHODS or attr == "format_map":
            return False
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `customer.name` on the context's plain dicts: Jinja tries the attribute first and takes
        # the key after an AttributeError; a dict has no attributes but its methods, so the key
        # is what it would find, without raising and catching an exception for every read.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            value = obj.get(attribute, _ABSENT)
            return self.undefined(obj=obj, name=attribute) if value is _ABSENT else value
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        _check_binop(budget, operator, left, right)
        return budget.check(self.binop_table[operator](left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        budget = _budget()
        budget.call()
        if isinstance(obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (budget.iterate(args[0]), *args[1:])
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, (str, bytes)):
            args = _check_text_method(budget, owner, getattr(obj, "__name__", ""), args, kwargs)
        return budget.check(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            budget = _budget()
            _check_format(budget, template, args, kwargs)
            return budget.check(wrapped(*args, **kwargs))

        return checked


# Chainable: a missing value renders empty instead of failing a send at run time;
# `lifecycle lint` is where an unknown name in a template is reported.
ENVIRONMENT = _MessageEnvironment(autoescape=False, undefined=ChainableUndefined, optimized=False)
for _name in _REMOVED_GLOBALS:
    ENVIRONMENT.globals.pop(_name, None)
ENVIRONMENT.filters = {
    name: _wrap_filter(name, func) for name, func in ENVIRONMENT.filters.items() if name not in _REMOVED_FILTERS
}
# Budget hooks the compiled code reaches as filters (a filter call bypasses the sandbox's `call`).
ENVIRONMENT.filters["lifecycle_emit"] = _emit
ENVIRONMENT.filters["lifecycle_loop"] = lambda iterable: _budget().iterate(iterable)
ENVIRONMENT.filters["lifecycle_value"] = lambda value: _budget().check(value)


def parse(text: str) -> jinja_nodes.Template:
    """The syntax tree of a template part; raises jinja2.TemplateSyntaxError. Evaluates nothing."""
    return ENVIRONMENT.parse(text)


def undeclared_names(tree: jinja_nodes.Template) -> set[str]:
    """Names a template reads from its context (`jinja2.meta.find_undeclared_variables`,
    without evaluating constant expressions on the way)."""
    generator = _Tracking(ENVIRONMENT)
    generator.visit(tree)
    return generator.undeclared_identifiers


def _hook(name: str, node: jinja_nodes.Expr) -> jinja_nodes.Filter:
    return jinja_nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Bound(NodeTransformer):
    """Route output, loops and built values through the budget hooks."""

    def visit_Output(self, node: jinja_nodes.Output) -> jinja_nodes.Output:
        self.generic_visit(node)
        node.nodes = [_hook("lifecycle_emit", child) for child in node.nodes]
        return node

    def visit_For(self, node: jinja_nodes.For) -> jinja_nodes.For:
        self.generic_visit(node)
        node.iter = _hook("lifecycle_loop", node.iter)
        return node

    def _value(self, node: jinja_nodes.Expr) -> jinja_nodes.Expr:
        self.generic_visit(node)
        return _hook("lifecycle_value", node)

    visit_Concat = visit_List = visit_Dict = _value

    def visit_Tuple(self, node: jinja_nodes.Tuple) -> jinja_nodes.Expr:
        return self._value(node) if node.ctx == "load" else node


def compile_part(text: str) -> Any:
    """A template part compiled for rendering; raises jinja2.TemplateError. Evaluates nothing."""
    return _compile(text)


@lru_cache(maxsize=1024)
def _compile(text: str) -> Any:
    tree = parse(text)
    # Every name it loads: what it reads from the context is among them (engine.context uses
    # this to copy only what a template reads).
    reads = frozenset(node.name for node in tree.find_all(jinja_nodes.Name) if node.ctx == "load")
    _Bound().visit(tree)
    tree.set_environment(ENVIRONMENT)
    template = ENVIRONMENT.from_string(tree)
    # Its globals as one plain dict: Jinja's `render` copies a ChainMap of them for every
    # message, which was a tenth of the simulator's time.
    template.lifecycle_globals = dict(template.globals)
    template.lifecycle_reads = reads
    return template


# ---------------------------------------------------------------- rendering


def split_subject(source: str) -> tuple[str, str]:
    """(subject template, body template) of a template file's text."""
    first, _, rest = source.partition("\n")
    if first.lower().startswith("subject:"):
        return first[len("subject:"):].strip(), rest.lstrip("\n")
    return "", source


def render(source: str, context: dict[str, Any], name: str = "template") -> tuple[str, str]:
    """Render a template file's text into (subject, body); raise only TemplateRenderError.

    `name` (the template's name) is what the error names.
    """
    subject, body = split_subject(source)
    token = _BUDGET.set(_Budget())
    try:
        return _render_part(subject, context, name, "subject"), _render_part(body, context, name, "body")
    finally:
        _BUDGET.reset(token)


@lru_cache(maxsize=1024)
def names_read(source: str) -> frozenset[str] | None:
    """The names a template file's text may read from its context (subject and body; loop and
    `set` names too: more is harmless); None when it does not compile (then the whole context
    is given, and rendering reports the error). Found when the part is compiled (at load)."""
    try:
        return frozenset().union(*(_compile(part).lifecycle_reads for part in split_subject(source)))
    except Exception:  # noqa: BLE001 - any failure: render it with everything, as before
        return None


def _render_part(text: str, context: dict[str, Any], name: str, part: str) -> str:
    try:
        return _render_compiled(_compile(text), context).strip()
    except TemplateRenderError:
        raise
    except _OverBudget as error:
        raise TemplateRenderError(name, f"{part}{_line(error.__traceback__)}: over budget: {error}") from None
    except Exception as error:  # noqa: BLE001 - any failure is one error type for the caller
        reason = str(error).splitlines()[0] if str(error) else ""
        raise TemplateRenderError(
            name, f"{part}{_line(error.__traceback__)}: {type(error).__name__}" + (f": {reason}" if reason else "")
        ) from None


def _render_compiled(template: Any, context: dict[str, Any]) -> str:
    """`template.render(context)`, without copying its globals for every call."""
    # What `template.new_context(..., shared=True)` makes, given the plain globals: Jinja's
    # would list the keys of its ChainMap of them for every message.
    shared = ENVIRONMENT.context_class(ENVIRONMENT, {**template.lifecycle_globals, **context}, template.name,
                                       template.blocks, globals=template.lifecycle_globals)
    try:
        return ENVIRONMENT.concat(template.root_render_func(shared))  # type: ignore[attr-defined]
    except Exception:
        ENVIRONMENT.handle_exception()  # re-raises with the template's own line numbers


def _line(traceback: TracebackType | None) -> str:
    """` line N` of the template where the error happened, when Jinja's traceback shows it."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return f" line {line}" if line else ""


# ---------------------------------------------------------------- load-time checks


def attribute_name(node: jinja_nodes.Node) -> str | None:
    """The name read by `x.name` or `x['name']` in a template's syntax tree, else None."""
    if isinstance(node, jinja_nodes.Getattr):
        return node.attr
    if isinstance(node, jinja_nodes.Getitem) and isinstance(node.arg, jinja_nodes.Const) \
            and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def unsafe_uses(tree: jinja_nodes.Template, text: str = "") -> list[tuple[int, int, str]]:
    """(line, column, message) for each sandbox violation visible in the syntax tree of `text`,
    so the author hears of it at load time rather than a customer's message failing later."""
    lines = text.split("\n")
    found: set[tuple[int, int, str]] = set()

    def at(node: jinja_nodes.Node, needle: str, message: str) -> None:
        line = node.lineno or 1
        column = lines[line - 1].find(needle) + 1 if line <= len(lines) else 0
        column += 1 if column and needle.startswith(".") else 0  # at the name, after the dot
        found.add((line, max(column, 1), message))

    for node in tree.find_all((jinja_nodes.Getattr, jinja_nodes.Getitem)):
        name = attribute_name(node)
        if name is None:
            continue
        if name.startswith("_"):
            at(node, name, f"'{name}' cannot be used in a template: names starting with '_' are internal")
        elif name in UNSAFE_ATTRIBUTES and isinstance(node, jinja_nodes.Getattr):
            at(node, name, f"'{name}' cannot be used in a template: it reaches outside the data")
    for call in tree.find_all(jinja_nodes.Call):
        callee = call.node
        if isinstance(callee, jinja_nodes.Getattr):
            if callee.attr in MUTATING_METHODS:
                at(call, f".{callee.attr}", f"'{callee.attr}(...)' would change data; a template only reads it")
            elif callee.attr in BLOCKED_METHODS:
                at(call, f".{callee.attr}", f"'{callee.attr}(...)' cannot be used in a template")
    for node in tree.find_all((jinja_nodes.Include, jinja_nodes.Import, jinja_nodes.FromImport,
                               jinja_nodes.Extends)):
        at(node, "{%", "a message template cannot include, import or extend another template")
    return sorted(found)

"""Types of everything an expression reads, checked by CEL's own checker when playbooks load.

Each lifecycle gets protobuf message types built from its field specs (`lc.Customer`,
`lc.Facts`, `lc.Event` with the payload of the events possible at that point, `lc.Vars` of a
stage playbook, `lc.Promise`), so `facts.open_tickets == 'none'` or `now + 1` is an error at
load, located at the operator, instead of a failure inside a workflow months later.

Every field is nullable (protobuf wrappers: see engine.types.PROTO_TYPES), so
`facts.last_satisfaction != null` checks. Numbers follow CEL: `int` and `double` (a
`number` field) do not mix; the messages below tell the author how to write it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

from engine.events import declared_events
from engine.expressions import function_declarations
from engine.model import BUILTIN_CUSTOMER_FIELDS, FieldSpec, Lifecycle
from engine.types import CEL_NAMES, PROTO_TYPES

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_F = descriptor_pb2.FieldDescriptorProto

# The checker's result type names (Type.name()) back to the playbook's type names.
KIND_OF_RESULT = {"INT": "int", "DOUBLE": "number", "STRING": "string", "BOOL": "bool",
                  "TIMESTAMP": "timestamp", "DURATION": "duration"}


@dataclass(frozen=True)
class TypeProblem:
    """A type error at (line, column) inside the expression, both 1-based."""

    line: int
    column: int
    message: str


@dataclass(frozen=True)
class Checked:
    """The outcome of checking one expression: its problems, or its result type."""

    problems: tuple[TypeProblem, ...]
    result: str | None  # the CEL type name (BOOL, INT, TIMESTAMP, DYN, lc.Facts, ...); None on error


def _well_known_files() -> list[descriptor_pb2.FileDescriptorProto]:
    files = []
    for module in (timestamp_pb2, duration_pb2, wrappers_pb2, struct_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        files.append(proto)
    return files


_WELL_KNOWN = _well_known_files()


def _add_message(file: descriptor_pb2.FileDescriptorProto, name: str, fields: dict[str, str]) -> None:
    """A message whose fields have the proto types `fields` maps them to (names CEL can read)."""
    message = file.message_type.add(name=name)
    number = 0
    for field, type_name in fields.items():
        if not _IDENTIFIER.match(field):
            continue
        number += 1
        message.field.add(name=field, number=number, label=_F.LABEL_OPTIONAL, type=_F.TYPE_MESSAGE,
                          type_name=type_name)


def _proto_fields(specs: dict[str, FieldSpec]) -> dict[str, str]:
    return {name: PROTO_TYPES[spec.type] for name, spec in specs.items()}


class LifecycleTypes:
    """The declarations of one lifecycle; one checker environment per (events, vars) seen."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.events = declared_events(lifecycle)
        self._envs: dict[tuple[Any, ...], cel.Env] = {}

    def _payload(self, events: frozenset[str] | None) -> dict[str, str]:
        """The payload of any of `events` (all declared ones when None); a field two events type
        differently is dyn."""
        names = [e for e in (events or ()) if e in self.events] or list(self.events)
        fields: dict[str, str] = {}
        for name in sorted(names):
            for field, spec in self.events[name].payload.items():
                proto = PROTO_TYPES[spec.type]
                fields[field] = proto if fields.get(field, proto) == proto else PROTO_TYPES["dyn"]
        return fields

    def env(self, events: frozenset[str] | None, var_kinds: dict[str, str] | None,
            task_fields: tuple[tuple[str, str], ...] | None = None) -> cel.Env:
        """The checker for an expression that may see `events` and read `var_kinds` (None: no vars);
        `task_fields` (name, kind) types `event.data.fields` in a task's on_done."""
        key = (events, tuple(sorted(var_kinds.items())) if var_kinds is not None else None, task_fields)
        env = self._envs.get(key)
        if env is None:
            env = self._envs[key] = self._new_env(events, var_kinds, task_fields)
        return env

    def _new_env(self, events: frozenset[str] | None, var_kinds: dict[str, str] | None,
                 task_fields: tuple[tuple[str, str], ...] | None = None) -> cel.Env:
        file = descriptor_pb2.FileDescriptorProto(name="lc.proto", package="lc", syntax="proto3")
        file.dependency.extend(proto.name for proto in _WELL_KNOWN)
        customer = {**BUILTIN_CUSTOMER_FIELDS, **self.lifecycle.customer}
        _add_message(file, "Customer", _proto_fields(customer))
        _add_message(file, "Facts", _proto_fields(self.lifecycle.facts))
        payload = self._payload(events)
        if task_fields is not None:  # --- task entities (issue 12): a completion's declared fields
            _add_message(file, "TaskFields", {name: PROTO_TYPES[kind] for name, kind in task_fields})
            payload["fields"] = ".lc.TaskFields"
        _add_message(file, "EventData", payload)
        _add_message(file, "Event", {"name": PROTO_TYPES["string"], "data": ".lc.EventData",
                                     "occurred_at": PROTO_TYPES["timestamp"]})
        value = PROTO_TYPES["dyn"]
        _add_message(file, "Promise", {"about": PROTO_TYPES["string"], "description": PROTO_TYPES["string"],
                                       "expected": value, "state": PROTO_TYPES["string"],
                                       "actual": value, "made_by": PROTO_TYPES["string"]})
        variables = {
            "customer": cel.Type("lc.Customer"),
            "facts": cel.Type("lc.Facts"),
            "event": cel.Type("lc.Event"),
            "promises": cel.Type.Map(cel.Type.STRING, cel.Type("lc.Promise")),
            "now": cel.Type.TIMESTAMP,
        }
        if var_kinds is not None:
            _add_message(file, "Vars", {name: PROTO_TYPES[kind] for name, kind in var_kinds.items()})
            variables["vars"] = cel.Type("lc.Vars")
        pool = descriptor_pool.DescriptorPool()
        for proto in (*_WELL_KNOWN, file):
            pool.Add(proto)
        return cel.NewEnv(descriptor_pool=pool, variables=variables, functions=function_declarations())

    def check(self, source: str, events: frozenset[str] | None,
              var_kinds: dict[str, str] | None, task_fields: tuple[tuple[str, str], ...] | None = None) -> Checked:
        """Type-check `source`; the problems come with a hint that says how to fix them."""
        try:
            expression = self.env(events, var_kinds, task_fields).compile(source)
        except RuntimeError as error:
            return Checked(tuple(_problems(str(error))), None)
        return Checked((), expression.return_type().name())


_CACHE: dict[str, LifecycleTypes] = {}
_LAST: list[tuple[Lifecycle, LifecycleTypes]] = []


def types_of(lifecycle: Lifecycle) -> LifecycleTypes:
    """The declarations of `lifecycle`, kept by content: a playbook edit reloads the lifecycle
    file too, and building the checker environments again would be most of a load's time."""
    for known, types in _LAST:
        if known is lifecycle:
            return types
    key = lifecycle.model_dump_json()
    types = _CACHE.get(key)
    if types is None:
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        types = _CACHE[key] = LifecycleTypes(lifecycle)
    _LAST[:] = [(lifecycle, types)]
    return types


# ---------------------------------------------------------------- messages for authors

_OPERATORS = {
    "_==_": "==", "_!=_": "!=", "_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">=", "_+_": "+",
    "_-_": "-", "_*_": "*", "_/_": "/", "_%_": "%", "_&&_": "&&", "_||_": "||", "!_": "!",
    "-_": "unary -", "_?_:_": "? :", "_[_]": "[]", "@in": "in",
}
MIXED_NUMBERS = ("int and double do not mix: write 9.0 for a double or 9 for an int, "
                 "or convert with double(...) or int(...)")
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
_ARITHMETIC = {"+", "-", "*", "/", "%"}
_OVERLOAD = re.compile(r"found no matching overload for '([^']+)' applied to '\((.*)\)'")


def type_name(text: str) -> str:
    """A checker type as an author knows it: wrapper(int) → int, google.protobuf.Timestamp → timestamp."""
    text = text.strip()
    wrapped = re.fullmatch(r"wrapper\((.*)\)", text)
    if wrapped:
        return type_name(wrapped.group(1))
    simple = {
        "google.protobuf.Timestamp": "timestamp", "google.protobuf.Duration": "duration",
        "google.protobuf.Struct": "map", "google.protobuf.ListValue": "list",
        "google.protobuf.Value": "dyn", "null_type": "null", "lc.Facts": "facts",
        "lc.Customer": "customer", "lc.Event": "event", "lc.EventData": "event data",
        "lc.Vars": "vars", "lc.Promise": "promise", "lc.TaskFields": "task fields",
    }
    if text in simple:
        return simple[text]
    if text.startswith("map(") or text.startswith("map<"):
        return "map"
    if text.startswith("list(") or text.startswith("list<"):
        return "list"
    return text.lower() if text.isupper() else text


def _split_types(text: str) -> list[str]:
    """'(a, map(string, dyn))' inside the parentheses → ['a', 'map(string, dyn)']."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "(<":
            depth += 1
        elif char in ")>":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [type_name(part) for part in parts]


def _hint(operator: str, types: list[str]) -> str:
    """How to fix an operator or function applied to the wrong types."""
    pair = set(types)
    if operator in _COMPARISONS | _ARITHMETIC and pair == {"int", "double"}:
        return MIXED_NUMBERS
    if operator in _COMPARISONS and len(types) == 2 and "string" in pair and pair & {"int", "double", "bool"}:
        # The field is usually on the left: make the literal on the right match it.
        left = types[0]
        literal = {"int": "0", "double": "0.0", "bool": "true", "string": "'text' in quotes"}[left]
        convert = {"int": "int(...)", "double": "double(...)", "bool": "a comparison",
                   "string": "string(...)"}[left]
        return f"compare {_a(left)} with {_a(left)}: write {literal}, or {convert}"
    if operator in _COMPARISONS and len(types) == 2 and "timestamp" in pair and "string" in pair:
        return "compare a timestamp with a timestamp: write timestamp('2026-03-10T00:00:00Z')"
    if operator in _COMPARISONS and len(types) == 2 and "duration" in pair and pair & {"int", "double", "string"}:
        return "compare a duration with a duration: write days(3), hours(12) or duration('36h')"
    if operator in ("+", "-") and "timestamp" in pair and pair & {"int", "double", "string"}:
        return "add or subtract a duration: days(n), hours(n), or add_months(t, n) for calendar months"
    if operator in ("+", "-") and "duration" in pair and pair & {"int", "double"}:
        return "add or subtract a duration: days(n), hours(n) or duration('36h')"
    if operator in ("&&", "||", "!", "? :") and pair - {"bool", "dyn"}:
        return "a condition must be a bool: compare the value, e.g. facts.open_tickets > 0"
    if operator in ("days", "hours") and pair & {"double", "string"}:
        return f"{operator}() takes an int: write {operator}(int(...))"
    if operator in ("min", "max") and pair == {"int", "double"}:
        return "int and double do not mix: write 9.0 for a double or 9 for an int, or convert with double(...)"
    if operator in ("add_months", "add_years"):
        return f"write {operator}(timestamp, int), e.g. {operator}(now, 1)"
    if operator in _COMPARISONS and len(types) == 2 and len(pair) == 2:
        return f"compare {_a(types[0])} with {_a(types[0])}"
    return ""


def _a(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def describe(message: str) -> str:
    """The checker's message in an author's words, with a hint when the fix is known."""
    match = _OVERLOAD.search(message)
    if match:
        operator = _OPERATORS.get(match.group(1), match.group(1))
        types = _split_types(match.group(2))
        if operator in _OPERATORS.values() and operator != "? :" and len(types) == 2:
            text = f"'{operator}' cannot take {types[0]} and {types[1]}"
        elif operator in _OPERATORS.values() and len(types) == 1:
            text = f"'{operator.replace('unary ', '')}' cannot take {_a(types[0])}"
        elif operator == "? :":
            text = f"the two branches of '? :' have different types ({types[1]} and {types[2]})" \
                if len(types) == 3 and types[0] in ("bool", "dyn") else \
                f"the condition of '? :' is {_a(types[0])}, not a bool"
        else:
            text = f"{operator}() cannot take ({', '.join(types)})"
        hint = _hint(operator, types)
        if operator == "? :" and len(types) == 3 and types[0] in ("bool", "dyn"):
            hint = "give both branches the same type"
        return f"{text}: {hint}" if hint else text
    if "cannot be the operand of a select operation" in message:
        return ""  # follows an error already reported on the operand
    undefined = re.search(r"undefined field '([^']+)' not found in struct '([^']+)'", message)
    if undefined:
        return f"{type_name(undefined.group(2))} has no field '{undefined.group(1)}'"
    undeclared = re.search(r"undeclared reference to '([^']+)'", message)
    if undeclared:
        return f"unknown name '{undeclared.group(1)}'"
    return message


def _problems(text: str) -> list[TypeProblem]:
    problems = []
    for line in text.splitlines():
        match = _ERROR.search(line)
        if match:
            message = describe(match.group(3).replace(" [INVALID_ARGUMENT]", ""))
            line, column = int(match.group(1)), int(match.group(2))
            if line > 100_000 or column < 1:  # the checker gives no position for some errors
                line, column = 1, 1
            if message:
                problems.append(TypeProblem(line, column, message))
    if not problems:
        problems.append(TypeProblem(1, 1, text.splitlines()[0] if text else "type error"))
    return problems


def expect(checked: Checked, kind: str, what: str) -> str | None:
    """Why an expression of `checked`'s type cannot be `what` (which needs `kind`); None if it can."""
    result = checked.result
    if result is None or result in ("DYN", "NULL") or kind == "dyn":
        return None
    wanted = CEL_NAMES[kind]
    got = type_name(result)
    if got == wanted or (kind in ("list", "map") and got == kind):
        return None
    hint = ""
    if {got, wanted} == {"int", "double"}:
        hint = ": " + MIXED_NUMBERS
    elif wanted == "timestamp" and got == "string":
        hint = ": write timestamp('2026-03-10T00:00:00Z'), or read a date or timestamp field"
    elif wanted == "timestamp" and got == "duration":
        hint = ": add the duration to a timestamp, e.g. now + days(3)"
    elif wanted == "duration" and got in ("int", "double"):
        hint = ": write days(n) or hours(n)"
    elif wanted == "bool" and got == "string":
        hint = ": write true or false, without quotes inside the expression"
    elif wanted == "bool":
        hint = ": compare the value, e.g. facts.open_tickets > 0"
    return f"{what} must be {_a(wanted)}, but this expression is {_a(got)}{hint}"

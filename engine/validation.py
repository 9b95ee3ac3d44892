"""Pydantic's errors in an author's words, each placed at the YAML node it is about.

pydantic reports a `loc` such as ('steps', 0, 'wait_for', 'timout'); walking it alongside
the data and the model types gives the node (skipping the tag segment of a discriminated
union) and what to say: the step kind, the close field names, the expected type.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Union

import pydantic

from engine.errors import PlaybookError, describe_value, suggest
from engine.model import Expression, Lifecycle
from engine.steps import STEP_KINDS, AnyStep, Step
from engine.yamlsource import DataPath, Document


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
    # The step kinds name `AnyStep` before engine.steps builds it from them (engine.steps).
    return typing.get_type_hints(model, localns={"AnyStep": AnyStep}, include_extras=True)


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
    return typing.get_origin(tp) in (Union, types.UnionType)


def _field_for(model: type, segment: Any) -> str | None:
    """The Python name of the field a YAML key (its alias, if it has one) stands for."""
    for name, info in model.model_fields.items():
        if segment == (info.alias or name):
            return name
    return None


def _walk(data: Any, model: type, loc: tuple[Any, ...]) -> _Where:
    """Follow a pydantic `loc` through the data and the model types at the same time."""
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
            # A missing key (or a union member label under a scalar): stay at the mapping.
            where.member = loc[index + 1 :]
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
        "ScheduleSpec": f"schedule '{name}'",
        "SplitVariant": "split branch",
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
        kinds = list(STEP_KINDS)
        hint = suggest(str(tag), kinds) or f" (expected one of: {', '.join(kinds)})"
        if isinstance(doc_value(doc, where.path), dict) and "kind" in doc_value(doc, where.path):
            where.path = (*where.path, "kind")
        return f"unknown step kind '{tag}'{hint}", False
    if kind == "union_tag_not_found":
        kinds = ", ".join(STEP_KINDS)
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

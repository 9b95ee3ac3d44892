"""engine.shortcut answers simple expressions in Python: it must give exactly what the CEL
runtime gives, or leave the expression to the runtime. Differential: every answer it gives
for a grid of expressions and values is compared with the runtime's own."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from cel_expr_python import cel

from engine.expressions import ExpressionError, compile_expression, evaluate
from engine.loader import load_project
from engine.references import analyse
from engine.shortcut import UNSURE, shortcut
from engine.types import to_cel
from engine.walk import walk_steps

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
VALUES = [None, True, False, 0, 1, -7, 2**53, 2**53 + 1, 2**63 - 1, 1.0, 0.5, 9007199254740992.0, -0.0, float("nan"), "", "a", "b", "é",
          T0, T0 + timedelta(days=1), datetime(2024, 3, 1, 14, tzinfo=timezone(timedelta(hours=2))),
          timedelta(days=2), [1], {"a": 1}]

EXPRESSIONS = [
    "facts.x", "facts.y", "facts.missing", "facts.x.y", "has(facts.x)", "has(facts.missing)", "vars.x",
    "true", "false", "null", "0", "-3", "'text'", "1.5",
    "facts.x == null", "facts.x != null", "null == facts.x", "facts.x == facts.y", "facts.x != facts.y",
    "facts.x < facts.y", "facts.x <= facts.y", "facts.x > facts.y", "facts.x >= facts.y",
    "facts.x == 1", "facts.x == 'a'", "facts.x == true", "facts.x < 1", "facts.x >= 0.5",
    "!facts.x", "facts.x && facts.y", "facts.x || facts.y", "!facts.x && facts.y != null",
    "facts.x == null || facts.x < facts.y", "facts.x != null && facts.x >= facts.y",
    "facts.x ? facts.y : 0", "facts.x == null ? 'none' : 'some'", "now", "now < facts.x",
    "facts.x + 1", "days(1)", "size(facts.x) > 0", "facts.x in [1, 2]",
]


def runtime(source: str, names: dict) -> tuple[str, object]:
    """What the CEL runtime alone gives: ('ok', value) or ('error', None)."""
    try:
        result = compile_expression(source).eval(data=names)
    except (RuntimeError, TypeError, ValueError, OverflowError):
        return "error", None
    value = result.plain_value()
    if type(value) is str and result.type() == cel.Type.ERROR:
        return "error", None
    return "ok", value


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b and (not isinstance(a, datetime) or a.utcoffset() == b.utcoffset())


def test_every_answer_of_the_shortcut_is_the_runtimes():
    answered = 0
    for x, y in itertools.product(VALUES, repeat=2):
        names = {"facts": {"x": to_cel(x), "y": to_cel(y)}, "now": T0}
        for source in EXPRESSIONS:
            quick = shortcut(source)
            if quick is None:
                continue
            value = quick(names)
            if value is UNSURE:
                continue
            answered += 1
            status, expected = runtime(source, names)
            assert status == "ok", f"{source} with x={x!r}, y={y!r}: the runtime fails, the shortcut gave {value!r}"
            assert same(value, expected), f"{source} with x={x!r}, y={y!r}: {value!r} != runtime {expected!r}"
    assert answered > 5000  # it does answer the simple cases


@pytest.mark.parametrize("source", ["facts.x + 1", "days(1)", "size(facts.x) > 0", "facts.x in [1, 2]",
                                    "[1].all(v, v > 0)", "facts.x.startsWith('a')"])
def test_functions_arithmetic_and_macros_are_left_to_the_runtime(source):
    assert shortcut(source) is None


@pytest.mark.parametrize("source, names", [
    ("facts.x <= 1", {"facts": {"x": None}}),  # null by order: the runtime's error, with its hint
    ("facts.missing", {"facts": {}}),
    ("event.data.score", {"event": {"name": "", "data": {}}}),
    ("facts.x && true", {"facts": {"x": 1}}),
])
def test_what_fails_in_the_runtime_still_fails_with_its_message(source, names):
    with pytest.raises(ExpressionError) as caught:
        evaluate(source, names)
    assert source in str(caught.value)


def test_the_bundled_lifecycles_simple_conditions_take_the_shortcut():
    project = load_project("playbooks/lifecycle.yaml")
    sources = [t.when for t in project.lifecycle.transitions if t.when]
    for stage in project.lifecycle.stages:
        playbook = project.bundle(stage).playbook
        if playbook is not None:
            sources += [step.when for step, _ in walk_steps(playbook.steps) if getattr(step, "when", None)]
    assert sources and all(analyse(source) for source in sources)
    taken = [source for source in sources if shortcut(source) is not None]
    assert len(taken) >= len(sources) // 2, (taken, sources)

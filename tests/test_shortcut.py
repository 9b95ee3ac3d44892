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
VALUES = [None, True, False, 0, 1, -7, 3650000, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 1.0, 0.5,
          9007199254740992.0, -0.0, float("nan"), "", "a", "b", "é", "Europe/Berlin", "Mars/Olympus",
          T0, T0 + timedelta(days=1), datetime(2024, 3, 1, 14, tzinfo=timezone(timedelta(hours=2))),
          datetime(9999, 12, 31, 23, tzinfo=timezone.utc), datetime(1, 1, 1, tzinfo=timezone.utc),
          timedelta(days=2), timedelta(microseconds=-1), timedelta(days=3_000_000), [1], {"a": 1}, [], {}]

EXPRESSIONS = [
    "facts.x", "facts.y", "facts.missing", "facts.x.y", "has(facts.x)", "has(facts.missing)", "vars.x",
    "true", "false", "null", "0", "-3", "'text'", "1.5",
    "facts.x == null", "facts.x != null", "null == facts.x", "facts.x == facts.y", "facts.x != facts.y",
    "facts.x < facts.y", "facts.x <= facts.y", "facts.x > facts.y", "facts.x >= facts.y",
    "facts.x == 1", "facts.x == 'a'", "facts.x == true", "facts.x < 1", "facts.x >= 0.5",
    "!facts.x", "facts.x && facts.y", "facts.x || facts.y", "!facts.x && facts.y != null",
    "facts.x == null || facts.x < facts.y", "facts.x != null && facts.x >= facts.y",
    "facts.x ? facts.y : 0", "facts.x == null ? 'none' : 'some'", "now", "now < facts.x",
    "facts.x + 1", "facts.x - facts.y", "facts.x + facts.y", "1 - facts.x", "double(facts.x)",
    "double(facts.x) >= double(facts.y)", "days(1)", "days(facts.x)", "hours(facts.x)", "now + days(facts.x)",
    "facts.x + days(1)", "facts.x - hours(2)", "facts.x + facts.y < now", "now - facts.y",
    "next_local(facts.x, '09:00', 'Europe/Berlin')", "at_local(facts.x, '17:30', 'America/New_York')",
    "next_local(facts.x, '09:00', facts.y)", "add_months(facts.x, 1)", "add_business_days(facts.x, 2, 'US')",
    "is_business_day(facts.x, 'DE')", "min(facts.x, facts.y)", "max(facts.x, facts.y)",
    "size(facts.x) > 0", "facts.x in [1, 2]",
    "facts.x.all(k, k != 'a')", "facts.x.exists(k, k == 'a')", "facts.x.all(k, facts.x[k] > 0)",
    "facts.x.exists(v, v == facts.y)", "facts.x.all(v, v != null && v >= facts.y)", "facts.x['a']", "facts.x[0]",
    "facts.x.all(k, facts.x.exists(j, j == k))",
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


@pytest.mark.parametrize("source", ["size(facts.x) > 0", "facts.x in [1, 2]", "facts.x * 2", "int(facts.x)",
                                    "[1].all(v, v > 0)", "facts.x.startsWith('a')", "timestamp('2024-01-01T00:00:00Z')"])
def test_other_functions_operators_and_macros_are_left_to_the_runtime(source):
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


# ---------------------------------------------------------------- readers: the names, field by field

def _bundled_sources(project) -> list[str]:
    """Every expression of the bundled lifecycle and its playbooks."""
    lifecycle = project.lifecycle
    sources = [t.when for t in lifecycle.transitions if t.when]
    sources += [source for spec in lifecycle.events.values() for source in spec.updates.values()]
    for stage in lifecycle.stages:
        playbook = project.bundle(stage).playbook
        for step, _ in walk_steps(playbook.steps if playbook else []):
            for name in ("when", "value", "expected", "actual", "until"):
                if isinstance(getattr(step, name, None), str):
                    sources.append(getattr(step, name))
            sources += [branch.when for branch in getattr(step, "elif_", [])]
    return sources


def outcome(compute) -> tuple[str, object]:
    try:
        return "ok", compute()
    except ExpressionError as error:
        return "error", str(error)


def test_a_reader_gives_what_the_names_give():
    """evaluate_in (fields read straight from the state) against evaluate over expression_names,
    for every bundled expression and more, over states where fields are set, null or missing."""
    from engine.context import Scope, expression_names
    from engine.expressions import evaluate_in
    from engine.state import Event, LifecycleState, PromiseEntry
    from engine.shortcut import reader

    project = load_project("playbooks/lifecycle.yaml")
    lifecycle = project.lifecycle
    sources = _bundled_sources(project) + [
        "has(facts.open_tickets)", "has(promises.price)", "has(promises.nothing)", "has(vars.score)",
        "has(event.data.order_id)", "customer.timezone == 'America/New_York'", "customer.segment == null",
        "event.name == 'order.placed'", "event.data.missing == null", "event.data.price > 1000.0",
        "promises.price.expected", "promises.nothing.state == 'open'", "vars.score != null && vars.score > 5",
        "vars.missing", "facts.referral_requested_at == null || now - facts.referral_requested_at > days(1)",
        "event.occurred_at < now", "now", "facts", "promises.price.state", "facts.delivered_at",
        "facts.order_placed_at < facts.surveyed_at", "vars.called_at", "customer.segment",
        "promises.all(n, promises[n].state == 'open')", "promises.exists(n, promises[n].expected > 1000.0)",
        "promises.exists(n, n == 'price') && facts.open_tickets == 2", "vars.grace",
        "now + vars.grace > facts.order_placed_at", "facts.surveyed_at - facts.order_placed_at > vars.grace",
    ]
    price = PromiseEntry(name="price", about="price", expected=1200.0, made_by="sales_rep", made_at=T0,
                         stage="set_expectations")
    events = [None, Event(customer_id="c1", name="order.placed", occurred_at=T0,
                          data={"order_id": "A-1", "promised_delivery": "2024-03-10", "price": 1200}),
              Event(customer_id="c1", name="order.delivered", occurred_at=T0,
                    data={"order_id": "A-1", "delivered_at": "2024-03-12", "extra": 1})]
    facts = [{}, {"open_tickets": 2, "current_order_id": "A-1", "delivered_at": "2024-03-12",
                  "order_placed_at": T0.isoformat(), "surveyed_at": "2024-03-20T10:00:00+00:00",
                  "last_satisfaction": 9, "referral_requested_at": None, "warranty_ends": "2026-03-12"},
             {"open_tickets": 0, "delivered_at": "2024-03-12T23:30:00-05:00", "order_placed_at": "2024-03-01",
              "surveyed_at": "2024-03-20T10:00:00+02:00", "referral_requested_at": "2024-03-01T12:00:00Z"}]
    answered = 0
    for event, fact_values, promises, with_vars, customer in itertools.product(
            events, facts, [{}, {"price": price}], [True, False],
            [{"id": "c1"}, {"id": "c1", "timezone": "Europe/Berlin", "segment": "enterprise", "consent": {}}]):
        state = LifecycleState(lifecycle_id="lifecycle/c1", customer=customer, stage="set_expectations",
                               stage_since=T0, facts=fact_values, promises=promises,
                               vars={"score": 7, "recovery_call": False, "large_order_value": 1000,
                                     "called_at": T0.isoformat(), "grace": "2d"})
        var_kinds = {"score": "int", "called_at": "timestamp", "grace": "duration"}
        for source in sources:
            scope = Scope(lifecycle, state, event, T0, source, with_vars=with_vars, var_kinds=var_kinds)
            names = expression_names(lifecycle, state, event, T0, with_vars=with_vars, source=source,
                                     var_kinds=var_kinds)
            fast, slow = outcome(lambda: evaluate_in(source, scope)), outcome(lambda: evaluate(source, names))
            assert fast[0] == slow[0] and same(fast[1], slow[1]) or fast == slow, (source, fast, slow)
            quick = reader(source)
            answered += quick is not None and quick(scope) is not UNSURE
    assert answered > 500  # the readers do answer


def test_a_readers_view_of_a_value_reads_as_the_runtimes():
    """read_typed keeps times and durations as Python values: through the shortcut's `plain`
    they read as their protobuf form does, or unsure (then the names decide)."""
    from engine.shortcut import plain
    from engine.types import KINDS, cel_typed, read_typed

    stored = [None, 0, 3, 2.5, True, "a", "2024-03-12", "2024-03-20T10:00:00+00:00", "2024-03-20T10:00:00+02:00",
              "2d", "P14D", T0, timedelta(hours=5), [T0, 1], {"a": T0}, "not a time"]
    for kind, value in itertools.product([*KINDS, "dyn", None], stored):
        read = plain(read_typed(value, kind))
        assert read is UNSURE or same(read, plain(cel_typed(value, kind))), (kind, value)

"""Types: expressions are type-checked when playbooks load, and values keep their types in state.

Pure tests, no Temporal: each mistake is written into a copy of the fixture lifecycle and the
loader must report it at the right line and column, with a message that says the fix.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.context import expression_names
from engine.expressions import ExpressionError, add_months, add_years, evaluate
from engine.loader import load_project
from engine.state import Event, LifecycleState, PromiseEntry
from workspace import Workspace

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def located(text: str, expression: str, marker: str | None) -> str:
    """'line:column' of `marker` inside `expression` (its start when None) within `text`."""
    start = text.index(expression)
    offset = start + (expression.index(marker) if marker else 0)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"


# (steps with {e} where the expression goes, the expression, where the error points (None: at
#  the start), a fragment of the message, vars of the playbook)
CONDITION = "- kind: if\n  when: {e}\n  then: [{{kind: end}}]\n"
UNTIL = "- kind: wait\n  until: {e}\n"
SET_FACT = "- kind: set\n  fact: {fact}\n  value: {e}\n"
SET_VAR = "- kind: set\n  var: {var}\n  value: {e}\n"
PROMISE = ("- kind: promise\n  promise: p\n  about: {about}\n  expected: {e}\n"
           "  made_by: account_manager\n")
ELIF = "- kind: if\n  when: 'true'\n  then: [{{kind: end}}]\n  elif:\n    - when: {e}\n      then: [{{kind: end}}]\n"

STEP_MISTAKES = [
    (CONDITION, "facts.open_tickets == 'none'", "==", "compare an int with an int: write 0, or int(...)"),
    (CONDITION, "facts.open_tickets > 2.5", ">", "int and double do not mix"),
    (CONDITION, "event.data.price >= 100", ">=", "'>=' cannot take double and int: int and double do not mix"),
    (CONDITION, "event.data.price == 1200", "==", "write 9.0 for a double"),
    (CONDITION, "facts.open_tickets", None, "a condition must be a bool, but this expression is an int"),
    (CONDITION, "event.data.order_id", None, "a condition must be a bool, but this expression is a string"),
    (CONDITION, "now + 1 > now", "+", "'+' cannot take timestamp and int: add or subtract a duration: days(n)"),
    (CONDITION, "now > '2026-01-01'", ">", "write timestamp('2026-03-10T00:00:00Z')"),
    (CONDITION, "now - event.data.promised_delivery > 3", ">",
     "compare a duration with a duration: write days(3)"),
    (CONDITION, "event.data.order_id + 1 == 'x'", "+", "'+' cannot take string and int"),
    (CONDITION, "facts.open_tickets && true", "&&", "a condition must be a bool"),
    (CONDITION, "!facts.open_tickets", "!", "'!' cannot take an int"),
    (CONDITION, "days(vars.reminder_after) > 1", ">", "compare a duration with a duration"),
    (CONDITION, "days(2.5) < days(3)", "(", "days() takes an int: write days(int(...))"),
    (CONDITION, "size(event.data.order_id) == 'x'", "==", "compare an int with an int"),
    (CONDITION, "customer.segment == 1", "==", "compare a string with a string: write 'text' in quotes"),
    (CONDITION, "event.data.promised_delivery < now + 3", "+", "add or subtract a duration"),
    (CONDITION, "max(facts.open_tickets, 2.0) > 1", "(", "max() cannot take (int, double)"),
    (CONDITION, "add_months(now, 1.5) > now", "(", "write add_months(timestamp, int)"),
    (CONDITION, "facts.last_satisfaction == true", "==", "compare an int with an int"),
    (CONDITION, "vars.reminder_after == 'two'", "==", "compare an int with an int"),
    (CONDITION, "(facts.open_tickets > 0 ? 1 : 'a') == 1", "?",
     "the two branches of '? :' have different types (int and string)"),
    (CONDITION, "customer.warranty_ends + days(1) > 3", ">", "'>' cannot take timestamp and int"),
    (UNTIL, "days(3)", None, "'until' must be a timestamp, but this expression is a duration: add the duration"),
    (UNTIL, "vars.reminder_after", None, "'until' must be a timestamp, but this expression is an int"),
    (UNTIL, "event.data.order_id", None, "'until' must be a timestamp, but this expression is a string: "
                                         "write timestamp("),
    (ELIF, "facts.open_tickets + 1", None, "a condition must be a bool, but this expression is an int"),
    (SET_FACT.replace("{fact}", "open_tickets"), "event.data.order_id", None,
     "fact 'open_tickets' must be an int, but this expression is a string"),
    (SET_FACT.replace("{fact}", "open_tickets"), "facts.open_tickets + 1.0", "+", "int and double do not mix"),
    (SET_FACT.replace("{fact}", "last_satisfaction"), "now", None,
     "fact 'last_satisfaction' must be an int, but this expression is a timestamp"),
    (SET_VAR.replace("{var}", "reminder_after"), "event.data.promised_delivery", None,
     "var 'reminder_after' must be an int, but this expression is a timestamp"),
    (SET_VAR.replace("{var}", "called_at"), "days(1)", None,
     "var 'called_at' must be a timestamp, but this expression is a duration"),
    (SET_VAR.replace("{var}", "reminder_after"), "2.5", None, "int and double do not mix"),
    (PROMISE.replace("{about}", "delivery_date"), "event.data.price", None,
     "what a delivery_date promise expects must be a timestamp, but this expression is a double"),
    (PROMISE.replace("{about}", "price"), "event.data.order_id", None,
     "what a price promise expects must be a double, but this expression is a string"),
    (PROMISE.replace("{about}", "scope"), "event.data.price", None,
     "what a scope promise expects must be a string, but this expression is a double"),
]
VARS = "reminder_after: 2\ncalled_at: {type: timestamp}\n"


@pytest.mark.parametrize(("step", "expression", "marker", "fragment"), STEP_MISTAKES,
                         ids=[case[1] for case in STEP_MISTAKES])
def test_a_type_mistake_in_a_step_is_located_and_explained(ws: Workspace, step: str, expression: str,
                                                           marker: str | None, fragment: str) -> None:
    quoted = f'"{expression}"'
    ws.sale(step.format(e=quoted), vars=VARS)
    errors = ws.errors()
    text = (ws.root / "p" / "sale.yaml").read_text()
    where = located(text, expression, marker)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"p/sale.yaml:{where}: "), errors
    assert fragment in errors[0], errors


LIFECYCLE_MISTAKES = [
    ("open_tickets: facts.open_tickets + 1", "open_tickets: facts.open_tickets + 1.0", "+",
     "'+' cannot take int and double"),
    ("last_satisfaction: event.data.score", "last_satisfaction: event.data.score > 5", None,
     "fact 'last_satisfaction' must be an int, but this expression is a bool"),
    ("when: facts.open_tickets >= 3 && event.data.ticket_id != ''", "when: facts.open_tickets", None,
     "a transition's 'when' must be a bool, but this expression is an int"),
    ("when: facts.open_tickets >= 3 && event.data.ticket_id != ''",
     "when: facts.open_tickets >= 3 && event.data.ticket_id != 0", "!=",
     "compare a string with a string"),
]


@pytest.mark.parametrize(("old", "new", "marker", "fragment"), LIFECYCLE_MISTAKES,
                         ids=[case[1] for case in LIFECYCLE_MISTAKES])
def test_a_type_mistake_in_the_lifecycle_file_is_located_and_explained(
        ws: Workspace, old: str, new: str, marker: str | None, fragment: str) -> None:
    ws.lifecycle(old, new)
    errors = ws.errors()
    text = (ws.root / "p" / "lifecycle.yaml").read_text()
    expression = new.split(": ", 1)[1]
    where = located(text, new, None)
    line, column = map(int, where.split(":"))
    column += len(new) - len(expression) + (expression.index(marker) if marker else 0)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"p/lifecycle.yaml:{line}:{column}: "), errors
    assert fragment in errors[0], errors


def test_the_number_of_mistakes_covered() -> None:
    assert len(STEP_MISTAKES) + len(LIFECYCLE_MISTAKES) >= 30


def test_an_unknown_var_type_is_refused(ws: Workspace) -> None:
    ws.sale("- kind: end\n", vars="due: {type: timestamps}\n")
    assert any("var 'due': unknown type 'timestamps'" in error for error in ws.errors())


# ---------------------------------------------------------------- what does check


WELL_TYPED = [
    (CONDITION, "facts.last_satisfaction != null && facts.last_satisfaction >= 9"),
    (CONDITION, "event.data.price >= 100.0 && event.data.price < double(vars.reminder_after) * 1000.0"),
    (CONDITION, "int(event.data.price) >= 100"),
    (CONDITION, "now - event.data.promised_delivery > days(3)"),
    (CONDITION, "min(now, event.data.promised_delivery) < add_months(now, 1)"),
    (CONDITION, "max(facts.open_tickets, 1) == 1 && min(1.5, 2.0) == 1.5"),
    (CONDITION, "customer.consent.email == true"),
    (UNTIL, "add_years(event.data.promised_delivery, 1) - hours(12)"),
    (SET_VAR.replace("{var}", "called_at"), "now"),
    (SET_VAR.replace("{var}", "fresh"), "event.data.order_id"),
]


@pytest.mark.parametrize(("step", "expression"), WELL_TYPED, ids=[case[1] for case in WELL_TYPED])
def test_well_typed_expressions_load(ws: Workspace, step: str, expression: str) -> None:
    ws.sale(step.format(e=f'"{expression}"') + "- kind: end\n", vars=VARS)
    ws.load()


def test_a_var_only_a_set_step_gives_takes_the_type_of_its_first_value(ws: Workspace) -> None:
    ws.sale(SET_VAR.replace("{var}", "seen").format(e="event.data.promised_delivery")
            + SET_VAR.replace("{var}", "seen").format(e="'1'"), vars=VARS)
    [error] = ws.errors()
    assert "var 'seen' must be a timestamp, but this expression is an int" in error
    ws.sale(SET_VAR.replace("{var}", "seen").format(e="event.data.promised_delivery") + "- kind: end\n")
    project = ws.load()
    assert project.playbooks["sale"].var_kinds()["seen"] == "timestamp"


# ---------------------------------------------------------------- values keep their types


def _state(**fields) -> LifecycleState:
    fields.setdefault("customer", {"id": "c1"})
    return LifecycleState(lifecycle_id="lifecycle/c1", stage="sale", stage_since=NOW, **fields)


def _round_trip(state: LifecycleState) -> LifecycleState:
    return LifecycleState.model_validate_json(state.model_dump_json())


def test_timestamps_and_durations_survive_the_state_json(ws: Workspace) -> None:
    ws.sale(SET_VAR.replace("{var}", "called_at").format(e="now") + "- kind: end\n",
            vars=VARS + "grace: {type: duration, initial: 2d}\n")
    project = ws.load()
    lifecycle, playbook = project.lifecycle, project.playbooks["sale"]
    state = _state(facts={"open_tickets": 2}, vars={"called_at": NOW.isoformat(), "grace": "2d",
                                                     "reminder_after": 2})
    names = expression_names(lifecycle, _round_trip(state), None, NOW, var_kinds=playbook.var_kinds())
    assert evaluate("vars.called_at + vars.grace", names) == NOW + timedelta(days=2)
    assert evaluate("vars.called_at", names) == NOW
    assert evaluate("vars.grace", names) == timedelta(days=2)
    assert evaluate("facts.open_tickets + 1", names) == 3


def test_a_date_fact_and_a_payload_date_come_back_as_timestamps(ws: Workspace) -> None:
    project = ws.load()
    event = Event(customer_id="c1", name="order.placed", occurred_at=NOW,
                  data={"order_id": "A1", "promised_delivery": "2026-03-10", "price": 1200})
    state = _round_trip(_state(customer={"id": "c1", "warranty_ends": "2028-03-01"}, stage_event=event))
    names = expression_names(project.lifecycle, state, state.stage_event, NOW)
    assert evaluate("event.data.promised_delivery", names) == datetime(2026, 3, 10, tzinfo=timezone.utc)
    assert evaluate("customer.warranty_ends - event.data.promised_delivery", names) == timedelta(days=722)
    assert evaluate("event.data.price", names) == 1200.0  # a number field is a double
    assert evaluate("event.occurred_at", names) == NOW


def test_a_promise_keeps_the_type_of_what_it_is_about(ws: Workspace) -> None:
    project = ws.load()
    entry = PromiseEntry(name="delivery_date", about="delivery_date", expected="2026-03-10T00:00:00+00:00",
                         made_by="account_manager", made_at=NOW, stage="sale", actual="2026-03-12")
    state = _round_trip(_state(promises={"delivery_date": entry}))
    names = expression_names(project.lifecycle, state, None, NOW)
    assert evaluate("promises.delivery_date.actual - promises.delivery_date.expected", names) == timedelta(days=2)


# ---------------------------------------------------------------- the engine's functions


@pytest.mark.parametrize(("moment", "months", "expected"), [
    (datetime(2026, 1, 31, 9, tzinfo=timezone.utc), 1, datetime(2026, 2, 28, 9, tzinfo=timezone.utc)),
    (datetime(2028, 1, 31, tzinfo=timezone.utc), 1, datetime(2028, 2, 29, tzinfo=timezone.utc)),
    (datetime(2026, 11, 15, tzinfo=timezone.utc), 3, datetime(2027, 2, 15, tzinfo=timezone.utc)),
    (datetime(2026, 3, 31, tzinfo=timezone.utc), -1, datetime(2026, 2, 28, tzinfo=timezone.utc)),
    (datetime(2026, 5, 10, tzinfo=timezone.utc), 0, datetime(2026, 5, 10, tzinfo=timezone.utc)),
])
def test_add_months_moves_by_calendar_months_without_drift(moment, months, expected) -> None:
    assert add_months(moment, months) == expected
    assert evaluate("add_months(now, n)", {"now": moment, "n": months}) == expected


def test_add_years_keeps_the_date_and_clamps_a_leap_day() -> None:
    assert add_years(datetime(2028, 2, 29, tzinfo=timezone.utc), 1) == datetime(2029, 2, 28, tzinfo=timezone.utc)
    assert evaluate("add_years(now, 2)", {"now": NOW}) == datetime(2028, 3, 1, 9, tzinfo=timezone.utc)


def test_days_hours_min_max() -> None:
    assert evaluate("now + days(2) + hours(3)", {"now": NOW}) == NOW + timedelta(days=2, hours=3)
    assert evaluate("min(3, 5) + max(1, 2)", {}) == 5
    assert evaluate("max(now, now + days(1))", {"now": NOW}) == NOW + timedelta(days=1)
    assert evaluate("min(days(1), hours(3))", {}) == timedelta(hours=3)


def test_comparing_with_null_is_safe_at_run_time() -> None:
    names = {"facts": {"score": None, "tickets": 0}}
    assert evaluate("facts.score == null", names) is True
    assert evaluate("facts.score != null && facts.score >= 9", names) is False
    assert evaluate("facts.tickets != null", names) is True
    with pytest.raises(ExpressionError, match=r"'>=' cannot take \(null, int\): a value is null; guard it"):
        evaluate("facts.score >= 9", names)


# ---------------------------------------------------------------- durations from expressions


def test_due_timeout_and_duration_accept_a_duration_expression(ws: Workspace) -> None:
    ws.sale("""\
        - kind: wait
          duration: days(vars.reminder_after)
        - kind: task
          role: installer
          title: Plan
          guideline: Plan it.
          due: hours(vars.reminder_after * 12)
        - kind: wait_for
          events: [order.delivered]
          timeout: days(vars.reminder_after) + hours(1)
        """, vars=VARS)
    playbook = ws.load().playbooks["sale"]
    assert playbook.steps[0].duration == "days(vars.reminder_after)"


@pytest.mark.parametrize(("expression", "column", "fragment"), [
    ("vars.reminder_after", 14, "'timeout' must be a duration, but this expression is an int: "
                                "write days(n) or hours(n)"),
    ("days(event.data.price)", 18, "days() takes an int"),
    ("now + days(1)", 14, "'timeout' must be a duration, but this expression is a timestamp"),
])
def test_a_duration_expression_of_another_type_is_refused(ws: Workspace, expression: str, column: int,
                                                          fragment: str) -> None:
    ws.sale(f"- kind: wait_for\n  events: [order.delivered]\n  timeout: {expression}\n", vars=VARS)
    [error] = ws.errors()
    assert error.startswith(f"p/sale.yaml:8:{column}: "), error
    assert fragment in error


def test_a_mistyped_duration_literal_is_still_a_duration_error(ws: Workspace) -> None:
    ws.sale("- kind: wait\n  duration: 3 dayz\n", vars=VARS)
    [error] = ws.errors()
    assert "'3 dayz' is not a duration" in error


def test_a_duration_expression_times_the_wait_when_the_stage_runs(ws: Workspace) -> None:
    from engine.simulator import ScheduledEvent, simulate

    ws.sale("""\
        - kind: wait
          duration: days(vars.reminder_after) + hours(3)
        - kind: task
          role: installer
          title: Plan
          guideline: Plan it.
          due: days(vars.reminder_after)
        """, vars=VARS)
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    placed = Event(customer_id="c1", name="order.placed",
                   data={"order_id": "A1", "promised_delivery": "2026-03-10"})
    timeline = simulate(ws.load(), {"id": "c1"}, [ScheduledEvent(start, placed)],
                        until=start + timedelta(days=30))
    [task] = [record for record in timeline.records if record.kind == "task"]
    assert task.at == start + timedelta(days=2, hours=3)
    assert task.detail["due_at"] == (start + timedelta(days=4, hours=3)).isoformat()


# ---------------------------------------------------------------- promises follow `about`

D = "2026-03-10"
PROMISE_TABLE = [
    # about, expected, actual, tolerance, kept
    ("delivery_date", D, "2026-03-09", None, True),
    ("delivery_date", D, D, None, True),
    ("delivery_date", D, "2026-03-11", None, False),
    ("delivery_date", D, "2026-03-11", "1d", True),
    ("delivery_date", D, "2026-03-12T00:00:01+00:00", "2d", False),
    ("delivery_date", "2026-03-10T00:00:00+00:00", datetime(2026, 3, 10, tzinfo=timezone.utc), None, True),
    ("response_time", "4h", "3h", None, True),
    ("response_time", "4h", "5h", None, False),
    ("response_time", "4h", "5h", "1h", True),
    ("response_time", "4h", timedelta(hours=4), None, True),
    ("price", 1200, 1200.0, None, True),
    ("price", 1200, 1150, None, True),
    ("price", 1200, 1250, None, False),
    ("price", 1200, 1250, 50, True),
    ("price", 1200.0, 1250.5, 50, False),
    ("quantity", 100, 120, None, True),
    ("quantity", 100, 100, None, True),
    ("quantity", 100, 99.5, None, False),
    ("quantity", 99.9, 99.5, 0.5, True),  # uptime: 99.9 % promised, 99.5 % delivered, 0.5 slack
    ("quantity", 5000, 4000, 500, False),
    ("scope", "Sofa, assembled", "Sofa, assembled", None, True),
    ("scope", "Sofa, assembled", "Sofa", None, False),
    ("other", True, True, None, True),
    ("other", True, False, None, False),
    ("other", 10, 10.2, 0.5, True),
    ("other", 10, 11, 0.5, False),
    ("other", D, "2026-03-10T00:00:00Z", None, True),
    ("price", 1200, None, None, False),
    ("delivery_date", D, None, None, False),
]


@pytest.mark.parametrize(("about", "expected", "actual", "tolerance", "kept"), PROMISE_TABLE)
def test_a_promise_is_kept_by_the_rule_of_what_it_is_about(about, expected, actual, tolerance, kept) -> None:
    from engine.promises import promise_kept

    assert promise_kept(about, expected, actual, tolerance) is kept


def test_what_happened_must_have_the_type_of_the_promise(ws: Workspace) -> None:
    ws.sale(PROMISE.replace("{about}", "quantity").format(e="'10.0'")
            + "- kind: check_promise\n  promise: p\n  actual: event.data.order_id\n", vars=VARS)
    [error] = ws.errors()
    assert "what happened to a quantity promise must be a double, but this expression is a string" in error


def test_a_quantity_promise_needs_an_amount_as_tolerance(ws: Workspace) -> None:
    ws.sale(PROMISE.replace("{about}", "quantity").format(e="'10.0'") + "  tolerance: 1d\n", vars=VARS)
    assert any("a quantity promise needs an amount as tolerance" in error for error in ws.errors())


# ---------------------------------------------------------------- the docs


def test_the_examples_of_the_types_section_in_the_docs_check(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "playbooks.md").read_text()
    section = docs.split("\n## Types\n", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:]]
    assert blocks, "the Types section has a yaml example"
    bundled = Path(__file__).resolve().parent.parent / "playbooks"
    shutil.copytree(bundled, tmp_path / "playbooks", ignore=shutil.ignore_patterns("tests"))
    for block in blocks:
        (tmp_path / "playbooks" / "referral-request.yaml").write_text("playbook: referral_request\n" + block)
        project = load_project(tmp_path / "playbooks" / "lifecycle.yaml")
        assert project.playbooks["referral_request"].var_kinds()["called_at"] == "timestamp"


def test_a_text_var_used_as_a_date_gets_the_declaration_hint(ws: Workspace) -> None:
    ws.sale(CONDITION.format(e="now > vars.starts"), vars="starts: '2026-04-01T00:00:00Z'\n")
    [error] = ws.errors()
    assert error.startswith("p/sale.yaml:6:15: '>' cannot take timestamp and string"), error
    assert "a var holding a date: declare it as `starts: {type: timestamp, initial: ...}`" in error
    ws.sale(CONDITION.format(e="now > vars.starts"),
            vars="starts: {type: timestamp, initial: '2026-04-01T00:00:00Z'}\n")
    ws.load()


def test_a_loop_inside_a_loop_is_refused_at_load_because_its_cost_has_no_bound(ws: Workspace) -> None:
    ws.sale("""\
        - kind: if
          when: "[1, 2].all(x, [3, 4].exists(y, y == x))"
          then: [{kind: end}]
        """)
    [error] = ws.errors()
    assert error.startswith("p/sale.yaml:4:33: a loop inside a loop")


def test_loops_one_after_another_cost_no_more_than_their_data_and_load(ws: Workspace) -> None:
    ws.sale("""\
        - kind: if
          when: "[1, 2].filter(x, x > 1).map(y, y * 2).exists(z, z == 4) && [3].all(w, w > 0)"
          then: [{kind: end}]
        """)
    ws.load()

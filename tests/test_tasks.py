"""Tasks as entities (engine.tasks), through the pure machine and the simulator: no Temporal."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from engine import tasks
from engine.project import Project
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event, TaskCommand
from workspace import in_memory

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

LIFECYCLE = """
lifecycle: test
channels:
  email: {contact: email}
roles:
  installer: Installs.
  account_manager: Owns the relationship.
events:
  order.placed: {starts_lifecycle: true}
  order.delivered: {}
  customer.lost: {}
initial_stage: sale
stages:
  sale: {playbook: sale}
  delivery: {playbook: delivery}
  lost: {terminal: true}
transitions:
  - {from: sale, "on": order.delivered, to: delivery}
  - {from: "*", "on": customer.lost, to: lost}
"""

SALE = """
playbook: sale
steps:
  - {kind: task, id: plan_install, role: installer, title: Plan the installation, guideline: Call first., due: 3d}
  - {kind: wait, id: idle, duration: 60d}
"""

DELIVERY = """
playbook: delivery
steps:
  - kind: task
    id: call
    role: account_manager
    title: Call about the delivery
    guideline: Listen first.
    due: 2d
    outcomes: [reached, no_answer, wrong_number]
    fields: {battery_interest: bool, callback_on: date}
    on_done:
      - kind: if
        when: event.data.outcome == 'reached' && event.data.fields.battery_interest == true
        then: [{kind: set, id: offer, var: next, value: "'battery_offer'"}]
        elif:
          - when: event.data.outcome == 'no_answer'
            then: [{kind: set, id: retry, var: next, value: "'call_again'"}]
        else: [{kind: set, id: nothing, var: next, value: "'nothing'"}]
      - {kind: set, id: callback, var: callback, value: "event.data.fields.callback_on"}
    on_overdue:
      - {kind: task, id: escalate, role: installer, title: Escalated, guideline: Call today.}
  - {kind: wait, id: idle, duration: 60d}
"""


def project() -> Project:
    return in_memory(LIFECYCLE, {"sale": SALE, "delivery": DELIVERY})


CUSTOMER = {"id": "c1", "email": "c1@example.com", "consent": {"email": True}}


def at(days: float, name: str, **data) -> ScheduledEvent:
    return ScheduledEvent(T0 + timedelta(days=days), Event(customer_id="c1", name=name, data=data))


def command(days: float, **order) -> ScheduledEvent:
    return ScheduledEvent(T0 + timedelta(days=days), task=TaskCommand(**order))


def run(*events: ScheduledEvent, until_days: float = 100):
    return simulate(project(), CUSTOMER, [at(0, "order.placed"), *events], until=T0 + timedelta(days=until_days))


def test_a_task_step_creates_a_task_entity_with_a_stable_id_and_its_due_time():
    timeline = run(until_days=1)
    [task] = timeline.state.tasks
    assert task.id == "lifecycle/c1/sale/1/plan_install" == timeline.actions[0].task_id
    assert (task.role, task.status, task.waited) == ("installer", "open", False)
    assert task.due_at == T0 + timedelta(days=3)
    assert tasks.inbox(timeline.state) == (["installer"], [], T0 + timedelta(days=3))
    assert tasks.listed_status(task, T0 + timedelta(days=4)) == "overdue"


def test_a_task_nothing_waits_for_can_be_completed_once_by_id_or_step_and_never_again():
    timeline = run(at(1, "task.completed", task="lifecycle/c1/sale/1/plan_install", outcome="booked"),
                   at(2, "task.completed", task="plan_install"), until_days=3)
    receipts = [receipt for _, receipt in timeline.receipts[1:]]
    assert receipts[0].status == "accepted"
    assert (receipts[1].status, receipts[1].code) == ("rejected", "task_closed")
    [task] = timeline.state.tasks
    assert (task.status, task.outcome, task.completed_at) == ("done", "booked", T0 + timedelta(days=1))
    assert tasks.inbox(timeline.state) == ([], [], None)


def test_an_unknown_task_is_refused_by_name():
    timeline = run(at(1, "task.completed", task="no_such_task"), until_days=2)
    receipt = timeline.receipts[1][1]
    assert (receipt.status, receipt.code, receipt.field) == ("rejected", "unknown_task", "task")
    assert "no_such_task" in receipt.reason


def test_a_task_of_an_earlier_stage_stays_open_and_can_be_completed_later():
    timeline = run(at(1, "order.delivered"), at(2, "task.completed", task="plan_install"), until_days=3)
    assert timeline.receipts[2][1].status == "accepted"
    plan = tasks.find(timeline.state, "lifecycle/c1/sale/1/plan_install")
    assert plan is not None and plan.status == "done"


def test_a_structured_outcome_is_typed_in_on_done_and_branches():
    timeline = run(at(1, "order.delivered"),
                   at(2, "task.completed", task="call", outcome="reached",
                      fields={"battery_interest": True, "callback_on": "2026-04-01"}), until_days=5)
    assert timeline.state.vars["next"] == "battery_offer"
    assert timeline.state.vars["callback"].startswith("2026-04-01")  # a date read as a timestamp
    call = tasks.find(timeline.state, "call")
    assert call is not None and call.fields == {"battery_interest": True, "callback_on": "2026-04-01"}


def test_another_outcome_takes_another_branch():
    timeline = run(at(1, "order.delivered"), at(2, "task.completed", task="call", outcome="no_answer"), until_days=5)
    assert timeline.state.vars["next"] == "call_again"


def test_an_outcome_or_field_the_task_does_not_declare_is_refused_naming_the_field():
    timeline = run(at(1, "order.delivered"),
                   at(2, "task.completed", task="call", outcome="reachd"),
                   at(2.1, "task.completed", task="call", outcome="reached", fields={"battery_interest": "yes"}),
                   at(2.2, "task.completed", task="call", outcome="reached", fields={"colour": "red"}),
                   until_days=2.5)
    codes = [(r.code, r.field) for _, r in timeline.receipts[2:]]
    assert codes == [("invalid_payload", "outcome"), ("invalid_payload", "fields.battery_interest"),
                     ("invalid_payload", "fields.colour")]
    assert "reached, no_answer, wrong_number" in timeline.receipts[2][1].reason
    assert timeline.receipts[4][1].reason == ("task 'call' has no field 'fields.colour' "
                                              "(its fields: battery_interest, callback_on)")
    assert tasks.find(timeline.state, "call").status == "open"


def test_an_overdue_waiting_task_is_escalated_and_names_its_escalation():
    timeline = run(at(1, "order.delivered"), until_days=10)
    call = tasks.find(timeline.state, "call")
    assert call.status == "escalated"
    assert call.escalation == "lifecycle/c1/delivery/2/escalate"
    assert tasks.find(timeline.state, "escalate").status == "open"


def test_snoozing_a_waiting_task_moves_its_due_time_and_its_overdue_clock():
    new_due = T0 + timedelta(days=8)
    timeline = run(at(1, "order.delivered"), command(2, task="call", action="snooze", until=new_due), until_days=7)
    call = tasks.find(timeline.state, "call")
    assert (call.status, call.due_at) == ("open", new_due)  # the old due time (day 3) passed quietly
    assert timeline.state.pending is not None and timeline.state.pending.until == new_due
    later = run(at(1, "order.delivered"), command(2, task="call", action="snooze", until=new_due), until_days=9)
    timeout = [record for record in later.records if record.kind == "timeout"]
    assert [record.at for record in timeout] == [new_due]


def test_reassigning_names_the_assignee_and_may_move_the_due_time():
    due = T0 + timedelta(days=5)
    timeline = run(command(1, task="plan_install", action="reassign", assignee="sam", until=due), until_days=2)
    [task] = timeline.state.tasks
    assert (task.assignee, task.due_at) == ("sam", due)
    assert tasks.inbox(timeline.state) == (["installer"], ["sam"], due)
    changed = [record for record in timeline.records if record.kind == "task_changed"]
    assert changed[0].detail["assignee"] == "sam"


def test_cancelling_a_waiting_task_goes_on_after_it_without_either_branch():
    timeline = run(at(1, "order.delivered"), command(2, task="call", action="cancel", reason="duplicate"),
                   until_days=10)
    call = tasks.find(timeline.state, "call")
    assert (call.status, call.reason) == ("cancelled", "duplicate")
    assert "escalate" not in timeline.steps() and "next" not in timeline.state.vars
    assert timeline.state.pending is not None and timeline.state.pending.step == "idle"


def test_commands_on_unknown_or_closed_tasks_and_bad_arguments_are_refused():
    timeline = run(command(1, task="nope", action="cancel"),
                   command(1.1, task="plan_install", action="snooze"),
                   command(1.2, task="plan_install", action="snooze", until=T0),
                   command(1.3, task="plan_install", action="cancel"),
                   command(1.4, task="plan_install", action="reassign", assignee="sam"), until_days=2)
    codes = [(r.code, r.field) for _, r in timeline.receipts[1:]]
    assert codes == [("unknown_task", "task"), ("invalid_payload", "until"), ("invalid_payload", "until"),
                     ("", None), ("task_closed", "task")]


def test_the_kept_tasks_are_bounded_closed_ones_first():
    state = run(until_days=1).state
    spec = project().playbooks["sale"].steps[0]
    for index in range(tasks.CLOSED_KEPT + 5):
        entity = tasks.create(state, f"t{index}", f"s{index}", str(index), spec, T0, None, False)
        tasks.complete(state, entity, None, {}, T0 + timedelta(minutes=index))
    closed = [entity for entity in state.tasks if not entity.is_open]
    assert len(closed) == tasks.CLOSED_KEPT and closed[-1].id == f"t{tasks.CLOSED_KEPT + 4}"
    assert tasks.find(state, "plan_install").is_open  # open ones are kept


# ---------------------------------------------------------------- load checks of outcomes and fields

CALL = """\
- kind: task
  id: call
  role: account_manager
  title: Call
  guideline: Listen.
  outcomes: [reached, no_answer]
  fields: {battery_interest: bool, visits: int}
  on_done:
    - {kind: if, when: "%s", then: [{kind: end, outcome: done}]}
"""


def test_on_done_reads_typed_fields_and_declared_outcomes(ws):
    ws.sale(CALL % "event.data.outcome == 'reached' && event.data.fields.battery_interest && event.data.fields.visits > 2")
    ws.load()


def test_an_undeclared_field_is_an_error_at_its_place(ws):
    ws.sale(CALL % "event.data.fields.battery_intrest")
    assert ws.errors() == ["p/sale.yaml:11:45: the task has no field 'battery_intrest' (did you mean "
                           "'battery_interest'?); it has battery_interest, visits"]


def test_a_field_of_the_wrong_type_is_a_type_error(ws):
    ws.sale(CALL % "event.data.fields.visits == 'many'")
    [error] = ws.errors()
    assert error.startswith("p/sale.yaml:11:") and "int" in error and "string" in error


def test_an_outcome_the_task_does_not_declare_is_an_error(ws):
    ws.sale(CALL % "event.data.outcome == 'reachd'")
    assert ws.errors() == ["p/sale.yaml:11:49: 'reachd' is not an outcome of the task (did you mean "
                           "'reached'?); it has no_answer, reached"]


def test_an_outcome_listed_twice_is_an_error(ws):
    ws.sale(CALL.replace("[reached, no_answer]", "[reached, reached]") % "true")
    [error] = ws.errors()
    assert error.startswith("p/sale.yaml:") and "outcome 'reached' is listed twice" in error


def test_a_task_due_in_business_days_keeps_that_due_time_on_its_entity():
    from test_policy import SMS_CUSTOMER, lifecycle, placed
    from test_policy import project as policy_project

    sale = """
playbook: sale
steps:
  - {kind: task, id: call, role: account_manager, title: Call, guideline: Call them., due: 2 business days}
"""
    # Thursday 2026-07-02 10:00 New York; Friday July 3 is the observed Independence Day.
    thursday = datetime(2026, 7, 2, 14, tzinfo=timezone.utc)
    state = simulate(policy_project(sale=sale, lifecycle=lifecycle()), SMS_CUSTOMER, [placed(thursday)]).state
    [task] = state.tasks
    assert task.due_at == datetime(2026, 7, 7, 14, tzinfo=timezone.utc)
    assert tasks.inbox(state)[2] == task.due_at

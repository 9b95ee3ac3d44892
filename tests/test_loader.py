"""The strict loader: every mistake an author can make comes back as `file:line:column: message`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.validate import validate_command
from engine.errors import PlaybookError, PlaybookLoadError
from engine.loader import load_playbook_file, load_project, parse_yaml
from engine.project import sound_bundle
from engine.references import ExpressionSyntaxError, analyse, references
from workspace import Workspace

HERE = Path(__file__).parent
VALID = HERE / "fixtures" / "valid"
INVALID = HERE / "fixtures" / "invalid"
BUNDLED = HERE.parent / "playbooks" / "lifecycle.yaml"


# ---------------------------------------------------------------- errors as values


def test_error_prints_path_line_column_message() -> None:
    error = PlaybookError("playbooks/x.yaml", 14, 7, "unknown field 'timout'")
    assert str(error) == "playbooks/x.yaml:14:7: unknown field 'timout'"


def test_load_error_joins_its_errors_one_per_line() -> None:
    errors = [PlaybookError("a.yaml", 1, 1, "one"), PlaybookError("a.yaml", 2, 3, "two")]
    assert str(PlaybookLoadError(errors)) == "a.yaml:1:1: one\na.yaml:2:3: two"


# ---------------------------------------------------------------- the valid fixture


def test_valid_fixture_loads_every_stage_template_and_version(ws: Workspace) -> None:
    project = ws.load()
    assert set(project.playbooks) == {"sale", "delivery"}
    assert set(project.templates) == {"order_summary", "check_in", "apology"}
    assert project.templates["apology"].startswith("Sorry {{ customer.name }}")
    assert set(project.versions) == {"sale", "delivery", "closed"}
    assert all(len(v) == 12 and int(v, 16) >= 0 for v in project.versions.values())


def test_version_changes_only_for_the_stage_whose_template_changed(ws: Workspace) -> None:
    before = ws.load().versions
    ws.write("templates/check_in.txt", "Hello {{ customer.name }}, all good?\n")
    after = ws.load().versions
    assert after["delivery"] != before["delivery"]
    assert after["sale"] == before["sale"]
    assert after["closed"] == before["closed"]


def test_version_changes_for_every_stage_when_the_lifecycle_changes(ws: Workspace) -> None:
    before = ws.load().versions
    ws.lifecycle("description: Sale, delivery check-in, then closed.", "description: Edited.")
    after = ws.load().versions
    assert all(after[stage] != before[stage] for stage in before)


def test_version_is_stable_across_loads(ws: Workspace) -> None:
    assert ws.load().versions == ws.load().versions


def test_bundle_pins_the_templates_its_playbook_uses(ws: Workspace) -> None:
    bundle = ws.load().bundle("delivery")
    assert set(bundle.templates) == {"check_in", "apology"}
    assert bundle.version == ws.load().versions["delivery"]


def test_non_terminal_stage_without_playbook_is_fine(ws: Workspace) -> None:
    ws.lifecycle("  closed:\n    terminal: true", "  waiting: {}\n  closed:\n    terminal: true")
    assert ws.load().bundle("waiting").playbook is None


def test_yaml_1_1_booleans_stay_text(ws: Workspace) -> None:
    # `on:` must stay a key, and `no` must stay the word an author wrote.
    ws.sale("""\
      - kind: end
        outcome: no
    """)
    project = ws.load()
    assert project.playbooks["sale"].steps[0].outcome == "no"
    assert project.lifecycle.transitions[0].on == "order.delivered"


def test_merge_keys_are_honoured(ws: Workspace) -> None:
    ws.sale("""\
      - &base
        kind: wait
        duration: 1h
      - <<: *base
        duration: 2h
    """)
    steps = ws.load().playbooks["sale"].steps
    assert [s.duration.total_seconds() for s in steps] == [3600, 7200]


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled playbooks not written yet")
def test_bundled_playbooks_load() -> None:
    project = load_project(BUNDLED)
    assert project.playbooks


# ---------------------------------------------------------------- YAML errors


def test_yaml_syntax_error_is_located(ws: Workspace) -> None:
    ws.sale("""\
      - kind: send
         template: x
    """)
    assert ws.errors() == [
        "p/sale.yaml:4:14: YAML syntax error: mapping values are not allowed here; check the indentation",
    ]


def test_duplicate_key_points_at_the_second_one(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait
        duration: 1h
        duration: 2h
    """)
    assert ws.errors() == ["p/sale.yaml:5:5: duplicate key 'duration' (first given at line 4)"]


def test_empty_playbook_file(ws: Workspace) -> None:
    ws.write("sale.yaml", "# nothing yet\n")
    assert "p/sale.yaml:1:1: the file is empty; expected a stage playbook" in ws.errors()


def test_top_level_list_instead_of_mapping(ws: Workspace) -> None:
    ws.write("lifecycle.yaml", "- a\n- b\n")
    assert ws.errors() == [
        "p/lifecycle.yaml:1:1: expected a mapping with the fields of a lifecycle, got a list",
    ]


def test_impossible_date_is_located(ws: Workspace) -> None:
    ws.lifecycle("    type: int\n    initial: 0", "    type: date\n    initial: 2026-02-30")
    # The fact is now a date, so the updates that add 1 to it are type errors too.
    assert "p/lifecycle.yaml:40:14: '2026-02-30' is not a valid date or time" in ws.errors()


def test_second_document_in_a_file(ws: Workspace) -> None:
    ws.write("delivery.yaml", "playbook: delivery\nsteps: [{kind: end}]\n---\nfoo: 1\n")
    assert ws.errors() == ["p/delivery.yaml:3:1: a file holds one YAML document; remove the second '---'"]


def test_control_character_is_located(ws: Workspace) -> None:
    ws.write("delivery.yaml", "playbook: delivery\nsteps:\n  - kind: end\n    outcome: a\x07b\n")
    assert ws.errors() == ["p/delivery.yaml:4:15: character '\\x07' is not allowed in a YAML file"]


def test_file_that_is_not_utf8(ws: Workspace) -> None:
    (ws.root / "p" / "delivery.yaml").write_bytes(b"playbook: delivery\nsteps:\n  - kind: end\n    outcome: caf\xe9\n")
    assert ws.errors() == ["p/delivery.yaml:4:17: the file is not UTF-8 text"]


def test_recursive_alias_is_an_error_not_a_hang() -> None:
    doc, errors = parse_yaml("x.yaml", "a: &x [1, *x]\n")
    assert [str(e) for e in errors] == ["x.yaml:1:4: an alias refers to the collection that contains it"]


def test_alias_bomb_is_stopped() -> None:
    levels = ["a0: &a0 [1,1,1,1,1,1,1,1,1,1]"]
    levels += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    _, errors = parse_yaml("x.yaml", "\n".join(levels) + "\n")
    assert [str(e) for e in errors] == ["x.yaml:1:1: the file expands to more than 100000 values"]


def test_unknown_yaml_tag() -> None:
    _, errors = parse_yaml("x.yaml", "a: !secret x\n")
    assert [str(e) for e in errors] == ["x.yaml:1:4: unknown YAML tag '!secret'"]


# ---------------------------------------------------------------- model errors


def test_unknown_field_suggests_the_close_one(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait_for
        events: [survey.answered]
        timout: 3d
    """)
    assert ws.errors() == [
        "p/sale.yaml:5:5: unknown field 'timout' in wait_for step (did you mean 'timeout'?)",
    ]


def test_missing_field_points_at_the_mapping(ws: Workspace) -> None:
    ws.sale("""\
      - kind: send
        channel: email
    """)
    assert ws.errors() == ["p/sale.yaml:3:5: missing required field 'template' in send step"]


def test_bad_duration_points_at_the_value(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait
        duration: 3 dayz
    """)
    assert ws.errors() == [
        "p/sale.yaml:4:15: '3 dayz' is not a duration (examples: 30m, 2d, 1w, 1d12h, P14D)",
    ]


def test_steps_must_be_a_list(ws: Workspace) -> None:
    ws.write("sale.yaml", "playbook: sale\nsteps:\n  kind: end\n")
    assert "p/sale.yaml:3:3: expected a list of steps, got a mapping" in ws.errors()


def test_empty_steps(ws: Workspace) -> None:
    ws.write("delivery.yaml", "playbook: delivery\nsteps: []\n")
    assert ws.errors() == ["p/delivery.yaml:2:8: expected at least one step in 'steps'"]


def test_unknown_step_kind_suggests_a_kind(ws: Workspace) -> None:
    ws.sale("""\
      - kind: sned
        template: x
    """)
    assert ws.errors() == ["p/sale.yaml:3:11: unknown step kind 'sned' (did you mean 'send'?)"]


def test_unknown_step_kind_without_a_close_one_lists_the_kinds(ws: Workspace) -> None:
    ws.sale("""\
      - kind: teleport
    """)
    assert ws.errors() == [
        "p/sale.yaml:3:11: unknown step kind 'teleport' (expected one of: send, task, wait, "
        "wait_for, if, set, promise, check_promise, goto, end, split)",
    ]


def test_step_without_kind(ws: Workspace) -> None:
    ws.sale("""\
      - template: welcome
    """)
    assert ws.errors() == [
        "p/sale.yaml:3:5: missing required field 'kind' in step (one of: send, task, wait, "
        "wait_for, if, set, promise, check_promise, goto, end, split)",
    ]


def test_step_that_is_not_a_mapping(ws: Workspace) -> None:
    ws.sale("""\
      - send
    """)
    assert ws.errors() == ["p/sale.yaml:3:5: expected a step (a mapping with 'kind'), got text 'send'"]


def test_expression_given_as_a_number_says_to_quote_it(ws: Workspace) -> None:
    ws.sale("""\
      - kind: set
        var: count
        value: 0
    """)
    assert ws.errors() == ["p/sale.yaml:5:12: expected an expression as text, got number 0 (quote it: '0')"]


def test_wrong_scalar_types(ws: Workspace) -> None:
    ws.lifecycle("    starts_lifecycle: true", "    starts_lifecycle: maybe")
    ws.lifecycle("templates: templates", "templates: [a]")
    assert ws.errors() == [
        "p/lifecycle.yaml:19:23: expected true or false, got text 'maybe'",
        "p/lifecycle.yaml:59:12: expected text, got a list",
    ]


def test_literal_choice_suggests(ws: Workspace) -> None:
    ws.sale("""\
      - kind: send
        template: check_in
        category: marketng
    """)
    assert ws.errors() == [
        "p/sale.yaml:5:15: 'marketng' is not one of: transactional, service, survey, marketing (did you mean 'marketing'?)",
    ]


def test_name_pattern_suggests_snake_case(ws: Workspace) -> None:
    ws.sale("""\
      - kind: set
        var: Happy Customer
        value: "true"
    """)
    assert ws.errors() == [
        "p/sale.yaml:4:10: 'Happy Customer' is not a valid name: use lower_snake_case, e.g. 'happy_customer'",
    ]


def test_bad_mapping_key_points_at_the_key(ws: Workspace) -> None:
    ws.lifecycle("  sms:\n    contact: phone", "  SMS:\n    contact: phone")
    assert ws.errors() == ["p/lifecycle.yaml:12:3: 'SMS' is not a valid name: use lower_snake_case, e.g. 'sms'"]


def test_bad_event_name(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait_for
        events: [Survey Answered]
    """)
    assert ws.errors() == [
        "p/sale.yaml:4:14: 'Survey Answered' is not a valid event name: use lower_snake_case words "
        "joined by dots, e.g. 'order.delivered'",
    ]


def test_model_rule_is_reported_on_the_step(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait
        note: neither duration nor until
    """)
    assert ws.errors() == ["p/sale.yaml:3:5: give exactly one of 'duration' or 'until' in wait step"]


def test_tolerance_fits_neither_duration_nor_number(ws: Workspace) -> None:
    ws.sale("""\
      - kind: promise
        promise: delivery_date
        about: delivery_date
        expected: event.data.promised_delivery
        made_by: account_manager
        tolerance: a bit
    """)
    assert ws.errors() == [
        "p/sale.yaml:8:16: expected a duration (examples: 30m, 2d, 1w, 1d12h, P14D) or a number, got text 'a bit'",
    ]


def test_aliases_elif_else_from_are_the_only_spellings(ws: Workspace) -> None:
    ws.sale("""\
      - kind: if
        when: facts.open_tickets > 0
        then: [{kind: end}]
        elif:
          - then: [{kind: end}]
        else_: [{kind: end}]
    """)
    ws.lifecycle("  - from: sale\n    on: order.delivered", "  - from_: sale\n    on: order.delivered")
    assert ws.errors() == [
        "p/lifecycle.yaml:52:5: missing required field 'from' in transition",
        "p/lifecycle.yaml:52:5: unknown field 'from_' in transition (did you mean 'from'?)",
        "p/sale.yaml:7:9: missing required field 'when' in 'elif' branch",
        "p/sale.yaml:8:5: unknown field 'else_' in if step (did you mean 'else'?)",
    ]


def test_otherwise_task_fields(ws: Workspace) -> None:
    ws.sale("""\
      - kind: send
        template: check_in
        otherwise:
          role: account_manager
          titel: Call
          guideline: Be brief.
    """)
    assert ws.errors() == [
        "p/sale.yaml:6:7: missing required field 'title' in 'otherwise' task",
        "p/sale.yaml:7:7: unknown field 'titel' in 'otherwise' task (did you mean 'title'?)",
    ]


def test_event_spec_fields_are_named_by_event(ws: Workspace) -> None:
    ws.lifecycle("    starts_lifecycle: true", "    start_lifecycle: true")
    errors = ws.errors()
    assert errors[0] == (
        "p/lifecycle.yaml:19:5: unknown field 'start_lifecycle' in event 'order.placed' "
        "(did you mean 'starts_lifecycle'?)"
    )


def test_unknown_field_type_suggests(ws: Workspace) -> None:
    ws.lifecycle("  warranty_ends: date", "  warranty_ends: dat")
    assert ws.errors() == [
        "p/lifecycle.yaml:5:18: 'dat' is not one of: string, int, number, bool, date, timestamp, "
        "duration, list, map (did you mean 'date'?)",
    ]


def test_every_model_error_of_a_file_is_reported_at_once(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait
        duration: soon
      - kind: send
      - kind: sned
      - kind: set
        var: x
        value: 1
    """)
    assert ws.errors() == [
        "p/sale.yaml:4:15: 'soon' is not a duration (examples: 30m, 2d, 1w, 1d12h, P14D)",
        "p/sale.yaml:5:5: missing required field 'template' in send step",
        "p/sale.yaml:6:11: unknown step kind 'sned' (did you mean 'send'?)",
        "p/sale.yaml:9:12: expected an expression as text, got number 1 (quote it: '1')",
    ]


# ---------------------------------------------------------------- cross-references


def test_unknown_stages(ws: Workspace) -> None:
    ws.lifecycle("initial_stage: sale", "initial_stage: sael")
    ws.lifecycle("  - from: sale\n    on: order.delivered\n    to: delivery",
                 "  - from: [sale, '*', dellivery]\n    on: order.delivered\n    to: clossed")
    ws.sale("""\
      - kind: goto
        stage: delivry
    """)
    assert ws.errors() == [
        "p/lifecycle.yaml:43:16: unknown stage 'sael' (did you mean 'sale'?)",
        "p/lifecycle.yaml:52:23: unknown stage 'dellivery' (did you mean 'delivery'?)",
        "p/lifecycle.yaml:54:9: unknown stage 'clossed' (did you mean 'closed'?)",
        "p/sale.yaml:4:12: unknown stage 'delivry' (did you mean 'delivery'?)",
    ]


def test_transition_from_any_stage(ws: Workspace) -> None:
    ws.lifecycle("  - from: sale\n    on: order.delivered", "  - from: '*'\n    on: order.delivered")
    assert ws.load().lifecycle.transitions[0].from_ == ["*"]


def test_transition_out_of_a_terminal_stage(ws: Workspace) -> None:
    ws.lifecycle("  - from: sale\n    on: order.delivered", "  - from: closed\n    on: order.delivered")
    assert ws.errors() == ["p/lifecycle.yaml:52:11: stage 'closed' is terminal: no transition can leave it"]


def test_transition_shadowed_by_an_unconditional_one(ws: Workspace) -> None:
    ws.lifecycle("templates: templates",
                 "  - from: sale\n    on: order.delivered\n    to: closed\ntemplates: templates")
    assert ws.errors() == [
        "p/lifecycle.yaml:59:5: this transition never fires: the transition at line 52 already takes "
        "'order.delivered' from the same stage without a 'when'",
    ]


def test_unknown_events(ws: Workspace) -> None:
    ws.lifecycle("    on: order.delivered", "    on: order.deliverd")
    ws.sale("""\
      - kind: wait_for
        events: [survey.answerd, task.completed]
        on:
          ticket.opened: [{kind: end}]
    """)
    assert ws.errors() == [
        "p/lifecycle.yaml:53:9: unknown event 'order.deliverd' (did you mean 'order.delivered'?)",
        "p/sale.yaml:4:14: unknown event 'survey.answerd' (did you mean 'survey.answered'?)",
        "p/sale.yaml:6:7: 'on' names event 'ticket.opened' that this wait_for does not wait for",
    ]


def test_event_listed_twice_in_wait_for(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait_for
        events: [survey.answered, survey.answered]
    """)
    assert ws.errors() == ["p/sale.yaml:4:31: event 'survey.answered' is listed twice"]


def test_unknown_channels(ws: Workspace) -> None:
    ws.lifecycle("    contact: phone", "    contact: mobile")
    ws.sale("""\
      - kind: send
        template: check_in
        channel: emial
      - kind: send
        template: check_in
        channel: fax
    """)
    assert ws.errors() == [
        "p/lifecycle.yaml:13:14: channel 'sms': 'mobile' is not a customer field",
        "p/sale.yaml:5:14: unknown channel 'emial' (did you mean 'email'?)",
        "p/sale.yaml:8:14: unknown channel 'fax' (use email, sms or preferred)",
    ]


def test_channel_contact_may_be_a_declared_customer_field(ws: Workspace) -> None:
    ws.lifecycle("  warranty_ends: date", "  warranty_ends: date\n  mobile: string")
    ws.lifecycle("    contact: phone", "    contact: mobile")
    assert ws.load().lifecycle.channels["sms"].contact == "mobile"


def test_unknown_roles(ws: Workspace) -> None:
    ws.sale("""\
      - kind: task
        role: instaler
        title: Install
        guideline: Be on time.
      - kind: send
        template: check_in
        otherwise: {role: helpdesk, title: Call, guideline: Be kind.}
      - kind: promise
        promise: delivery_date
        about: delivery_date
        expected: event.data.promised_delivery
        made_by: sales
    """)
    assert ws.errors() == [
        "p/sale.yaml:4:11: unknown role 'instaler' (did you mean 'installer'?)",
        "p/sale.yaml:9:23: unknown role 'helpdesk'",
        "p/sale.yaml:14:14: unknown role 'sales'",
    ]


def test_unknown_template(ws: Workspace) -> None:
    ws.sale("""\
      - kind: send
        template: chek_in
      - kind: send
        template: ../secrets
    """)
    assert ws.errors() == [
        "p/sale.yaml:4:15: unknown template 'chek_in': no file p/templates/chek_in.txt (did you mean 'check_in'?)",
        "p/sale.yaml:6:15: template name '../secrets' must be a file name in the template folder, without folders",
    ]


def test_unknown_facts(ws: Workspace) -> None:
    ws.lifecycle("      open_tickets: facts.open_tickets + 1", "      open_ticket: facts.open_tickets + 1")
    ws.sale("""\
      - kind: set
        fact: satisfaction
        value: "10"
    """)
    assert ws.errors() == [
        "p/lifecycle.yaml:31:7: unknown fact 'open_ticket' (did you mean 'open_tickets'?)",
        "p/sale.yaml:4:11: unknown fact 'satisfaction' (did you mean 'last_satisfaction'?)",
    ]


def test_check_promise_of_a_promise_never_recorded(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait
        duration: 1d
    """)
    ws.write("delivery.yaml", """\
        playbook: delivery
        steps:
          - kind: check_promise
            promise: delivery_dates
            actual: event.data.delivered_at
    """)
    assert ws.errors() == ["p/delivery.yaml:4:14: no 'promise' step records a promise named 'delivery_dates'"]


def test_duplicate_step_ids(ws: Workspace) -> None:
    ws.sale("""\
      - id: pause
        kind: wait
        duration: 1d
      - kind: if
        when: "true"
        then:
          - id: pause
            kind: wait
            duration: 2d
    """)
    assert ws.errors() == ["p/sale.yaml:9:13: duplicate step id 'pause' (first used at line 3)"]


def test_playbook_name_must_match_its_stage(ws: Workspace) -> None:
    ws.sale("  - kind: end\n", head="playbook: selling\n")
    assert ws.errors() == ["p/sale.yaml:1:11: playbook 'selling' runs in stage 'sale'; name it 'sale'"]


def test_missing_playbook_file_points_at_the_stage(ws: Workspace) -> None:
    (ws.root / "p" / "delivery.yaml").unlink()
    assert ws.errors() == ["p/lifecycle.yaml:48:15: stage 'delivery': file not found: p/delivery.yaml"]


def test_steps_after_goto_never_run(ws: Workspace) -> None:
    ws.sale("""\
      - kind: goto
        stage: delivery
      - kind: wait
        duration: 1d
    """)
    assert ws.errors() == ["p/sale.yaml:5:5: this step never runs: the 'goto' step before it leaves the stage"]


def test_tolerance_must_fit_what_was_promised(ws: Workspace) -> None:
    ws.sale("""\
      - kind: promise
        promise: delivery_date
        about: delivery_date
        expected: event.data.promised_delivery
        made_by: account_manager
        tolerance: 2
      - kind: promise
        promise: price
        about: price
        expected: event.data.price
        made_by: account_manager
        tolerance: 2d
    """)
    assert ws.errors() == [
        "p/sale.yaml:8:16: a delivery_date promise needs a duration as tolerance, e.g. 2d",
        "p/sale.yaml:14:16: a price promise needs an amount as tolerance, e.g. 10",
    ]


def test_no_event_starts_the_lifecycle(ws: Workspace) -> None:
    ws.lifecycle("    starts_lifecycle: true\n", "")
    assert ws.errors() == ["p/lifecycle.yaml:17:1: no event has 'starts_lifecycle: true', so no lifecycle can ever start"]


def test_initial_value_of_a_fact_must_fit_its_type(ws: Workspace) -> None:
    ws.lifecycle("    initial: 0", "    initial: none")
    assert ws.errors() == ["p/lifecycle.yaml:40:14: fact 'open_tickets': the initial value (text 'none') is not of type int"]


# ---------------------------------------------------------------- expressions


def test_expression_syntax_error_in_a_plain_scalar(ws: Workspace) -> None:
    ws.sale("""\
      - kind: if
        when: facts.open_tickets > > 1
        then: [{kind: end}]
    """)
    assert ws.errors() == ["p/sale.yaml:4:32: syntax error: unexpected '>'"]


def test_expression_syntax_error_in_a_quoted_scalar(ws: Workspace) -> None:
    ws.sale("""\
      - kind: if
        when: "facts.open_tickets > (1"
        then: [{kind: end}]
    """)
    assert ws.errors() == ["p/sale.yaml:4:35: syntax error: the expression ends too early"]


def test_expression_error_in_a_block_scalar(ws: Workspace) -> None:
    ws.sale("""\
      - kind: if
        when: |
          facts.open_tickets > 0 &&
            facts.last_satisfation >= 9
        then: [{kind: end}]
    """)
    assert ws.errors() == [
        "p/sale.yaml:6:15: unknown fact 'last_satisfation' (did you mean 'last_satisfaction'?)",
    ]


def test_empty_expression(ws: Workspace) -> None:
    ws.sale("""\
      - kind: set
        var: x
        value: ""
    """)
    assert ws.errors() == ["p/sale.yaml:5:13: empty expression"]


def test_unknown_root_name(ws: Workspace) -> None:
    ws.sale("""\
      - kind: set
        var: x
        value: fact.open_tickets + 1
    """)
    assert ws.errors() == [
        "p/sale.yaml:5:12: unknown name 'fact' (did you mean 'facts'?); an expression can read "
        "customer, event, facts, vars, promises, now",
    ]


def test_vars_are_not_available_in_transitions_and_updates(ws: Workspace) -> None:
    ws.lifecycle("    when: facts.open_tickets >= 3", "    when: vars.limit >= 3")
    ws.lifecycle("      last_satisfaction: event.data.score", "      last_satisfaction: vars.score")
    assert ws.errors() == [
        "p/lifecycle.yaml:36:26: 'vars' cannot be used in an event's 'updates' "
        "(it can read customer, event, facts, promises, now)",
        "p/lifecycle.yaml:58:11: 'vars' cannot be used in a transition's 'when' "
        "(it can read customer, event, facts, promises, now)",
    ]


def test_unknown_customer_field_fact_and_var(ws: Workspace) -> None:
    ws.sale("""\
      - kind: set
        var: x
        value: customer.emial + facts.open_tikets + vars.reminder
    """, head="playbook: sale\nvars:\n  reminder_after: 2\n")
    assert ws.errors() == [
        "p/sale.yaml:7:21: unknown customer field 'emial' (did you mean 'email'?)",
        "p/sale.yaml:7:35: unknown fact 'open_tikets' (did you mean 'open_tickets'?)",
        "p/sale.yaml:7:54: unknown var 'reminder' (did you mean 'reminder_after'?); "
        "declare it in the playbook's 'vars' or set it with a 'set' step",
    ]


def test_var_set_anywhere_in_the_playbook_is_known(ws: Workspace) -> None:
    ws.sale("""\
      - kind: if
        when: vars.reminded == true
        then: [{kind: end}]
      - kind: set
        var: reminded
        value: "true"
    """)
    ws.load()


def test_event_payload_field_in_a_transition(ws: Workspace) -> None:
    ws.lifecycle("event.data.ticket_id != ''", "event.data.ticket != ''")
    assert ws.errors() == [
        "p/lifecycle.yaml:58:49: event 'ticket.opened' has no payload field 'ticket' (did you mean 'ticket_id'?)",
    ]


def test_event_payload_field_of_the_entry_event(ws: Workspace) -> None:
    # `sale` is entered by order.placed only, so delivered_at cannot be there yet.
    ws.sale("""\
      - kind: set
        var: x
        value: event.data.delivered_at
    """)
    assert ws.errors() == ["p/sale.yaml:5:23: event 'order.placed' has no payload field 'delivered_at'"]


def test_event_payload_field_after_wait_for(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait_for
        events: [order.delivered]
      - kind: set
        var: ok
        value: event.data.delivered_at
      - kind: set
        var: bad
        value: event.data.score
    """)
    assert ws.errors() == ["p/sale.yaml:10:23: event 'order.delivered' has no payload field 'score'"]


def test_event_payload_field_inside_wait_for_branches(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait_for
        events: [order.delivered, survey.answered]
        timeout: 1d
        on:
          survey.answered:
            - kind: set
              var: score
              value: event.data.score
        on_timeout:
          - kind: set
            var: late
            value: event.data.delivered_at
    """)
    assert ws.errors() == ["p/sale.yaml:14:27: event 'order.placed' has no payload field 'delivered_at'"]


def test_unknown_event_field(ws: Workspace) -> None:
    ws.sale("""\
      - kind: set
        var: x
        value: event.nam
    """)
    assert ws.errors() == [
        "p/sale.yaml:5:18: unknown event field 'nam' (did you mean 'name'?); an event has name, data and occurred_at",
    ]


def test_unknown_promise_and_promise_field(ws: Workspace) -> None:
    ws.write("delivery.yaml", """\
        playbook: delivery
        steps:
          - kind: if
            when: promises.delivery_dat.state == 'broken' || promises.delivery_date.stat == 'kept'
            then: [{kind: end}]
    """)
    assert ws.errors() == [
        "p/delivery.yaml:4:20: unknown promise 'delivery_dat' (did you mean 'delivery_date'?); "
        "no 'promise' step records it",
        "p/delivery.yaml:4:77: a promise has no field 'stat' (did you mean 'state'?); "
        "it has about, description, expected, state, actual, made_by",
    ]


def test_macro_variables_are_local(ws: Workspace) -> None:
    ws.sale("""\
      - kind: if
        when: "[1, 2].exists(n, n > facts.open_tickets) && [3].all(x, x > 0)"
        then: [{kind: end}]
    """)
    ws.load()


def test_unknown_function(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait
        until: now + dayz(3)
    """)
    assert ws.errors() == ["p/sale.yaml:4:18: unknown function 'dayz' (did you mean 'days'?)"]


# ---------------------------------------------------------------- templates


def test_template_syntax_error_in_the_body(ws: Workspace) -> None:
    ws.write("templates/check_in.txt", "Subject: Hi\n\nHello {{ customer.name }},\n{% if x %}\nbye\n")
    errors = ws.errors()
    assert errors == [
        "p/templates/check_in.txt:4:1: template syntax error: Unexpected end of template. Jinja was "
        "looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs "
        "to be closed is 'if'.",
    ]


def test_template_syntax_error_in_the_subject(ws: Workspace) -> None:
    ws.write("templates/check_in.txt", "Subject: Hi {{ customer.name }\n\nHello\n")
    assert ws.errors() == [
        "p/templates/check_in.txt:1:1: template syntax error: unexpected '}'",
    ]


def test_template_names_are_checked(ws: Workspace) -> None:
    ws.write("templates/check_in.txt", "Subject: Hi {{ customr.name }}\n\n{{ customer.frist_name }}\n"
                                       "{{ facts.tickets }} {{ event.data.nope }}\n")
    assert ws.errors() == [
        "p/templates/check_in.txt:1:1: unknown name 'customr' in template (did you mean 'customer'?); "
        "a template can use customer, event, facts, vars, promises, now, stage",
        "p/templates/check_in.txt:3:1: unknown customer field 'frist_name'",
        "p/templates/check_in.txt:4:1: no event has a payload field 'nope'",
        "p/templates/check_in.txt:4:1: unknown fact 'tickets' (did you mean 'open_tickets'?)",
    ]


def test_template_locals_are_not_unknown_names(ws: Workspace) -> None:
    ws.write("templates/check_in.txt", "{% set n = 3 %}{% for i in range(n) %}{{ i }}{{ loop.index }}{% endfor %}\n")
    ws.load()


# ---------------------------------------------------------------- across files


def test_all_errors_across_files_are_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)
    with pytest.raises(PlaybookLoadError) as info:
        load_project(Path("many/lifecycle.yaml"))
    assert str(info.value).splitlines() == [
        "many/lifecycle.yaml:9:14: channel 'email': 'mail' is not a customer field (did you mean 'email'?)",
        "many/lifecycle.yaml:17:15: unknown fact 'tickets' (did you mean 'open_tickets'?)",
        "many/lifecycle.yaml:29:11: unknown stage 'onboard' (did you mean 'onboarding'?)",
        "many/lifecycle.yaml:33:9: unknown event 'account.closd' (did you mean 'account.closed'?)",
        "many/onboarding.yaml:3:5: missing required field 'template' in send step",
        "many/onboarding.yaml:4:5: unknown field 'tmplate' in send step (did you mean 'template'?)",
        "many/onboarding.yaml:6:15: '2 weeks' is not a duration (examples: 30m, 2d, 1w, 1d12h, P14D)",
        "many/active.yaml:5:11: unknown role 'support'",
        "many/active.yaml:9:15: unknown template 'goodby': no file many/templates/goodby.txt "
        "(did you mean 'goodbye'?)",
        "many/active.yaml:11:12: unknown stage 'closing' (did you mean 'closed'?)",
    ]


def test_playbooks_are_checked_even_when_the_lifecycle_is_invalid(ws: Workspace) -> None:
    ws.lifecycle("lifecycle: fixture", "lifecycle: Fixture")
    ws.write("delivery.yaml", "playbook: delivery\nsteps:\n  - kind: ende\n")
    assert ws.errors() == [
        "p/lifecycle.yaml:2:12: 'Fixture' is not a valid name: use lower_snake_case, e.g. 'fixture'",
        "p/delivery.yaml:3:11: unknown step kind 'ende' (did you mean 'end'?)",
    ]


def test_load_playbook_file_alone(ws: Workspace) -> None:
    assert load_playbook_file(Path("p/sale.yaml")).playbook == "sale"
    ws.write("other.yaml", "playbook: sale\nsteps:\n  - kind: send\n    template: nope\n")
    lifecycle = ws.load().lifecycle
    with pytest.raises(PlaybookLoadError) as info:
        load_playbook_file(Path("p/other.yaml"), lifecycle)
    assert str(info.value) == "p/other.yaml:4:15: unknown template 'nope': no file p/templates/nope.txt"


# ---------------------------------------------------------------- references


def test_references_give_roots_fields_and_columns() -> None:
    assert references("facts.open_tickets > 0 && customer.segment == 'retail'") == [
        ("facts", "open_tickets", 1),
        ("customer", "segment", 27),
    ]


def test_references_skip_macro_variables_and_keep_the_receiver() -> None:
    assert references("promises.exists(p, promises[p].state == 'broken')") == [
        ("promises", None, 1),
        ("promises", None, 20),
    ]


def test_references_follow_whole_chains() -> None:
    [ref] = analyse("event.data.delivered_at").references
    assert ref.names == ("event", "data", "delivered_at")
    assert ref.positions == ((1, 1), (1, 7), (1, 12))


def test_references_list_function_calls() -> None:
    info = analyse("timestamp(customer.warranty_ends) - days(30) > now && customer.name.startsWith('A')")
    assert [(c.name, c.method) for c in info.calls] == [("timestamp", False), ("days", False), ("startsWith", True)]


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("facts.x +", 1, 10, "syntax error: the expression ends too early"),
        ("a $ b", 1, 3, "syntax error: unexpected character '$'"),
        ("a b", 1, 3, "syntax error: unexpected 'b'"),
        ("x &&\n  (y", 2, 5, "syntax error: the expression ends too early"),
        ("   ", 1, 1, "empty expression"),
    ],
)
def test_expression_syntax_errors(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        analyse(source)
    assert (info.value.line, info.value.column, info.value.message) == (line, column, message)


# ---------------------------------------------------------------- lifecycle validate


def test_validate_ok_prints_a_summary_and_exits_0() -> None:
    result = CliRunner().invoke(validate_command, [str(VALID)])
    assert result.exit_code == 0
    assert result.stdout == f"ok {VALID / 'lifecycle.yaml'} (3 stages, 21 steps)\n"


def test_validate_reports_each_error_and_exits_1(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait
        duration: 3 dayz
      - kind: send
    """)
    result = CliRunner().invoke(validate_command, ["p"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "p/sale.yaml:4:15: '3 dayz' is not a duration (examples: 30m, 2d, 1w, 1d12h, P14D)",
        "p/sale.yaml:5:5: missing required field 'template' in send step",
    ]
    assert result.stdout == ""


def test_validate_accepts_a_stage_playbook_file(ws: Workspace) -> None:
    result = CliRunner().invoke(validate_command, ["p/sale.yaml"])
    assert (result.exit_code, result.stdout) == (0, "ok p/lifecycle.yaml (3 stages, 21 steps)\n")


def test_validate_rejects_a_playbook_no_stage_uses(ws: Workspace) -> None:
    ws.write("spare.yaml", "playbook: spare\nsteps:\n  - kind: end\n")
    result = CliRunner().invoke(validate_command, ["p/spare.yaml"])
    assert result.exit_code == 1
    assert result.stderr == "p/spare.yaml:1:1: no stage of p/lifecycle.yaml uses this playbook\n"


def test_validate_mixes_good_and_bad_paths(ws: Workspace) -> None:
    result = CliRunner().invoke(validate_command, ["p/lifecycle.yaml", "missing", "p/templates"])
    assert result.exit_code == 1
    assert result.stdout == "ok p/lifecycle.yaml (3 stages, 21 steps)\n"
    assert result.stderr.splitlines() == [
        "missing: no such file or folder",
        "p/templates: no lifecycle.yaml in this folder",
    ]


def test_validate_as_a_real_command(ws: Workspace) -> None:
    ws.sale("""\
      - kind: wait_for
        events: [survey.answered]
        timout: 3d
    """)
    command = Path(sys.executable).parent / "lifecycle"
    bad = subprocess.run([str(command), "validate", "p"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr == "p/sale.yaml:5:5: unknown field 'timout' in wait_for step (did you mean 'timeout'?)\n"
    assert "Traceback" not in bad.stdout + bad.stderr
    good = subprocess.run([str(command), "validate", str(VALID)], capture_output=True, text=True, timeout=60)
    assert (good.returncode, good.stdout) == (0, f"ok {VALID / 'lifecycle.yaml'} (3 stages, 21 steps)\n")


def test_validate_says_ok_once_for_a_folder_and_its_playbook(ws: Workspace) -> None:
    result = CliRunner().invoke(validate_command, ["p", "p/lifecycle.yaml", "p/sale.yaml"])
    assert (result.exit_code, result.stdout) == (0, "ok p/lifecycle.yaml (3 stages, 21 steps)\n")


def test_validate_never_prints_a_traceback_for_unreadable_input(ws: Workspace) -> None:
    (ws.root / "p" / "lifecycle.yaml").write_bytes(b"\xff\xfe\x00garbage")
    result = CliRunner().invoke(validate_command, ["p"])
    assert result.exit_code == 1
    assert result.stderr == "p/lifecycle.yaml:1:1: the file is not UTF-8 text\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_goto_carries_its_event_into_the_next_stage(ws: Workspace) -> None:
    # delivery is entered by order.delivered, or by the goto after survey.answered arrived.
    ws.sale("""\
      - kind: wait_for
        events: [survey.answered]
      - kind: goto
        stage: delivery
    """)
    ws.write("delivery.yaml", """\
        playbook: delivery
        steps:
          - kind: set
            var: score
            value: event.data.score
          - kind: set
            var: delivered
            value: event.data.delivered_at
          - kind: set
            var: ticket
            value: event.data.ticket_id
    """)
    assert ws.errors() == [
        "p/delivery.yaml:11:23: none of the events order.delivered, survey.answered has a payload "
        "field 'ticket_id'",
    ]


def test_promise_names_are_checked_in_transitions_too(ws: Workspace) -> None:
    ws.lifecycle("    when: facts.open_tickets >= 3", "    when: promises.delivery.state == 'broken'")
    assert ws.errors() == [
        "p/lifecycle.yaml:58:20: unknown promise 'delivery' (did you mean 'delivery_date'?); "
        "no 'promise' step records it",
    ]


def test_a_terminal_stage_with_a_playbook_is_an_error(tmp_path):
    folder = tmp_path / "fast"
    shutil.copytree(Path(__file__).parent / "fixtures" / "fast", folder)
    lifecycle = folder / "lifecycle.yaml"
    lifecycle.write_text(lifecycle.read_text().replace(
        "  closed: {terminal: true}", "  closed: {terminal: true, playbook: referral-request.yaml}"))
    with pytest.raises(PlaybookLoadError) as raised:
        load_project(lifecycle)
    messages = [str(error) for error in raised.value.errors]
    assert any(m.endswith("stage 'closed' is terminal: its playbook would never run") for m in messages)


def test_a_broken_playbook_holds_only_its_own_stage_and_a_stage_whose_files_are_sound_loads(ws: Workspace) -> None:
    ws.write("delivery.yaml", "playbook: delivery\nsteps:\n  - kind: wait_four\n")
    with pytest.raises(PlaybookLoadError) as info:
        ws.load()
    assert sound_bundle(info.value, "sale").playbook.playbook == "sale"
    with pytest.raises(PlaybookLoadError) as held:
        sound_bundle(info.value, "delivery")
    assert held.value.errors and all(error.path == "p/delivery.yaml" for error in held.value.errors)


def test_an_error_in_the_lifecycle_file_holds_every_stage(ws: Workspace) -> None:
    ws.lifecycle("initial_stage: sale", "initial_stage: sale\nbogus_field: 1")
    with pytest.raises(PlaybookLoadError) as info:
        ws.load()
    for stage in ("sale", "delivery"):
        with pytest.raises(PlaybookLoadError):
            sound_bundle(info.value, stage)

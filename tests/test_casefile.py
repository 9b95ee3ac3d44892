"""Playbook test cases: every bundled case passes, and a failing case says why, readably."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from cli.test_cmd import format_result
from engine.casefile import CaseError, load_case, run_cases, same_value

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CASES = sorted((ROOT / "playbooks" / "tests").glob("*.yaml"))
FIXTURE = ROOT / "tests" / "fixtures" / "authoring"

HAPPY = """\
name: a promoter is asked for a referral
customer: {id: c-1, name: Ada, email: ada@example.com, preferred_channel: email, consent: {email: true}}
events:
  - {at: 0d, event: order.placed, data: {order_id: A-1, promised_delivery: 2026-01-15}}
  - {at: 9d, event: order.delivered, data: {delivered_at: 2026-01-14}}
  - {at: 11d, event: survey.answered, data: {score: 10}}
expect:
"""


@pytest.mark.parametrize("path", BUNDLED_CASES, ids=[path.stem for path in BUNDLED_CASES])
def test_bundled_case(path):
    result, = run_cases([path])
    assert result.ok, format_result(result)


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    """A copy of the fixture lifecycle with an empty tests/ folder to write cases into."""
    target = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, target)
    shutil.rmtree(target / "tests")
    (target / "tests").mkdir()
    return target / "tests"


def write(folder: Path, expect: str, name: str = "case.yaml", head: str = HAPPY) -> Path:
    path = folder / name
    path.write_text(head + expect)
    return path


def run(path: Path):
    result, = run_cases([path])
    return result


def test_fixture_case_passes():
    result = CliRunner().invoke(main, ["test", str(FIXTURE / "tests")])
    assert (result.exit_code, result.output) == (0, "ok a promoter is asked for a referral\n1 passed, 0 failed\n")


def test_failing_case_prints_a_diff_and_the_timeline_and_exits_1(cases):
    path = write(cases, "  stages: [sale, check_in]\n  actions: [summary, referral]\n")
    result = CliRunner().invoke(main, ["test", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"FAIL a promoter is asked for a referral ({path})"
    assert "  stages: expected [sale, check_in], got [sale, check_in, closed]" in lines
    assert "      +closed" in lines
    assert "  actions: expected [summary, referral], got [summary, survey, referral]" in lines
    assert "      +survey" in lines
    assert "  actual timeline:" in lines
    assert any("check_in" in line and "message" in line and "[survey]" in line for line in lines)
    assert lines[-1] == "0 passed, 1 failed"


def test_includes_and_excludes(cases):
    ok = write(cases, "  actions: {includes: [referral, summary], excludes: [apology]}\n")
    assert run(ok).ok
    bad = write(cases, "  actions: {includes: [apology], excludes: [referral]}\n", "bad.yaml")
    assert run(bad).failures == [
        "actions: expected to include apology; got [summary, survey, referral]",
        "actions: expected not to include referral; got [summary, survey, referral]",
    ]


def test_promises_ended_and_facts(cases):
    assert run(write(cases, "  promises: {delivery_date: kept}\n  ended: closed\n  facts: {last_score: 10}\n")).ok
    result = run(write(cases, "  promises: {delivery_date: broken, price: kept}\n  ended: null\n"
                              "  facts: {last_score: 9, nope: 1}\n", "bad.yaml"))
    assert result.failures == [
        "promises.delivery_date: expected broken, got kept",
        "promises.price: expected kept, got not made",
        "ended: expected still running, got closed",
        "facts.last_score: expected 9, got 10",
        "facts.nope: expected 1, but there is no such fact",
    ]


def test_a_step_or_stage_the_lifecycle_does_not_have_is_named_as_a_typo(cases):
    result = run(write(cases, "  stages: {includes: [check_in, chek_in]}\n  actions: {excludes: [referal]}\n"
                              "  reminded: {call_bak: 1}\n  channels: {summary: email}\n"))
    assert result.failures[:3] == [
        "stages: no stage 'chek_in' in the lifecycle (did you mean 'check_in'?)",
        "actions: no step 'referal' in the lifecycle (did you mean 'referral'?)",
        "reminded.call_bak: no step 'call_bak' in the lifecycle (did you mean 'call_back'?)",
    ]


def test_a_fact_is_shown_as_a_case_writes_it(cases):
    result = run(write(cases, "  facts: {last_score: 2026-03-01, last_scor: 10}\n"))
    assert result.failures == ["facts.last_score: expected 2026-03-01, got 10",
                               "facts.last_scor: expected 10, but there is no such fact (did you mean 'last_score'?)"]


def test_channels_tell_message_task_and_suppressed_apart(cases):
    head = HAPPY.replace("consent: {email: true}", "consent: {}")
    assert run(write(cases, "  channels: {summary: task, referral: task}\n", head=head)).ok
    result = run(write(cases, "  channels: {summary: email}\n", "bad.yaml", head=head))
    assert result.failures == ["channels.summary: expected email, got task"]


def test_rejected_event_fails_unless_expected(cases):
    head = HAPPY + "  ended: closed\n"
    head = head.replace("  - {at: 11d,", "  - {at: 10d, event: order.delivered, data: {delivered_at: 2026-01-14}}\n"
                                         "  - {at: 11d,")
    result = run(write(cases, "", head=head))
    assert result.failures == ["rejected: expected nothing, got [order.delivered]\n"
                               "    --- expected\n    +++ actual\n    +order.delivered"]
    assert run(write(cases, "  rejected: [order.delivered]\n", "ok.yaml", head=head)).ok


def test_a_customer_held_on_an_incident_fails_the_case_unless_expected(cases):
    template = cases.parent / "templates" / "referral.txt"  # the last send: nothing moves the customer on
    template.write_text("Subject: Hi\n\nYou have {{ 10 // (customer.name | length - 3) }} credits.\n")
    result = run(write(cases, "  ended: null\n"))
    assert len(result.failures) == 1
    assert result.failures[0].startswith("incident: expected none, got held at referral: template 'referral'")
    assert run(write(cases, "  ended: null\n  incident: referral\n", "ok.yaml")).ok


def test_until_stops_the_clock(cases):
    head = HAPPY.replace("  - {at: 9d,", "  - {at: 30d,").replace("  - {at: 11d,", "  - {at: 32d,")
    head = head.replace("events:", "until: 20d\nevents:")
    assert run(write(cases, "  stages: [sale]\n  ended: null\n", head=head)).ok


def test_until_before_the_first_event_is_a_located_error(cases):
    # The first event would still run, after the clock had stopped: a case that checks nothing.
    path = write(cases, "  ended: null\n", head="start: 2026-03-02T09:00:00Z\nuntil: 2026-02-01\n" + HAPPY)
    with pytest.raises(CaseError) as error:
        load_case(path)
    assert str(error.value) == (f"{path}:2:8: 'until' (2026-02-01 00:00) is before the first event "
                                f"(2026-03-02 09:00)")


def test_dates_compare_however_they_are_written():
    assert same_value("2026-01-14", "2026-01-14T00:00:00+00:00")
    from datetime import date
    assert same_value(date(2026, 1, 14), "2026-01-14T00:00:00+00:00")
    assert not same_value("2026-01-14", "2026-01-15T00:00:00+00:00")
    assert not same_value(1, True)


def test_unknown_expectation_is_a_located_one_line_error(cases):
    path = write(cases, "  action: [summary]\n")
    with pytest.raises(CaseError) as error:
        load_case(path)
    assert str(error.value) == f"{path}:8:3: unknown expectation 'action' (did you mean 'actions'?)"
    result = CliRunner().invoke(main, ["test", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"  {path}:8:3: unknown expectation 'action'" in result.output


def test_malformed_event_is_located_at_its_item(cases):
    path = write(cases, "  ended: closed\n", head=HAPPY.replace("{at: 9d,", "{at: 9 dayz,"))
    with pytest.raises(CaseError, match=rf"^{path}:5:5: 'at' '9 dayz' is not a duration"):
        load_case(path)


def test_missing_fields_and_unknown_top_level_field(cases):
    with pytest.raises(CaseError, match="a test case needs 'expect'"):
        load_case(write(cases, "", head=HAPPY.replace("expect:\n", "")))
    with pytest.raises(CaseError, match=r":1:1: unknown field 'nmae' \(did you mean 'name'\?\)"):
        load_case(write(cases, "  ended: closed\n", head="nmae: x\n" + HAPPY))


def test_lifecycle_that_does_not_load_fails_the_case(cases):
    (cases.parent / "templates" / "summary.txt").unlink()
    result = run(write(cases, "  ended: closed\n"))
    assert not result.ok
    assert result.failures[0].startswith("the lifecycle does not load: ")
    assert "unknown template 'summary'" in result.failures[0]


def test_lifecycle_path_is_relative_to_the_case(cases, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write(elsewhere, "  ended: closed\n", head=f"lifecycle: ../playbooks/lifecycle.yaml\n{HAPPY}")
    assert run(path).ok


def test_cli_with_no_cases_is_an_error(tmp_path):
    result = CliRunner().invoke(main, ["test", str(tmp_path)])
    assert (result.exit_code, result.output) == (1, f"error: no test cases (*.yaml) in {tmp_path}\n")


def test_cli_missing_path_is_an_error(tmp_path):
    result = CliRunner().invoke(main, ["test", str(tmp_path / "nope")])
    assert result.exit_code == 1 and result.output.startswith("error: no such file or folder")

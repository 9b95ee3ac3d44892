"""`kind: split`: weighted branches, deterministic per customer and step, recorded, never re-drawn."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.errors import PlaybookLoadError

from engine.graph import stage_graph, to_mermaid
from engine.loader import load_project
from engine.steps import Split
from engine.simulator import ScheduledEvent, simulate
from engine.steps.split import choose
from engine.state import Event

UTC = timezone.utc
START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)

LIFECYCLE = """\
lifecycle: onboarding
channels: {email: {contact: email}}
roles: {account_manager: Owns the relationship.}
events:
  signed.up: {starts_lifecycle: true}
  restarted: {}
initial_stage: welcome
stages:
  welcome: {playbook: welcome.yaml}
  closed: {terminal: true}
transitions:
  - {from: welcome, on: restarted, to: welcome}
"""

WELCOME = """\
playbook: welcome
steps:
  - id: welcome_test
    kind: split
    variants:
      - name: short
        weight: 60
        steps:
          - {id: short_welcome, kind: send, template: note}
      - name: long
        weight: 30
        steps:
          - {id: long_welcome, kind: send, template: note}
          - {id: wait_a_week, kind: wait, duration: 7d}
          - {id: long_follow_up, kind: send, template: note}
    holdout: 10
  - id: after
    kind: wait
    duration: 30d
"""


def project(tmp_path: Path, welcome: str = WELCOME):
    folder = tmp_path / "p"
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "templates" / "note.txt").write_text("Hello\n")
    (folder / "lifecycle.yaml").write_text(LIFECYCLE)
    (folder / "welcome.yaml").write_text(welcome)
    return load_project(folder / "lifecycle.yaml")


def run(project, customer: str, *restarts: int, **options):
    events = [ScheduledEvent(START, Event(customer_id=customer, name="signed.up"))]
    events += [ScheduledEvent(START + timedelta(days=day), Event(customer_id=customer, name="restarted"))
               for day in restarts]
    return simulate(project, {"id": customer, "email": f"{customer}@example.com", "consent": {"email": True}},
                    events, **options)


def branches(timeline) -> list[str]:
    return [record.detail["branch"] for record in timeline.of_kind("split")]


def test_weights_are_respected_over_ten_thousand_customers():
    counts = Counter(choose(f"lifecycle/customer-{number}/welcome/welcome_test", [60, 30, 10])
                     for number in range(10_000))
    assert abs(counts[0] - 6000) < 250 and abs(counts[1] - 3000) < 250 and abs(counts[2] - 1000) < 150


def test_the_choice_is_a_stable_hash_not_a_salted_one():
    # pinned: the same in every process, Python version and machine (hash() is salted per process)
    assert [choose(f"lifecycle/c-{n}/welcome/welcome_test", [1, 1]) for n in range(8)] == \
        [choose(f"lifecycle/c-{n}/welcome/welcome_test", [1, 1]) for n in range(8)]
    assert choose("lifecycle/c-1/welcome/welcome_test", [60, 30, 10]) == 0
    assert choose("lifecycle/c-6/welcome/welcome_test", [60, 30, 10]) == 1
    assert choose("lifecycle/c-3/welcome/welcome_test", [60, 30, 10]) == 2


def test_each_branch_runs_its_steps_and_is_recorded(tmp_path: Path):
    p = project(tmp_path)
    seen = {}
    for number in range(60):
        timeline = run(p, f"c-{number}")
        [branch] = branches(timeline)
        seen[branch] = timeline.steps()
    assert seen == {"short": ["short_welcome"], "long": ["long_welcome", "long_follow_up"], "holdout": []}
    record = run(p, "c-6").of_kind("split")[0]
    assert (record.step, record.detail) == ("welcome_test", {"branch": "long", "kept": False})


def test_the_same_customer_takes_the_same_branch_on_re_entry_and_in_a_second_simulation(tmp_path: Path):
    p = project(tmp_path)
    for number in range(20):
        first = run(p, f"c-{number}", 3, 12)  # the stage is entered three times
        again = run(p, f"c-{number}", 3, 12)
        assert len(set(branches(first))) == 1 and len(branches(first)) == 3
        assert branches(first) == branches(again)
        assert [r.detail["kept"] for r in first.of_kind("split")] == [False, True, True]


def test_a_kept_branch_survives_edited_weights(tmp_path: Path):
    p = project(tmp_path)
    timeline = run(p, "c-6")
    assert branches(timeline) == ["long"]
    edited = project(tmp_path / "edited", WELCOME.replace("weight: 30", "weight: 1"))
    state = timeline.state
    from engine.steps.split import branch_for
    assert branch_for(state, "welcome", "welcome_test", edited.playbooks["welcome"].steps[0].arms()) == ("long", True)


def test_a_split_inside_a_wait_resumes_its_branch_after_continue_as_new(tmp_path: Path):
    p = project(tmp_path)
    for number in range(12):
        plain = run(p, f"c-{number}")
        restarted = run(p, f"c-{number}", continue_as_new=True)
        assert restarted.runs > 1
        assert branches(plain) == branches(restarted) and plain.steps() == restarted.steps()


def test_the_flow_and_the_flowchart_show_every_branch(tmp_path: Path):
    p = project(tmp_path)
    split = p.playbooks["welcome"].steps[0]
    assert isinstance(split, Split)
    assert [way.name for way in split.ways()] == ["short", "long", "holdout"]
    chart = to_mermaid(stage_graph(p, "welcome"))
    assert "short 60%, long 30%, holdout 10%" in chart
    assert '|"holdout"|' in chart and '|"long"|' in chart


@pytest.mark.parametrize(("old", "new", "error"), [
    ("name: long", "name: short", "welcome.yaml:10:15: branch 'short' is named twice"),
    ("weight: 30", "weight: 0", "welcome.yaml:11:17: "),
    ("weight: 30", "weight: -2", "welcome.yaml:11:17: "),
    ("    holdout: 10\n", "", None),
    ("name: long", "name: holdout", "welcome.yaml:10:15: 'holdout' is the name of the hold-out branch"),
])
def test_split_mistakes_are_load_errors_with_their_place(tmp_path: Path, monkeypatch, old, new, error):
    assert old in WELCOME
    monkeypatch.chdir(tmp_path)
    text = WELCOME.replace(old, new)
    if error is None:  # two branches without a hold-out are fine; one is not
        project(Path("."), text)
        text = text[:text.index("      - name: long")] + text[text.index("  - id: after"):]
        error = "welcome.yaml:6:7: a split needs at least two branches (or one and a 'holdout')"
    with pytest.raises(PlaybookLoadError) as info:
        project(Path("."), text)
    messages = [str(e) for e in info.value.errors]
    assert any(message.startswith(f"p/{error}") for message in messages), messages


def test_a_test_case_can_expect_the_branch(tmp_path: Path):
    from engine.casefile import run_cases

    project(tmp_path)
    cases = tmp_path / "p" / "tests"
    cases.mkdir()
    case = """\
name: customer c-6 gets the long welcome
customer: {id: c-6, email: c6@example.com, consent: {email: true}}
events:
  - {at: 0d, event: signed.up}
expect:
  splits: {welcome_test: %s}
  actions: [long_welcome, long_follow_up]
"""
    (cases / "long.yaml").write_text(case % "long")
    (cases / "short.yaml").write_text(case % "short")
    results = {result.path.stem: result for result in run_cases(sorted(cases.glob("*.yaml")))}
    assert results["long"].ok
    assert not results["short"].ok
    assert "splits.welcome_test: expected short, got long" in results["short"].failures


def test_lint_asks_for_an_id_on_a_split(tmp_path: Path):
    from engine.lint import lint_project

    p = project(tmp_path, WELCOME.replace("  - id: welcome_test\n    kind: split", "  - kind: split"))
    warnings = [w for w in lint_project(p) if w.rule == "split-without-id"]
    assert [(Path(w.path).name, w.line) for w in warnings] == [("welcome.yaml", 3)]
    assert not [w for w in lint_project(project(tmp_path / "with-id")) if w.rule == "split-without-id"]


def notices(timeline):
    return [action for action in timeline.actions if action.kind == "notice"]


def test_the_first_assignment_tells_operators_once_with_the_branch_and_why(tmp_path: Path):
    timeline = run(project(tmp_path), "c-6")  # the long branch (pinned above)
    notice, *messages = timeline.actions
    assert [action.kind for action in messages] == ["message", "message"]  # told before the branch runs
    assert notice.kind == "notice" and notice.step == "welcome_test"
    assert notice.title == "Split welcome_test: branch long"
    assert notice.id == "lifecycle/c-6/welcome/1/welcome_test/split@long"  # a retry is the same notice
    guideline = notice.guideline or ""
    assert "short 60 (60%), long 30 (30%), holdout 10 (10%)" in guideline and "stable hash" in guideline
    assert (notice.channel, notice.to, notice.body) == (None, None, "")  # for operators, never the customer
    assert timeline.steps() == ["long_welcome", "long_follow_up"]  # a notice is not a step of the playbook


def test_a_hold_out_is_a_decision_too(tmp_path: Path):
    timeline = run(project(tmp_path), "c-3")  # the hold-out (pinned above): no message, one notice
    assert [(action.kind, action.title) for action in timeline.actions] == [
        ("notice", "Split welcome_test: branch holdout")]


def test_a_re_entry_keeps_the_branch_on_the_timeline_without_a_second_notice(tmp_path: Path):
    p = project(tmp_path)
    timeline = run(p, "c-6", 3, 12)  # the stage is entered three times
    assert [r.detail["kept"] for r in timeline.of_kind("split")] == [False, True, True]
    assert [action.title for action in notices(timeline)] == ["Split welcome_test: branch long"]
    assert timeline.steps().count("long_welcome") == 3  # each entry ran the branch
    # Continue-as-new inside the branch does not decide again, so it does not tell again.
    assert notices(run(p, "c-6", 3, 12, continue_as_new=True)) == notices(timeline)


def test_a_branch_removed_from_the_playbook_is_a_new_decision_and_a_new_notice(tmp_path: Path):
    from engine.steps.split import branch_for

    timeline = run(project(tmp_path), "c-6")
    edited = project(tmp_path / "edited", WELCOME.replace("name: long", "name: longer"))
    arms = edited.playbooks["welcome"].steps[0].arms()
    name, kept = branch_for(timeline.state, "welcome", "welcome_test", arms)
    assert not kept and name != "long"  # so `run` acts its notice (kept is what it goes by)


def test_a_history_from_before_split_notices_acts_only_on_messages(tmp_path: Path, monkeypatch):
    from engine.simulator import VirtualRuntime
    from engine.steps.split import SPLIT_NOTICES

    p = project(tmp_path)
    noticed = run(p, "c-6")
    monkeypatch.setattr(VirtualRuntime, "patched", lambda self, change: change != SPLIT_NOTICES)
    timeline = run(p, "c-6")
    assert notices(timeline) == [] and timeline.actions == noticed.actions[1:]
    assert timeline.records == noticed.records  # the timeline is the same either way


def test_a_notice_that_cannot_be_delivered_is_recorded_and_the_branch_still_runs(tmp_path: Path, monkeypatch):
    from engine.simulator import VirtualRuntime
    from engine.state import ActionResult

    async def act(self, actions):
        self.actions.extend(actions)
        return [ActionResult(status="failed", detail="webhook answered 500") if action.kind == "notice"
                else ActionResult(status="done") for action in actions]

    monkeypatch.setattr(VirtualRuntime, "act", act)
    timeline = run(project(tmp_path), "c-6")
    [failed] = timeline.of_kind("failed")
    assert (failed.step, failed.detail) == (
        "welcome_test", {"branch": "long", "error": "notice: webhook answered 500"})
    assert timeline.steps() == ["long_welcome", "long_follow_up"]


def test_lifecycle_simulate_json_shows_the_notice(tmp_path: Path):
    import json

    from click.testing import CliRunner

    from cli.simulate import simulate_command

    project(tmp_path)
    customer = tmp_path / "customer.yaml"
    customer.write_text("{id: c-6, email: c6@example.com, consent: {email: true}}\n")
    events = tmp_path / "events.yaml"
    events.write_text("events:\n  - {at: 0d, event: signed.up}\n")
    result = CliRunner().invoke(simulate_command, [str(tmp_path / "p"), "--customer", str(customer),
                                                   "--events", str(events), "--json", "--until", "60d"])
    assert result.exit_code == 0, result.output
    actions = json.loads(result.stdout)["actions"]
    assert [(a["kind"], a.get("title")) for a in actions if a["kind"] == "notice"] == [
        ("notice", "Split welcome_test: branch long")]

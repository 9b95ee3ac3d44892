"""`lifecycle lint`: each rule on a small project that trips it, ignores, and the CLI contract."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from engine.lint import RULES, LintWarning, ignored_rules, lint_project
from engine.loader import load_project

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "authoring"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A private copy of the clean fixture lifecycle, for a test to break in one place."""
    target = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path.name}"
    path.write_text(text.replace(old, new))


def lint(folder: Path) -> list[LintWarning]:
    return lint_project(load_project(folder / "lifecycle.yaml"))


def rules(folder: Path) -> list[str]:
    return [warning.rule for warning in lint(folder)]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_fixture_lints_clean(project_dir):
    assert lint(project_dir) == []


def test_bundled_playbooks_lint_clean():
    warnings = lint(ROOT / "playbooks")
    assert [str(w) for w in warnings] == []


def test_step_after_an_if_whose_every_branch_leaves_is_unreachable(project_dir):
    playbook = project_dir / "check-in.yaml"
    edit(playbook, "    then:\n", "    else:\n      - {kind: goto, stage: closed}\n    then:\n")
    edit(playbook, "          guideline: Only if the customer is happy.\n",
         "          guideline: Only if the customer is happy.\n      - {kind: end, outcome: closed}\n")
    # the `if` now always leaves: the `goto done` after it never runs
    warnings = [w for w in lint(project_dir) if w.rule == "unreachable-step"]
    assert len(warnings) == 1
    assert warnings[0].line == line_of(playbook, "- kind: goto") and warnings[0].column == 5


def test_step_after_an_end_inside_a_branch_is_unreachable(project_dir):
    edit(project_dir / "check-in.yaml", "      - kind: send\n        id: referral",
         "      - {kind: end, outcome: closed}\n      - kind: send\n        id: referral")
    # the loader reports a step right after end/goto as an error; lint never sees it
    with pytest.raises(Exception, match="never runs"):
        lint(project_dir)


def test_stage_nobody_can_reach(project_dir):
    lifecycle = project_dir / "lifecycle.yaml"
    edit(lifecycle, "  lost: {terminal: true}\n", "  lost: {terminal: true}\n  archived: {terminal: true}\n")
    warning, = lint(project_dir)
    assert (warning.rule, warning.line, warning.column) == ("unreachable-stage", line_of(lifecycle, "archived:"), 3)
    assert "'archived'" in warning.message


def test_stage_with_no_way_out(project_dir):
    edit(project_dir / "check-in.yaml", "  - kind: goto\n    id: done\n    stage: closed\n", "")
    edit(project_dir / "lifecycle.yaml", "  closed: {terminal: true}\n", "")
    # only the '*' transition to `lost` leaves check_in, which does not count as a way out
    assert rules(project_dir) == ["dead-end-stage"]


def test_declared_event_nobody_uses(project_dir):
    lifecycle = project_dir / "lifecycle.yaml"
    edit(lifecycle, "  customer.lost:\n", "  referral.made:\n    payload: {name: string}\n  customer.lost:\n")
    warning, = lint(project_dir)
    assert (warning.rule, warning.line) == ("unused-event", line_of(lifecycle, "referral.made:"))


def test_event_with_updates_counts_as_used(project_dir):
    edit(project_dir / "lifecycle.yaml", "  customer.lost:\n",
         "  ticket.opened:\n    payload: {id: string}\n    updates: {last_score: facts.last_score}\n"
         "  customer.lost:\n")
    assert rules(project_dir) == []


def test_wait_for_an_event_a_transition_takes_first(project_dir):
    edit(project_dir / "lifecycle.yaml", "  - from: \"*\"\n",
         "  - from: check_in\n    on: survey.answered\n    to: closed\n  - from: \"*\"\n")
    warning, = lint(project_dir)
    assert warning.rule == "wait-interrupted"
    assert warning.line == line_of(project_dir / "check-in.yaml", "events: [survey.answered]")
    assert "moves the customer to 'closed'" in warning.message


def test_guarded_transition_does_not_make_the_wait_unreachable(project_dir):
    edit(project_dir / "lifecycle.yaml", "  - from: \"*\"\n",
         "  - from: check_in\n    on: survey.answered\n    to: closed\n    when: event.data.score < 3\n"
         "  - from: \"*\"\n")
    assert rules(project_dir) == []


def test_wait_for_without_timeout(project_dir):
    playbook = project_dir / "check-in.yaml"
    edit(playbook, "    timeout: 7d\n    on_timeout:\n      - kind: task\n        id: call_back\n"
                   "        role: account_manager\n        title: Call the customer\n"
                   "        guideline: Ask how it went; listen first.\n", "")
    warning, = lint(project_dir)
    assert (warning.rule, warning.line) == ("wait-without-timeout", line_of(playbook, "kind: wait_for"))


def test_task_waiting_for_completion_without_due(project_dir):
    edit(project_dir / "check-in.yaml", "        guideline: Ask how it went; listen first.\n",
         "        guideline: Ask how it went; listen first.\n        on_done:\n"
         "          - {kind: set, var: called, value: 'true'}\n")
    assert rules(project_dir) == ["wait-without-timeout"]


def test_send_on_preferred_channel_without_otherwise(project_dir):
    playbook = project_dir / "sale.yaml"
    edit(playbook, "    otherwise:\n      role: account_manager\n      title: Read the order summary to the customer\n"
                   "      guideline: Repeat every promise, in the customer's words.\n", "")
    warning, = lint(project_dir)
    assert warning.rule == "preferred-without-otherwise"
    assert (warning.path, warning.line) == (str(playbook), line_of(playbook, "kind: send"))


def test_send_on_a_named_channel_needs_no_otherwise(project_dir):
    edit(project_dir / "sale.yaml", "    otherwise:\n      role: account_manager\n"
                                    "      title: Read the order summary to the customer\n"
                                    "      guideline: Repeat every promise, in the customer's words.\n",
         "    channel: email\n")
    assert rules(project_dir) == []


def test_marketing_send_outside_any_if(project_dir):
    edit(project_dir / "sale.yaml", "    template: summary\n", "    template: summary\n    category: marketing\n")
    assert rules(project_dir) == ["unguarded-marketing"]


def test_template_reading_a_field_no_current_event_has(project_dir):
    template = project_dir / "templates" / "summary.txt"
    template.write_text("Subject: Your order\n\nDelivered on {{ event.data.delivered_at }}.\n")
    warning, = lint(project_dir)
    assert warning.rule == "template-event-field"
    assert (warning.path, warning.line, warning.column) == (str(template), 3, 28)
    assert "order.placed" in warning.message


def test_template_field_of_the_event_that_entered_the_stage_is_fine(project_dir):
    # apology.txt reads event.data.delivered_at in check_in, entered by order.delivered
    assert "{{ event.data.delivered_at }}" in (project_dir / "templates" / "apology.txt").read_text()
    assert rules(project_dir) == []


def test_template_field_after_a_wait_for_comes_from_the_awaited_event(project_dir):
    edit(project_dir / "check-in.yaml", "        template: referral\n", "        template: survey\n")
    (project_dir / "templates" / "survey.txt").write_text("You gave us {{ event.data.score }}.\n")
    # survey.txt is sent before the wait (event: order.delivered, no score) and after it
    # (survey.answered or the timeout): some event there has `score`, so no warning
    assert rules(project_dir) == []


def test_goto_carries_the_event_into_the_next_stage(project_dir):
    edit(project_dir / "lifecycle.yaml", "  closed: {terminal: true}\n",
         "  thanks: {playbook: thanks.yaml}\n  closed: {terminal: true}\n")
    edit(project_dir / "check-in.yaml", "    stage: closed\n", "    stage: thanks\n")
    (project_dir / "thanks.yaml").write_text(
        "playbook: thanks\nsteps:\n  - {kind: send, template: thanks, channel: email}\n"
        "  - {kind: goto, stage: closed}\n")
    template = project_dir / "templates" / "thanks.txt"
    # at check_in's goto, `event` is survey.answered (or order.delivered after the timeout)
    template.write_text("You gave us {{ event.data.score }}.\n")
    assert rules(project_dir) == []
    template.write_text("You gave us {{ event.data.score }}.\n{{ event.data.reason }}\n")
    warning, = lint(project_dir)
    assert (warning.rule, warning.line) == ("template-event-field", 2)
    assert "(order.delivered, survey.answered) has a field 'reason'" in warning.message


def test_ignore_comment_on_the_line_or_the_line_above(project_dir):
    lifecycle = project_dir / "lifecycle.yaml"
    edit(lifecycle, "  lost: {terminal: true}\n",
         "  lost: {terminal: true}\n  archived: {terminal: true}  # lint: ignore[unreachable-stage]\n"
         "  # kept for old records  lint: ignore[unreachable-stage]\n  retired: {terminal: true}\n")
    assert rules(project_dir) == []


def test_ignore_comment_for_another_rule_does_not_silence(project_dir):
    edit(project_dir / "lifecycle.yaml", "  lost: {terminal: true}\n",
         "  lost: {terminal: true}\n  archived: {terminal: true}  # lint: ignore[unused-event]\n")
    assert rules(project_dir) == ["unreachable-stage"]


def test_ignored_rules_reads_several_ids():
    text = "a: 1\n# lint: ignore[unused-event, dead-end-stage]\nb: 2\n"
    assert ignored_rules(text, 3) == {"unused-event", "dead-end-stage"}
    assert ignored_rules(text, 1) == set()


def test_every_rule_is_documented():
    guide = (ROOT / "docs" / "authoring.md").read_text()
    assert [rule for rule in RULES if f"`{rule}`" not in guide] == []


# ---------------------------------------------------------------- CLI


def test_cli_prints_located_warnings_and_exits_1(project_dir):
    edit(project_dir / "sale.yaml", "    template: summary\n", "    template: summary\n    category: marketing\n")
    result = CliRunner().invoke(main, ["lint", str(project_dir)])
    assert result.exit_code == 1
    line = line_of(project_dir / "sale.yaml", "kind: send")
    assert f"{project_dir / 'sale.yaml'}:{line}:5: warning: marketing send 'summary' is not inside an 'if'" \
        in result.output
    assert result.output.splitlines()[0].endswith("[unguarded-marketing]")


def test_cli_warn_only_exits_0(project_dir):
    edit(project_dir / "sale.yaml", "    template: summary\n", "    template: summary\n    category: marketing\n")
    result = CliRunner().invoke(main, ["lint", "--warn-only", str(project_dir / "lifecycle.yaml")])
    assert result.exit_code == 0
    assert "[unguarded-marketing]" in result.output


def test_cli_clean_project_exits_0(project_dir):
    result = CliRunner().invoke(main, ["lint", str(project_dir)])
    assert (result.exit_code, result.output) == (0, "")


def test_cli_project_that_does_not_load_gives_located_errors(project_dir):
    edit(project_dir / "sale.yaml", "    template: summary\n", "    template: sumary\n")
    result = CliRunner().invoke(main, ["lint", str(project_dir)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"{project_dir / 'sale.yaml'}:" in result.output and "unknown template 'sumary'" in result.output

"""`from: "*"` with `except`: which stages a wildcard transition leaves, checked, drawn and linted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent

import pytest

from engine.errors import PlaybookLoadError
from engine.graph import lifecycle_graph, to_dot, to_mermaid
from engine.lint import lint_project
from engine.loader import load_project
from engine.model import Transition
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event

START = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)

# An account-health lifecycle: a health drop moves a customer to at_risk from anywhere, where an
# account manager gets one call task and the stage waits for the health to recover.
LIFECYCLE = """\
lifecycle: health
channels: {email: {contact: email}}
roles: {account_manager: Calls customers at risk.}
events:
  account.opened: {starts_lifecycle: true}
  health.dropped: {payload: {score: int!}}
  health.recovered: {}
  customer.lost: {}
initial_stage: active
stages:
  active: {playbook: active.yaml}
  at_risk: {playbook: at-risk.yaml}
  onboarding: {}
  lost: {terminal: true}
transitions:
  - from: "*"
    except: [at_risk]
    on: health.dropped
    to: at_risk
  - {from: at_risk, on: health.recovered, to: active}
  - {from: "*", on: customer.lost, to: lost}
templates: templates
"""
ACTIVE = """\
playbook: active
steps:
  - {id: watch, kind: wait, duration: 30d}
"""
AT_RISK = """\
playbook: at_risk
steps:
  - id: call_at_risk_customer
    kind: task
    role: account_manager
    title: Call the customer whose health dropped
    guideline: Ask what changed; listen first.
    due: 2d
  - {id: give_it_time, kind: wait, duration: 30d}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    root = Path("p")
    (root / "templates").mkdir(parents=True)
    (root / "lifecycle.yaml").write_text(LIFECYCLE)
    (root / "active.yaml").write_text(ACTIVE)
    (root / "at-risk.yaml").write_text(AT_RISK)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def load_errors(folder: Path) -> list[str]:
    with pytest.raises(PlaybookLoadError) as info:
        load_project(folder / "lifecycle.yaml")
    return [str(error) for error in info.value.errors]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def run(folder: Path, *events: tuple[str, str, dict]):
    project = load_project(folder / "lifecycle.yaml")
    scheduled = [ScheduledEvent(START + timedelta(days=float(at.rstrip("d"))),
                                Event(customer_id="c-1", name=name, data=data)) for at, name, data in events]
    return simulate(project, {"id": "c-1"}, scheduled, until=START + timedelta(days=60))


# ---------------------------------------------------------------- matching


def test_a_wildcard_applies_everywhere_but_the_excepted_stages():
    transition = Transition.model_validate({"from": "*", "except": "at_risk", "on": "a.b", "to": "at_risk"})
    assert transition.except_ == ["at_risk"]
    assert transition.applies_in("active") and transition.applies_in("onboarding")
    assert not transition.applies_in("at_risk")


def test_a_plain_wildcard_includes_its_own_target():
    transition = Transition.model_validate({"from": "*", "on": "a.b", "to": "at_risk"})
    assert transition.applies_in("at_risk")


def test_a_second_drop_in_the_excepted_target_is_refused_and_creates_no_second_task(folder):
    timeline = run(folder, ("0d", "account.opened", {}), ("1d", "health.dropped", {"score": 3}),
                   ("2d", "health.dropped", {"score": 2}))
    assert timeline.stages() == ["active", "at_risk"]
    assert timeline.steps() == ["call_at_risk_customer"]
    second = timeline.receipts[-1][1]
    assert (second.status, second.code) == ("rejected", "stage_cannot_take")


def test_without_except_a_second_drop_restarts_the_stage_and_repeats_the_task(folder):
    edit(folder / "lifecycle.yaml", "    except: [at_risk]\n", "")
    timeline = run(folder, ("0d", "account.opened", {}), ("1d", "health.dropped", {"score": 3}),
                   ("2d", "health.dropped", {"score": 2}))
    assert timeline.stages() == ["active", "at_risk", "at_risk"]
    assert timeline.steps() == ["call_at_risk_customer", "call_at_risk_customer"]


def test_the_drop_still_moves_the_customer_after_leaving_the_excepted_stage(folder):
    timeline = run(folder, ("0d", "account.opened", {}), ("1d", "health.dropped", {"score": 3}),
                   ("5d", "health.recovered", {}), ("9d", "health.dropped", {"score": 4}))
    assert timeline.stages() == ["active", "at_risk", "active", "at_risk"]


# ---------------------------------------------------------------- load checks


def test_an_unknown_excepted_stage_is_located_with_a_suggestion(folder):
    edit(folder / "lifecycle.yaml", "except: [at_risk]", "except: [at_rsk]")
    errors = load_errors(folder)
    assert errors == [f"p/lifecycle.yaml:{line_of(folder / 'lifecycle.yaml', 'at_rsk')}:14: "
                      "unknown stage 'at_rsk' (did you mean 'at_risk'?)"]


def test_except_without_a_wildcard_is_a_load_error(folder):
    edit(folder / "lifecycle.yaml", '  - from: "*"\n    except', "  - from: [active, onboarding]\n    except")
    errors = load_errors(folder)
    assert len(errors) == 1
    assert "'except' needs from: '*'" in errors[0]
    assert errors[0].startswith("p/lifecycle.yaml:")


def test_excepting_a_terminal_stage_or_one_stage_twice_is_a_load_error(folder):
    edit(folder / "lifecycle.yaml", "except: [at_risk]", "except: [at_risk, lost, at_risk]")
    errors = load_errors(folder)
    assert any("stage 'lost' is terminal: '*' never includes it" in e for e in errors)
    assert any("stage 'at_risk' is listed twice" in e for e in errors)


def test_excepting_every_stage_means_the_transition_never_fires(folder):
    edit(folder / "lifecycle.yaml", "except: [at_risk]", "except: [at_risk, active, onboarding]")
    errors = load_errors(folder)
    assert len(errors) == 1
    assert "this transition never fires: 'except' leaves out every non-terminal stage" in errors[0]


def test_a_transition_after_an_unguarded_wildcard_counts_only_the_stages_it_covers(folder):
    # The wildcard does not cover at_risk, so a transition from at_risk on the same event can fire.
    edit(folder / "lifecycle.yaml", "  - {from: at_risk, on: health.recovered, to: active}\n",
         "  - {from: at_risk, on: health.recovered, to: active}\n"
         "  - {from: at_risk, on: health.dropped, to: onboarding}\n")
    assert load_project(folder / "lifecycle.yaml").lifecycle.transitions[2].to == "onboarding"
    edit(folder / "lifecycle.yaml", "    except: [at_risk]\n", "")
    assert any("this transition never fires" in e for e in load_errors(folder))


# ---------------------------------------------------------------- graph and lint


def test_the_graph_draws_a_box_for_every_stage_but_the_excepted_ones(folder):
    graph = lifecycle_graph(load_project(folder / "lifecycle.yaml"))
    mermaid = to_mermaid(graph)
    assert 'state "any stage except at_risk" as any_stage_except_at_risk' in mermaid
    assert "any_stage_except_at_risk --> at_risk: health.dropped" in mermaid
    assert 'state "any stage" as any_stage' in mermaid
    assert "any_stage --> lost: customer.lost" in mermaid
    assert "class any_stage_except_at_risk,any_stage anystage" in mermaid
    assert '"any stage except at_risk"' in to_dot(graph)


def test_lint_flags_a_wildcard_that_restarts_its_target_and_not_one_that_excepts_it(folder):
    def restarts():
        return [w for w in lint_project(load_project(folder / "lifecycle.yaml"))
                if w.rule == "wildcard-restarts-target"]

    assert restarts() == []
    edit(folder / "lifecycle.yaml", "    except: [at_risk]\n", "")
    warnings = restarts()
    assert len(warnings) == 1
    assert warnings[0].line == line_of(folder / "lifecycle.yaml", 'from: "*"')
    assert "add except: [at_risk]" in warnings[0].message


def test_a_wait_in_the_excepted_stage_is_not_reported_as_interrupted(folder):
    edit(folder / "at-risk.yaml", "  - {id: give_it_time, kind: wait, duration: 30d}\n",
         "  - {id: next_drop, kind: wait_for, events: [health.dropped], timeout: 30d}\n")
    assert "wait-interrupted" not in [w.rule for w in lint_project(load_project(folder / "lifecycle.yaml"))]
    edit(folder / "lifecycle.yaml", "    except: [at_risk]\n", "")
    assert "wait-interrupted" in [w.rule for w in lint_project(load_project(folder / "lifecycle.yaml"))]


def test_the_bundled_lifecycle_means_what_it_meant():
    lifecycle = load_project(Path(__file__).resolve().parent.parent / "playbooks" / "lifecycle.yaml").lifecycle
    lost = next(t for t in lifecycle.transitions if t.on == "customer.lost")
    assert all(lost.applies_in(stage) for stage, spec in lifecycle.stages.items() if not spec.terminal)

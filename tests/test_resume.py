"""A stage can stop in the middle and go on in a new run (continue-as-new): same timeline.

The simulator's `continue_as_new` stops the lifecycle at every new wait, sends its state
through JSON into a new machine, and goes on, as the workflow does when Temporal suggests
continue-as-new inside a months-long wait.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.casefile import discover, load_case
from engine.loader import load_project
from engine.simulator import simulate

PLAYBOOKS = Path(__file__).parent.parent / "playbooks"
CASES = discover([PLAYBOOKS / "tests"])


def comparable(timeline) -> tuple:
    return ([record.model_dump(mode="json") for record in timeline.records],
            [action.model_dump(mode="json") for action in timeline.actions],
            timeline.state.model_dump(mode="json", exclude={"timeline"}))


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_a_bundled_case_runs_the_same_when_every_wait_continues_in_a_new_run(path: Path):
    case = load_case(path)
    project = load_project(case.lifecycle)
    straight = simulate(project, case.customer, case.events, until=case.until)
    resumed = simulate(project, case.customer, case.events, until=case.until, continue_as_new=True)
    assert comparable(resumed) == comparable(straight)
    assert straight.batches == resumed.batches


def test_every_wait_of_a_case_really_continued_in_a_new_run():
    case = load_case(PLAYBOOKS / "tests" / "happy-path-referral.yaml")
    project = load_project(case.lifecycle)
    assert simulate(project, case.customer, case.events, until=case.until).runs == 1
    resumed = simulate(project, case.customer, case.events, until=case.until, continue_as_new=True)
    assert resumed.runs >= 4


def test_a_held_step_is_still_held_in_a_new_run_and_a_release_there_goes_on_the_same():
    from test_interpreter import CUSTOMER, GATED, at, delivered, placed, project, release

    events = [placed(), delivered(8), at(9, "survey.answered", score=10), release(10, "retry")]
    straight = simulate(project(delivery=GATED), CUSTOMER, events)
    resumed = simulate(project(delivery=GATED), CUSTOMER, events, continue_as_new=True)
    assert resumed.runs > straight.runs
    assert comparable(resumed) == comparable(straight)
    assert [r.kind for r in resumed.records].count("incident") == 1

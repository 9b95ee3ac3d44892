"""A differential check for speed work on the engine: everything `simulate` produced, as JSON.

    python -m bench.simulator_snapshot before.json      # on the code before a change
    python -m bench.simulator_snapshot after.json       # after it
    cmp before.json after.json                          # a faster engine must give the same bytes

It covers the simulator benchmark's scenario (72 customers: on time and late deliveries), six of
them again with continue-as-new at every wait, and every case of playbooks/tests with and without
continue-as-new: timeline, actions, batches, receipts and the whole final state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.simulator import BUNDLED, YEAR, customer, year_of_events
from engine.casefile import discover, load_case
from engine.loader import load_project
from engine.project import Project
from engine.scenario import DEFAULT_HORIZON, DEFAULT_START
from engine.simulator import Timeline, simulate

CASES = Path(__file__).resolve().parent.parent / "playbooks" / "tests"


def snapshot(timeline: Timeline) -> dict[str, Any]:
    """One simulation as JSON: what `Timeline.to_json` shows, and the rest of what came out."""
    shown = timeline.to_json()
    shown.update(
        state=timeline.state.model_dump(mode="json"),
        batches=timeline.batches,
        runs=timeline.runs,
        stopped_at=timeline.stopped_at.isoformat() if timeline.stopped_at else None,
        receipts=[receipt.model_dump(mode="json") for _, receipt in timeline.receipts],
    )
    return shown


def snapshots() -> list[dict[str, Any]]:
    """Every simulation of the check, in a fixed order."""
    project = load_project(BUNDLED)
    until = DEFAULT_START + YEAR
    found = [snapshot(simulate(project, customer(n), year_of_events(n), until=until)) for n in range(72)]
    found += [snapshot(simulate(project, customer(n), year_of_events(n), until=until, continue_as_new=True))
              for n in range(6)]
    projects: dict[Path, Project] = {}
    for path in discover([CASES]):
        case = load_case(path)
        key = case.lifecycle.resolve()
        if key not in projects:
            projects[key] = load_project(case.lifecycle)
        case_until = case.until or min(item.at for item in case.events) + DEFAULT_HORIZON
        for restarts in (False, True):
            found.append(snapshot(simulate(projects[key], case.customer, case.events, until=case_until,
                                           continue_as_new=restarts)))
    return found


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.simulator_snapshot OUT.json")
    found = snapshots()
    Path(sys.argv[1]).write_text(json.dumps(found, indent=1))
    print(f"{len(found)} simulations written to {sys.argv[1]}")


if __name__ == "__main__":
    main()

"""What every step kind is: the `Step` base model and the protocol each kind implements.

A step kind is one module in engine.steps holding one subclass of `Step`. The subclass is
its pydantic model (the YAML fields, hence the JSON Schema) and answers everything the rest
of the engine asks about the kind, so no analysis needs a list of kinds:

- `check`: its load-time checks (engine.checks walks the playbook and calls it);
- `run`: what it does at run time, given the `StageRun` (engine.interpreter), which keeps
  the loop, resuming, incidents and the shared helpers (`value`, `condition`, `deadline`,
  `pause`, `act`, `record`); `prepare` when it acts at once and can be batched with the
  sends and tasks next to it;
- `branches`, `ways`, `keeps_event`: the nested step lists and the control flow through
  it (engine.walk, engine.flow: what checks, lint and the flowchart follow);
- `describe`, `way_text`: its box and the labels of its ways in the stage flowchart;
- `lint`, `guards`, and what other analyses look up across a playbook: `stage_edge`
  (a goto or an end), `templates`, `events_waited`, `vars_set`, `promise_made`.

`check`, `run` and `describe` have no default; the rest default to a step that runs and
goes on to the next one. tests/test_step_kinds.py holds every registered kind to this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import Field

from engine.fields import Name, Strict
from engine.flow import Events, Way
from engine.walk import DataPath

if TYPE_CHECKING:
    from engine.interpreter import Effect, StageRun
    from engine.model import EventSpec, Lifecycle

# Where a nested step list sits under its step, as written in YAML: ("then",),
# ("elif", 0, "then"), ("on", "survey.answered").
BranchLabel = tuple[str | int, ...]

# An example list of steps, shown in the JSON Schema next to fields that hold steps.
STEPS_EXAMPLE = [{"kind": "send", "template": "apology", "channel": "preferred"}]

LABEL_LIMIT = 60  # longer texts are cut in diagrams: a diagram is for the shape, the YAML for detail


def short(text: Any) -> str:
    """A text on one line, cut to LABEL_LIMIT characters, for a diagram label."""
    text = " ".join(str(text).split())
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"


class Checks(Protocol):
    """What a step's checks see of the stage playbook they are in (engine.checks.PlaybookChecker)."""

    lifecycle: Lifecycle
    events: dict[str, EventSpec]  # every declared and built-in event
    promises: Any  # names recorded by `promise` steps (a dict name → about), None: unknown
    templates: set[str]
    templates_folder: str
    var_kinds: dict[str, str]
    gotos: list[tuple[str, Events]]  # (target, events at the goto), for `stage_events`

    def error(self, path: DataPath, message: str, key: bool = False) -> None: ...

    def expression(self, path: DataPath, source: str, events: Events,
                   expect: tuple[str, str] | None = None) -> None: ...

    def span(self, path: DataPath, value: Any, events: Events, role: str | None = None) -> None: ...

    def role(self, path: DataPath, role: str) -> None: ...

    def template(self, path: DataPath, name: str) -> None: ...

    def channel(self, path: DataPath, name: str) -> None: ...


class Lint(Protocol):
    """What a step's lint rules see of the stage playbook they are in (engine.lint)."""

    stage: str
    interrupting: dict[str, str]  # event → target stage of the unguarded transitions leaving it

    def warn(self, path: DataPath, rule: str, message: str) -> None: ...


class Step(Strict):
    """Fields every step has, and the protocol of a step kind (see the module docstring)."""

    id: Name | None = Field(
        None, description="Stable step id, used in action ids, logs and tests. Defaults to its path.",
        examples=["check_delivery_date"],
    )
    note: str = Field(
        "", description="A comment for humans; not executed.",
        examples=["Best practice: check in within two days of delivery."],
    )

    guards: ClassVar[bool] = False
    """Whether the steps nested in it run only when a condition holds (lint: a guarded marketing send)."""

    # ------------------------------------------------------------ required

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        """Report what this step references that the lifecycle lacks, through `playbook`."""
        raise NotImplementedError(f"step kind '{type(self).__name__}' has no load-time checks")

    async def run(self, stage: StageRun, path: str) -> None:
        """Do what the step does; raise engine.exits.StepFailed to hold the customer here."""
        raise NotImplementedError(f"step kind '{type(self).__name__}' cannot run")

    def describe(self) -> tuple[str, list[str]]:
        """Its box in the stage flowchart: a shape (engine.graph.Shape) and the lines under its id."""
        raise NotImplementedError(f"step kind '{type(self).__name__}' has no description")

    # ------------------------------------------------------------ defaults: run, then go on

    def prepare(self, stage: StageRun, path: str) -> list[Effect] | None:
        """The effects of a step that acts at once and never waits, to batch with its neighbours;
        None for a step that must run on its own."""
        return None

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        """Every nested step list with its label, empty ones included, in the order shown.

        The one place the step tree's shape is declared: engine.walk walks it for every
        analysis and for the interpreter's resume.
        """
        return []

    def ways(self) -> list[Way]:
        """The ways the run can take through the step, in the order written; none when it always
        leaves the stage. Lint's unreachable steps, the flowchart and the event flow follow them."""
        return [Way("")]

    def keeps_event(self) -> bool:
        """Whether the event current before it may still be current after it, whichever way it went.

        After a step with no way on (a goto, an end) nothing runs, but the steps written after
        it are checked with the same events.
        """
        return not self.ways()

    def way_text(self, way: Way) -> str:
        """The text on the flowchart edge of one of its ways."""
        return way.name

    def lint(self, linter: Lint, path: DataPath, guarded: bool) -> None:
        """Warn about what loads and runs but is probably not meant; `guarded`: inside an `if`."""

    def stage_edge(self) -> tuple[str | None, str] | None:
        """(target stage, or None for the end of the lifecycle; label) when it leaves the stage."""
        return None

    def goes_to(self) -> str | None:
        """The stage it moves the customer to, if it is a way out of the stage into another."""
        edge = self.stage_edge()
        return edge[0] if edge is not None else None

    def templates(self) -> list[str]:
        """The message templates it renders."""
        return []

    def events_waited(self) -> list[str]:
        """The events it can take from the stage's inbox."""
        return []

    def vars_set(self) -> list[tuple[str, str]]:
        """(var, value expression) for each stage variable it sets: the checks learn the vars
        a playbook has, and the type of one no `vars:` entry declares, from these."""
        return []

    def promise_made(self) -> tuple[str, str] | None:
        """(name, what it is about) when it records a promise in the ledger."""
        return None

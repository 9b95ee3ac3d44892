"""`lifecycle lint`: warnings about playbooks that load and run, but probably not as meant.

Validation (`engine.loader`, `engine.checks`) rejects what cannot run. Lint looks at a
project that loads and flags what runs in a way an author rarely wants: a wait that can
never end with its event, a stage nobody can reach or leave, a referral request sent to
every customer. Each rule has an id; `# lint: ignore[rule-id]` on the offending line or
the line above silences it there, so a deliberate choice stays visible in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import nodes as jinja_nodes

from engine.events import declared_events
from engine.flow import event_flow, leaves
from engine.loader import Document, load_document
from engine.model import Lifecycle, Playbook
from engine.project import Project
from engine.templates import attribute_name, undeclared_names
from engine.templates import parse as parse_template
from engine.walk import branches, step_paths, step_tree

DataPath = tuple[Any, ...]

# rule id → what it flags; docs/authoring.md explains each with the fix.
RULES: dict[str, str] = {
    "unreachable-step": "a step after a step that always leaves the stage (every branch ends in goto/end)",
    "unreachable-stage": "a stage that is not initial and that no transition or goto leads to",
    "dead-end-stage": "a non-terminal stage with no transition naming it in 'from' and no goto/end "
                      "in its playbook ('*' transitions do not count)",
    "wildcard-restarts-target": "a from '*' transition to a non-terminal stage without 'except' for it: "
                                "a second event restarts that stage",
    "unused-event": "an event that starts nothing, updates no fact, moves no one and is waited for nowhere",
    "wait-interrupted": "a wait_for on an event that an unguarded transition from the same stage takes first",
    "wait-without-timeout": "a wait_for without timeout, or a task with on_done but no due: it may wait forever",
    "preferred-without-otherwise": "a send on the preferred channel with no 'otherwise' task when no "
                                   "channel has consent",
    "template-event-field": "a template reads event.data.X but no event that can be current at its "
                            "sends has a field X",
    "unguarded-marketing": "a marketing send not inside any 'if' (e.g. a referral request to every customer)",
    "split-without-id": "a split step without an id: its branches are keyed by its place, and moving it "
                        "re-draws every customer",
}

_IGNORE = re.compile(r"lint:\s*ignore\[([^\]]*)\]")


@dataclass(frozen=True, order=True)
class LintWarning:
    """One warning; line and column are 1-based."""

    path: str
    line: int
    column: int
    message: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: warning: {self.message} [{self.rule}]"


def lint_project(project: Project) -> list[LintWarning]:
    """Every warning for a loaded project, sorted by file and position, ignores applied."""
    return _Linter(project).run()


def ignored_rules(text: str, line: int) -> set[str]:
    """Rule ids silenced for `line` (1-based) by `lint: ignore[...]` on it or the line above."""
    lines = text.splitlines()
    rules: set[str] = set()
    for number in (line - 1, line):
        if 1 <= number <= len(lines):
            for match in _IGNORE.finditer(lines[number - 1]):
                rules |= {rule.strip() for rule in match.group(1).split(",") if rule.strip()}
    return rules


def _guarded_steps(steps: list[Any], path: DataPath) -> Iterator[tuple[Any, DataPath, bool]]:
    """Every step with its data path and whether an `if` (a kind that `guards`) encloses it."""
    for step, here, parents in step_tree(steps, path):
        yield step, here, any(parent.guards for parent in parents)


class _StageLint:
    """What a step's lint rules see (engine.steps.base.Lint): one stage playbook of a lint run."""

    def __init__(self, linter: _Linter, stage: str, file: Path) -> None:
        self.stage = stage
        self.interrupting = linter.interrupting(stage)
        self._linter = linter
        self._file = file

    def warn(self, path: DataPath, rule: str, message: str) -> None:
        self._linter.warn(self._file, path, rule, message)


class _Linter:
    """One lint run over a project: the rules, then the ignore comments."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.lifecycle: Lifecycle = project.lifecycle
        self.base = Path(project.path)
        self.docs: dict[str, Document | None] = {}
        self.warnings: list[LintWarning] = []

    # ------------------------------------------------------------ plumbing

    def _doc(self, path: Path) -> Document | None:
        key = str(path)
        if key not in self.docs:
            _, doc, _ = load_document(path)
            self.docs[key] = doc
        return self.docs[key]

    def _playbook_file(self, stage: str) -> Path:
        return self.base.parent / str(self.lifecycle.stages[stage].playbook)

    def warn(self, file: Path, where: DataPath, rule: str, message: str, key: bool = False) -> None:
        """A warning at the YAML node (or key) at data path `where` of `file`."""
        doc = self._doc(file)
        line, column = doc.position(where, key=key) if doc is not None else (1, 1)
        self.warn_at(str(file), line, column, rule, message)

    def warn_at(self, file: str, line: int, column: int, rule: str, message: str) -> None:
        """A warning at a known position (templates, which are not YAML)."""
        self.warnings.append(LintWarning(file, line, column, message, rule))

    def run(self) -> list[LintWarning]:
        """Every rule, then drop the warnings an ignore comment silences."""
        self._stages()
        self._events()
        self._wildcards()
        for stage, playbook in self.project.playbooks.items():
            self._playbook(stage, playbook)
        self._templates()
        kept = []
        for warning in sorted(set(self.warnings)):
            text = self._text(warning.path)
            if warning.rule not in ignored_rules(text, warning.line):
                kept.append(warning)
        return kept

    def _text(self, file: str) -> str:
        doc = self.docs.get(file)
        if doc is not None:
            return doc.text
        try:
            return Path(file).read_text(encoding="utf-8")
        except OSError:
            return ""

    # ------------------------------------------------------------ lifecycle rules

    def _stages(self) -> None:
        lifecycle = self.lifecycle
        reached = {lifecycle.initial_stage} | {t.to for t in lifecycle.transitions}
        reached |= {step.goes_to() for playbook in self.project.playbooks.values()
                    for step, _ in step_paths(playbook.steps)} - {None}
        for stage, spec in lifecycle.stages.items():
            if stage not in reached:
                self.warn(self.base, ("stages", stage), "unreachable-stage",
                          f"stage '{stage}' is unreachable: it is not the initial stage and no "
                          f"transition or goto leads to it", key=True)
            if spec.terminal:
                continue
            named = any(stage in t.from_ for t in lifecycle.transitions)
            playbook = self.project.playbooks.get(stage)
            exits = playbook is not None and any(
                step.stage_edge() is not None for step, _ in step_paths(playbook.steps))
            if not named and not exits:
                self.warn(self.base, ("stages", stage), "dead-end-stage",
                          f"stage '{stage}' has no way out: no transition from it and no goto or "
                          f"end in its playbook, so customers stay there for good", key=True)

    def _events(self) -> None:
        waited = {name for playbook in self.project.playbooks.values()
                  for step, _ in step_paths(playbook.steps) for name in step.events_waited()}
        moving = {t.on for t in self.lifecycle.transitions}
        for name, spec in self.lifecycle.events.items():
            if spec.starts_lifecycle or spec.updates or name in moving or name in waited:
                continue
            self.warn(self.base, ("events", name), "unused-event",
                      f"event '{name}' is never used: it starts no lifecycle, updates no fact, moves "
                      f"no customer and no wait_for waits for it, so every stage rejects it", key=True)

    def _wildcards(self) -> None:
        stages = self.lifecycle.stages
        for index, transition in enumerate(self.lifecycle.transitions):
            target = transition.to
            if "*" in transition.from_ and target in stages and not stages[target].terminal \
                    and transition.applies_in(target):
                self.warn(self.base, ("transitions", index, "from"), "wildcard-restarts-target",
                          f"from '*' includes '{target}' itself: a second '{transition.on}' there "
                          f"restarts '{target}' from the top (add except: [{target}] unless that "
                          f"is meant)")

    # ------------------------------------------------------------ playbook rules

    def interrupting(self, stage: str) -> dict[str, str]:
        """event → target stage of the unguarded transitions that leave `stage` on it."""
        out: dict[str, str] = {}
        for transition in self.lifecycle.transitions:
            if transition.when is None and transition.applies_in(stage):
                out.setdefault(transition.on, transition.to)
        return out

    def _playbook(self, stage: str, playbook: Playbook) -> None:
        file = self._playbook_file(stage)
        self._unreachable(file, playbook.steps, ("steps",))
        site = _StageLint(self, stage, file)
        for step, path, guarded in _guarded_steps(playbook.steps, ("steps",)):
            step.lint(site, path, guarded)

    def _unreachable(self, file: Path, steps: list[Any], path: DataPath) -> None:
        for index, step in enumerate(steps):
            here = (*path, index)
            if index > 0 and leaves(steps[index - 1]):
                self.warn(file, here, "unreachable-step",
                          "this step never runs: every path through the step before it leaves the stage")
                break
            for label, nested in branches(step):
                self._unreachable(file, nested, (*here, *label))

    # ------------------------------------------------------------ templates

    def _entry_events(self) -> dict[str, set[str]]:
        """stage → events that can be `event` when it starts.

        A transition brings its event; a `goto` carries on the event its stage was working
        with at the goto, so entry events flow along gotos until nothing changes.
        """
        lifecycle = self.lifecycle
        entry: dict[str, set[str]] = {stage: set() for stage in lifecycle.stages}
        for transition in lifecycle.transitions:
            entry[transition.to].add(transition.on)
        entry[lifecycle.initial_stage] |= {name for name, spec in lifecycle.events.items()
                                           if spec.starts_lifecycle}
        changed = True
        while changed:
            changed = False
            for stage, playbook in self.project.playbooks.items():
                found: dict[tuple[str, str], set[str]] = {}
                self._events_at(playbook.steps, set(entry[stage]), found)
                for (kind, target), events in found.items():
                    if kind == "goto" and not events <= entry[target]:
                        entry[target] |= events
                        changed = True
        return entry

    def _events_at(self, steps: list[Any], events: set[str],
                   found: dict[tuple[str, str], set[str]]) -> None:
        """Follow the events through the steps (engine.flow), recording those possible at each
        send (by template) and goto (by stage)."""

        def visit(step: Any, path: DataPath, current: set[str] | None) -> None:
            keys = [("send", name) for name in step.templates()]
            if step.goes_to() is not None:
                keys.append(("goto", step.goes_to()))
            for key in keys:
                found.setdefault(key, set()).update(current or ())

        event_flow(steps, events, visit)

    def _templates(self) -> None:
        payloads = {name: set(spec.payload) for name, spec in declared_events(self.lifecycle).items()}
        possible: dict[str, set[str]] = {}
        users: dict[str, list[str]] = {}
        entry = self._entry_events()
        for stage, playbook in self.project.playbooks.items():
            found: dict[tuple[str, str], set[str]] = {}
            self._events_at(playbook.steps, set(entry[stage]), found)
            for (kind, template), events in found.items():
                if kind == "send":
                    possible.setdefault(template, set()).update(events)
                    users.setdefault(template, []).append(stage)
        folder = self.base.parent / self.lifecycle.templates
        for template, events in sorted(possible.items()):
            source = self.project.templates.get(template)
            if source is None:
                continue
            fields = set().union(*(payloads.get(name, set()) for name in events))
            file = str(folder / f"{template}.txt")
            for name, line in _event_data_fields(source):
                if name in fields:
                    continue
                shown = sorted(events)
                stages = ", ".join(f"'{stage}'" for stage in sorted(users[template]))
                if shown:
                    reason = (f"no event that can be current at its send in {stages} "
                              f"({', '.join(shown)}) has a field '{name}'")
                else:
                    reason = f"no event is current at its send in {stages}"
                self.warn_at(file, line, _column_of(source, line, name), "template-event-field",
                             f"template '{template}' reads event.data.{name}, but {reason}, "
                             f"so it is always empty")


def _event_data_fields(source: str) -> list[tuple[str, int]]:
    """(field, line) of every `event.data.X` / `event['data']['X']` a template reads."""
    try:
        tree = parse_template(source)
    except Exception:
        return []  # the loader reports template syntax errors
    if "event" not in undeclared_names(tree):  # never meta's: it folds constants
        return []  # `event` is a local name here (a loop or a set), not the event
    out = []
    for node in tree.find_all((jinja_nodes.Getattr, jinja_nodes.Getitem)):
        data = node.node
        name = attribute_name(node)
        if name is None or not isinstance(data, (jinja_nodes.Getattr, jinja_nodes.Getitem)):
            continue
        root = data.node
        if isinstance(root, jinja_nodes.Name) and root.name == "event" and attribute_name(data) == "data":
            out.append((name, node.lineno or 1))
    return sorted(set(out), key=lambda item: (item[1], item[0]))




def _column_of(source: str, line: int, name: str) -> int:
    lines = source.splitlines()
    if 1 <= line <= len(lines):
        text = lines[line - 1]
        dotted = text.find(f"data.{name}")
        found = dotted + len("data.") if dotted >= 0 else text.find(name)
        if found >= 0:
            return found + 1
    return 1

"""Cross-reference checks of the stage playbooks and templates of a loaded lifecycle.

The models check each file's shape; these checks look across files (stages, events,
channels, roles, facts, templates, promises) and inside expressions and templates, and
locate each error at the node that holds the bad name. A playbook is walked once with
the events that can be current at each step (engine.flow); each step kind's own checks are
its `check` method (engine.steps); the lifecycle file's are in engine.lifecycle_checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jinja2 import nodes as jinja_nodes

from engine import typecheck
from engine.calendars import business_days, business_hours, business_hours_limit
from engine.errors import PlaybookError, suggest
from engine.expression_checks import Located, Scope, all_events, check_expression, customer_fields, name_list
from engine.expressions import ROOTS
from engine.flow import event_flow, union
from engine.model import Lifecycle, Playbook
from engine.steps import Task
from engine.templates import ENVIRONMENT, attribute_name, split_subject, undeclared_names
from engine.templates import parse as parse_jinja
from engine.walk import step_lists, step_paths
from engine.yamlsource import DataPath

# What a message template sees (engine.context.template_context): the roots plus the stage.
TEMPLATE_ROOTS = (*ROOTS, "stage")
TEMPLATE_EVENT_FIELDS = ("name", "data")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


# ---------------------------------------------------------------- stage playbooks


def promises_recorded(playbooks: Iterable[Playbook]) -> dict[str, str]:
    """Every promise a `promise` step records, in any stage playbook: name → what it is about
    (the first step's, when several record it). Used as a set of names, and to type `actual`."""
    recorded: dict[str, str] = {}
    for playbook in playbooks:
        for step, _ in step_paths(playbook.steps):
            made = step.promise_made()
            if made is not None:
                recorded.setdefault(*made)
    return recorded


def is_template_name(name: str) -> bool:
    """A template name is a plain file name: no folders, no way out of the template folder."""
    return bool(_TEMPLATE_NAME.match(name)) and ".." not in name


def entry_events(lifecycle: Lifecycle, stage: str) -> set[str]:
    """Events a transition (or the lifecycle's start) can bring a customer into `stage` with."""
    names = {t.on for t in lifecycle.transitions if t.to == stage}
    if stage == lifecycle.initial_stage:
        names |= {name for name, spec in lifecycle.events.items() if spec.starts_lifecycle}
    return names


def stage_events(lifecycle: Lifecycle, playbooks: dict[str, Playbook]) -> dict[str, set[str] | None]:
    """What `event` can be when each stage's playbook starts; None where it cannot be told.

    A `goto` carries the event its stage was working with, so a goto target can start with
    any event the source stage could hold at the goto: grow the sets until nothing changes.
    """
    entries: dict[str, set[str] | None] = {s: entry_events(lifecycle, s) for s in lifecycle.stages}
    for _ in range(len(lifecycle.stages) + 1):
        changed = False
        for stage, playbook in playbooks.items():
            probe = PlaybookChecker(lifecycle, stage, playbook, None, None, set(), "")
            probe.flow_from(entries.get(stage))
            for target, events in probe.gotos:
                if target not in entries:
                    continue
                merged = union(entries[target], events)
                if merged != entries[target]:
                    entries[target], changed = merged, True
        if not changed:
            break
    # A stage nothing leads into is entered some other way (or never): accept any event.
    return {stage: (events or None) for stage, events in entries.items()}


class PlaybookChecker:
    """The checks of one stage playbook, with the flow of `event` through its steps."""

    def __init__(self, lifecycle: Lifecycle, stage: str, playbook: Playbook, doc: Located | None,
                 promises: set[str] | None, templates: set[str], templates_folder: str) -> None:
        self.lifecycle = lifecycle
        self.stage = stage
        self.playbook = playbook
        self.doc = doc
        self.promises = promises
        self.templates = templates
        self.templates_folder = templates_folder
        self.events = all_events(lifecycle)
        self.errors: list[PlaybookError] = []
        self.gotos: list[tuple[str, set[str] | None]] = []  # (target, events at the goto)
        self.vars = set(playbook.vars) | {
            var for step, _ in step_paths(playbook.steps) for var, _ in step.vars_set()
        }
        self.var_kinds = self._var_kinds()
        self._tasks: dict[DataPath, Task] | None = None  # data path → task step, for `_completed_task`

    def _var_kinds(self) -> dict[str, str]:
        """Declared vars have their type; a var only a `set` step gives gets its value's type."""
        kinds = {name: "dyn" for name in self.vars}
        kinds.update(self.playbook.var_kinds())
        if self.doc is None:
            return kinds
        types = typecheck.types_of(self.lifecycle)
        for step, _ in step_paths(self.playbook.steps):
            for var, value in step.vars_set():
                if var not in self.playbook.vars and kinds[var] == "dyn":
                    result = types.check(value, None, kinds).result
                    kinds[var] = typecheck.KIND_OF_RESULT.get(result or "", "dyn")
                    # Kept with the playbook, so the interpreter reads a stored timestamp back as one.
                    self.playbook.var_types[var] = kinds[var]
        return kinds

    def flow_from(self, events: set[str] | None) -> None:
        """Follow `event` through the steps; with no document, only record the gotos."""
        event_flow(self.playbook.steps, events, self._step)

    def run(self, entry: set[str] | None) -> list[PlaybookError]:
        if self.playbook.playbook != self.stage:
            self.errors.append(self.doc.error(
                ("playbook",), f"playbook '{self.playbook.playbook}' runs in stage '{self.stage}'; "
                               f"name it '{self.stage}'",
            ))
        self._duplicate_ids()
        self._after_leaving()
        self.flow_from(entry)
        return self.errors

    def error(self, path: DataPath, message: str, key: bool = False) -> None:
        """An error at the node (or key) at `path`; none without a document (a probe)."""
        if self.doc is not None:
            self.errors.append(self.doc.error(path, message, key=key))

    def _duplicate_ids(self) -> None:
        first: dict[str, DataPath] = {}
        for step, path in step_paths(self.playbook.steps):
            if step.id is None:
                continue
            if step.id in first:
                line = self.doc.position((*first[step.id], "id"))[0]
                self.error((*path, "id"), f"duplicate step id '{step.id}' (first used at line {line})")
            else:
                first[step.id] = path

    def _after_leaving(self) -> None:
        """A step written right after one with no way on (a goto, an end) never runs."""
        for steps, prefix in step_lists(self.playbook.steps):
            for index in range(1, len(steps)):
                if not steps[index - 1].ways():
                    self.error((*prefix, index), f"this step never runs: the '{steps[index - 1].kind}' "
                                                 f"step before it leaves the stage")

    def expression(self, path: DataPath, source: str, events: set[str] | None,
                   expect: tuple[str, str] | None = None) -> None:
        """An expression of this playbook: it reads the vars, and `event` is one of `events`."""
        if self.doc is None:
            return
        scope = Scope(where="a stage playbook", events=events, vars=self.vars, promises=self.promises,
                      var_kinds=self.var_kinds, task=self._completed_task(path, events))
        self.errors += check_expression(self.lifecycle, self.doc, path, source, scope, expect)

    def _completed_task(self, path: DataPath, events: set[str] | None) -> Task | None:
        """--- task entities (issue 12): the task whose `on_done` holds `path` while its completion
        is still the current event (a wait_for inside on_done makes another event current)."""
        if events != {"task.completed"}:
            return None
        if self._tasks is None:
            self._tasks = {where: step for step, where in step_paths(self.playbook.steps) if isinstance(step, Task)}
        for index in range(len(path) - 1, 0, -1):
            if path[index] == "on_done" and path[:index] in self._tasks:
                return self._tasks[path[:index]]
        return None

    def span(self, path: DataPath, value: Any, events: set[str] | None, role: str | None = None) -> None:
        """A `due`, `timeout` or `duration` written as an expression must be a duration; business
        days need a calendar (the customer's, else contact.calendar); business hours are a task's
        `due` only, and need its role's business_hours and a calendar."""
        if business_days(value) is not None:
            if self.lifecycle.contact is None or self.lifecycle.contact.calendar is None:
                self.error(path, f"'{value}' needs a holiday calendar: set contact.calendar in the lifecycle file "
                                 f"(customers with their own 'calendar' use theirs)")
        elif business_hours(value) is not None:
            self._business_hours(path, value, role)
        elif isinstance(value, str):
            self.expression(path, value, events, ("duration", f"'{path[-1]}'"))

    def _business_hours(self, path: DataPath, value: str, role: str | None) -> None:
        """`N business hours` counts the hours of the task's role: a role with business_hours, a
        calendar (its own or contact.calendar), and a count within MAX_BUSINESS_HOURS."""
        if role is None:
            self.error(path, f"'{value}': business hours are counted in a role's business_hours, so only a "
                             f"task's 'due' takes them (write a duration such as 4h, or N business days)")
            return
        contact = self.lifecycle.contact
        team = contact.roles.get(role) if contact is not None else None
        example = f'contact: {{roles: {{{role}: {{business_hours: "08:00-17:00", timezone: Europe/Berlin}}}}}}'
        if team is None or team.business_hours is None:
            self.error(path, f"'{value}' needs the business hours of role '{role}': add them in the "
                             f"lifecycle file, e.g. {example}")
        elif team.calendar is None and contact is not None and contact.calendar is None:
            self.error(path, f"'{value}' needs a holiday calendar: set contact.calendar in the lifecycle file, "
                             f"or contact.roles.{role}.calendar")
        elif (business_hours(value) or 0) > business_hours_limit(team.opens or "", team.closes or ""):
            limit = business_hours_limit(team.opens or "", team.closes or "")
            self.error(path, f"'{value}' is more than {limit} business hours, about ten years of "
                             f"{role}'s {team.business_hours}")

    def role(self, path: DataPath, role: str) -> None:
        """A role must be declared in the lifecycle."""
        if role not in self.lifecycle.roles:
            self.error(path, f"unknown role '{role}'{suggest(role, self.lifecycle.roles)}")

    def template(self, path: DataPath, name: str) -> None:
        """A template is a plain file name, and its file must exist in the template folder."""
        if not is_template_name(name):
            self.error(path, f"template name '{name}' must be a file name in the "
                             f"template folder, without folders")
        elif name not in self.templates:
            self.error(path, f"unknown template '{name}': no file {self.templates_folder}/{name}.txt"
                             f"{suggest(name, self.templates)}")

    def channel(self, path: DataPath, name: str) -> None:
        """A declared channel, or `preferred`."""
        channels = self.lifecycle.channels
        if name != "preferred" and name not in channels:
            hint = suggest(name, [*channels, "preferred"])
            self.error(path, f"unknown channel '{name}'{hint or f' (use {name_list(channels)} or preferred)'}")

    def _step(self, step: Any, path: DataPath, events: set[str] | None) -> None:
        """The checks of one step's kind, with the events that can be current there (engine.flow)."""
        step.check(self, path, events)


def check_playbook(lifecycle: Lifecycle, stage: str, playbook: Playbook, doc: Located, *,
                   promises: set[str] | None, templates: set[str], templates_folder: str,
                   entry: set[str] | None = None) -> list[PlaybookError]:
    """Every cross-reference of one stage playbook.

    `promises` None skips the promise checks (some playbook failed to load); `entry` is what
    `event` can be when the stage starts (see `stage_events`), None for any declared event.
    """
    checker = PlaybookChecker(lifecycle, stage, playbook, doc, promises, templates, templates_folder)
    return checker.run(entry)


# ---------------------------------------------------------------- templates


@lru_cache(maxsize=512)
def parse_template(text: str) -> jinja_nodes.Template:
    """The Jinja syntax tree of a template part; raises TemplateSyntaxError. Cached (not mutated)."""
    return parse_jinja(text)


def check_template(lifecycle: Lifecycle, path: str, source: str, users: list[Playbook],
                   promises: set[str] | None) -> list[PlaybookError]:
    """Names a template reads: unknown roots, customer fields, facts, vars, payload fields."""
    subject, body = split_subject(source)
    parts = [(body, 1)]
    if subject:
        _, _, rest = source.partition("\n")
        parts = [(subject, 1), (body, 2 + len(rest) - len(rest.lstrip("\n")))]
    errors: list[PlaybookError] = []
    variables = set().union(*(p.vars for p in users)) | {
        var for p in users for step, _ in step_paths(p.steps) for var, _ in step.vars_set()
    }
    customer = customer_fields(lifecycle)
    events = all_events(lifecycle)
    payload = {name for spec in events.values() for name in spec.payload}
    allowed = set(TEMPLATE_ROOTS) | set(ENVIRONMENT.globals)
    for text, first_line in parts:
        try:
            tree = parse_template(text)
        except Exception:
            continue  # syntax errors are reported by the loader
        undeclared = undeclared_names(tree)  # never meta's: it folds constants

        def at(node: jinja_nodes.Node, message: str) -> None:
            errors.append(PlaybookError(path, first_line + max((node.lineno or 1) - 1, 0), 1, message))

        reported: set[str] = set()
        for node in tree.find_all(jinja_nodes.Name):
            if node.ctx == "load" and node.name in undeclared and node.name not in allowed \
                    and node.name not in reported:
                reported.add(node.name)
                at(node, f"unknown name '{node.name}' in template{suggest(node.name, TEMPLATE_ROOTS)}; "
                         f"a template can use {', '.join(TEMPLATE_ROOTS)}")
        for node in tree.find_all((jinja_nodes.Getattr, jinja_nodes.Getitem)):
            target = node.node
            name = attribute_name(node)
            if not isinstance(target, jinja_nodes.Name) or target.name not in undeclared or name is None:
                if isinstance(target, (jinja_nodes.Getattr, jinja_nodes.Getitem)) and name is not None:
                    inner = target.node
                    if (isinstance(inner, jinja_nodes.Name) and inner.name == "event"
                            and "event" in undeclared and attribute_name(target) == "data"
                            and name not in payload):
                        at(node, f"no event has a payload field '{name}'{suggest(name, payload)}")
                continue
            root = target.name
            if root == "customer" and name not in customer:
                at(node, f"unknown customer field '{name}'{suggest(name, customer)}")
            elif root == "facts" and name not in lifecycle.facts:
                at(node, f"unknown fact '{name}'{suggest(name, lifecycle.facts)}")
            elif root == "vars" and name not in variables:
                at(node, f"unknown var '{name}'{suggest(name, variables)}")
            elif root == "event" and name not in TEMPLATE_EVENT_FIELDS:
                at(node, f"unknown event field '{name}'{suggest(name, TEMPLATE_EVENT_FIELDS)}; "
                         f"a template sees the event's name and data")
            elif root == "promises" and promises is not None and name not in promises:
                at(node, f"unknown promise '{name}'{suggest(name, promises)}")
    return errors

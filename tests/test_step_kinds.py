"""A step kind in one place: one module of engine.steps holds its model, checks, run, flow and box.

Every analysis walks the step tree through `Step.branches()` (engine.walk), follows the
current event through `engine.flow` and asks the step for the rest; these tests catch a kind
that misses part of the protocol or forgets to declare its nested steps, check that the
registry and the union the loader validates against agree, and pin the event flow that
both load-time checks and lint use.
"""

from __future__ import annotations

import importlib
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from engine.flow import Way, event_flow, leaves
from engine.graph import _FLOW_SHAPES, Graph, Node, to_dot
from engine.model import Playbook
from engine.steps import STEP_KINDS, AnyStep, Branch, CheckPromise, End, Goto, If, Send, Set, Step, Task, WaitFor
from engine.walk import children, step_lists, step_paths, walk_steps

KINDS = list(STEP_KINDS.values())


def _holds_steps(annotation: Any) -> bool:
    """Whether a field's type has steps inside (a list of steps, of `elif` branches or split
    variants, a map of lists)."""
    if isinstance(annotation, type) and issubclass(annotation, Step):
        return True
    if _container(annotation) is not None:
        return True
    return any(_holds_steps(arg) for arg in get_args(annotation))


def _container(annotation: Any) -> type | None:
    """The model (not a step) whose own fields hold steps, inside a field's type: Branch, SplitVariant."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not issubclass(annotation, Step):
        if any(_holds_steps(info.annotation) for info in annotation.model_fields.values()):
            return annotation
        return None
    for arg in get_args(annotation):
        found = _container(arg)
        if found is not None:
            return found
    return None


def _empty(container: type) -> Any:
    return container.model_construct(**{name: [] for name, info in container.model_fields.items()
                                        if _holds_steps(info.annotation)})


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_every_field_that_holds_steps_is_a_declared_branch(kind: type) -> None:
    nested = {name: info for name, info in kind.model_fields.items() if _holds_steps(info.annotation)}
    step = kind.model_construct(**{name: {"x": []} if get_origin(info.annotation) is dict
                                   else [_empty(_container(info.annotation))]
                                   if _container(info.annotation) is not None else [] for name, info in nested.items()})
    declared = {label[0] for label, _ in step.branches()}
    assert declared == {info.alias or name for name, info in nested.items()}


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_every_kind_implements_the_whole_protocol(kind: type) -> None:
    # model: a Step with its own `kind` tag, in a module of its own under engine.steps
    assert issubclass(kind, Step)
    name = kind.model_fields["kind"].default
    module = importlib.import_module(kind.__module__)
    assert module.__name__ in (f"engine.steps.{name}", f"engine.steps.{name}_"), module.__name__
    assert module.__doc__ and module.__doc__.lstrip().startswith(f"`{name}`")
    # checks, run, describe: no default in the base
    for method in ("check", "run", "describe"):
        assert getattr(kind, method) is not getattr(Step, method), f"{name} lacks '{method}'"
    # flow: a kind with nested steps says how the run goes through them
    if "branches" in vars(kind):
        assert "ways" in vars(kind), f"{name} holds steps but declares no ways through them"


# One step of every kind, as an author would write it (a new kind adds its own).
SAMPLES: dict[str, dict[str, Any]] = {
    "send": {"template": "check_in", "otherwise": {"role": "r", "title": "Call", "guideline": "g"}},
    "task": {"role": "r", "title": "Call", "guideline": "g", "due": "2d", "on_overdue": [{"kind": "end"}]},
    "wait": {"until": "now + duration('1h')"},
    "wait_for": {"events": ["x", "y"], "timeout": "1d", "on": {"y": [{"kind": "end"}]}},
    "if": {"when": "true", "then": [{"kind": "end"}], "elif": [{"when": "false", "then": []}]},
    "set": {"var": "v", "value": "1"},
    "promise": {"promise": "p", "about": "price", "expected": "10", "made_by": "r"},
    "check_promise": {"promise": "p", "actual": "9", "on_broken": [{"kind": "goto", "stage": "s"}]},
    "goto": {"stage": "s"},
    "end": {"outcome": "lost"},
    "split": {"variants": [{"name": "a", "weight": 1, "steps": [{"kind": "end"}]}], "holdout": 1},
}


def test_every_kind_has_a_sample_here() -> None:
    assert set(SAMPLES) == set(STEP_KINDS)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_kind_answers_what_the_flowchart_and_the_flow_ask(name: str) -> None:
    step = STEP_KINDS[name].model_validate({"kind": name, **SAMPLES[name]})
    shape, lines = step.describe()
    assert shape in _FLOW_SHAPES and lines and all(isinstance(line, str) for line in lines)
    nested = [id(steps) for _, steps in step.branches()]
    for way in step.ways():
        assert isinstance(way, Way) and isinstance(step.way_text(way), str)
        assert not way.steps or id(way.steps) in nested  # a way goes into one of its own branches
    assert isinstance(step.keeps_event(), bool)
    graph = Graph("flow", "sample")
    graph.add(Node("s1", lines, shape))
    assert lines[0] in to_dot(graph)  # the shape has a Graphviz form too


def test_the_registry_and_the_union_agree() -> None:
    members = get_args(get_args(AnyStep)[0])
    assert list(members) == KINDS
    assert list(STEP_KINDS) == [kind.model_fields["kind"].default for kind in KINDS]
    assert len(set(STEP_KINDS)) == len(KINDS)
    # what the loader validates against is the registry: every kind, by its tag
    items = Playbook.model_json_schema()["properties"]["steps"]["items"]
    assert sorted(items["discriminator"]["mapping"]) == sorted(STEP_KINDS)
    assert [one["$ref"].rsplit("/", 1)[-1] for one in items["oneOf"]] == [kind.__name__ for kind in KINDS]


def test_a_kind_outside_the_registry_is_rejected_with_the_registered_kinds() -> None:
    with pytest.raises(ValueError, match="send"):
        Playbook.model_validate({"playbook": "p", "steps": [{"kind": "shuffle"}]})


def _tree() -> list[Any]:
    return [
        If(when="true", then=[Send(template="a")],
           elif_=[Branch(when="false", then=[Send(template="b")])], else_=[Goto(stage="done")]),
        WaitFor(events=["x", "y"], timeout="1d", on={"y": [Send(template="c")]},
                on_timeout=[Set(var="v", value="1")]),
    ]


def test_paths_are_the_same_in_both_spellings() -> None:
    run_time = [path for _, path in walk_steps(_tree())]
    data = [".".join(str(part) for part in path[1:]) for _, path in step_paths(_tree())]
    assert run_time == data == ["0", "0.then.0", "0.elif.0.then.0", "0.else.0",
                                "1", "1.on_timeout.0", "1.on.y.0"]
    assert [label for label, _ in children(_tree()[0])] == ["then", "elif.0.then", "else"]
    assert [path for _, path in step_lists(_tree())] == [
        ("steps",), ("steps", 0, "then"), ("steps", 0, "elif", 0, "then"), ("steps", 0, "else"),
        ("steps", 1, "on_timeout"), ("steps", 1, "on", "y")]


def _events_at(steps: list[Any], start: set[str] | None) -> tuple[dict[str, Any], Any]:
    """template or goto target → the events current at it, and the events after the steps."""
    seen: dict[str, Any] = {}

    def visit(step: Any, path: Any, events: Any) -> None:
        if isinstance(step, (Send, Goto)):
            seen[getattr(step, "template", None) or step.stage] = events

    return seen, event_flow(steps, start, visit)


def test_a_wait_for_makes_the_event_it_took_current() -> None:
    seen, after = _events_at(_tree() + [Send(template="last")], {"start"})
    assert seen == {"a": {"start"}, "b": {"start"}, "done": {"start"}, "c": {"y"}, "last": {"x", "y", "start"}}
    assert after == {"x", "y", "start"}  # x: no handler; y: its handler; start: after the timeout


def test_a_wait_for_without_timeout_ends_only_with_its_events() -> None:
    _, after = _events_at([WaitFor(events=["x"])], {"start"})
    assert after == {"x"}


def test_a_task_outcome_runs_with_task_completed_and_a_check_promise_may_run_neither_branch() -> None:
    task = Task(role="r", title="t", guideline="g", due="1d", on_done=[Send(template="done")],
                on_overdue=[WaitFor(events=["x"])])
    check = CheckPromise(promise="p", actual="1", on_kept=[WaitFor(events=["k"])],
                         on_broken=[WaitFor(events=["b"])])
    seen, after = _events_at([task, Send(template="mid"), check], {"start"})
    assert seen["done"] == {"task.completed"}
    assert seen["mid"] == {"task.completed", "x", "start"}
    # a promise never recorded for this customer skips both branches: the event stays current
    assert after == {"k", "b", "task.completed", "x", "start"}


def test_any_event_stays_any() -> None:
    seen, after = _events_at([Send(template="a"), WaitFor(events=["x"], timeout="1d")], None)
    assert seen == {"a": None} and after is None


def test_the_ways_through_each_kind_are_what_the_flowchart_draws() -> None:
    wait = WaitFor(events=["x", "y"], on={"y": [Send(template="c")]}, timeout="2d")
    assert [way.name for way in wait.ways()] == ["x", "y", "timeout"]
    task = Task(role="r", title="t", guideline="g", on_done=[Send(template="d")])
    assert [way.name for way in task.ways()] == ["done"]  # no due: it is never overdue
    assert [way.name for way in Goto(stage="s").ways()] == []
    assert [way.name for way in Send(template="a").ways()] == [""]


def test_a_step_leaves_when_every_way_through_it_leaves() -> None:
    def branching(else_: list[Any]) -> If:
        return If(when="true", then=[Goto(stage="a")], elif_=[Branch(when="false", then=[End()])], else_=else_)

    assert leaves(branching([End()]))
    assert not leaves(branching([]))  # no else: the run goes on past the if
    assert not leaves(WaitFor(events=["x", "y"], on={"y": [End()]}))  # x goes on
    assert leaves(WaitFor(events=["y"], on={"y": [End()]}, timeout="1d", on_timeout=[Goto(stage="a")]))
    assert not leaves(WaitFor(events=["y"], on={"y": [End()]}, timeout="1d"))  # the timeout goes on

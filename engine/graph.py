"""Diagrams of a project: the lifecycle as a state diagram, a stage playbook as a flowchart.

Both are first built as a small `Graph` (nodes with a shape, labelled edges), then
rendered as Mermaid (for Markdown, GitHub and the docs) or Graphviz DOT (and SVG through
the `dot` program when it is installed). One structure, two renderers, so both formats
always show the same thing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.project import Project
from engine.steps.base import short
from engine.walk import walk_steps

START, END, ANY = "__start__", "__end__", "__any__"

Shape = Literal[
    "stage", "terminal", "start", "end", "any",  # lifecycle diagrams
    "io", "box", "round", "hexagon", "diamond", "subroutine", "flag", "circle", "stadium",  # flowcharts
]


@dataclass
class Node:
    """A stage or a step; `label` is one or more lines."""

    id: str
    label: list[str]
    shape: Shape


@dataclass
class Edge:
    """A transition, a goto, or the flow from one step to the next."""

    source: str
    target: str
    label: str = ""
    dashed: bool = False


@dataclass
class Graph:
    """What a diagram shows; `kind` picks a state diagram or a flowchart in Mermaid."""

    kind: Literal["state", "flow"]
    title: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add(self, node: Node) -> str:
        """Add a node (the first one with an id wins); its id."""
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, source: str, target: str, label: str = "", dashed: bool = False) -> None:
        """Add an edge, once: a second goto to the same stage draws no second arrow."""
        edge = Edge(source, target, label, dashed)
        if edge not in self.edges:
            self.edges.append(edge)


class GraphvizError(RuntimeError):
    """SVG needs Graphviz's `dot` program: it is not on the PATH, or it failed."""


# ---------------------------------------------------------------- the lifecycle


def lifecycle_graph(project: Project) -> Graph:
    """Stages, transitions (event and guard), goto and end steps of the stage playbooks."""
    lifecycle = project.lifecycle
    graph = Graph("state", lifecycle.lifecycle)
    for stage, spec in lifecycle.stages.items():
        graph.add(Node(stage, [stage], "terminal" if spec.terminal else "stage"))
    starts = sorted(name for name, spec in lifecycle.events.items() if spec.starts_lifecycle)
    graph.add(Node(START, ["start"], "start"))
    graph.link(START, lifecycle.initial_stage, ", ".join(starts))
    for transition in lifecycle.transitions:
        label = transition.on + (" (schedule)" if transition.on in lifecycle.schedules else "") \
            + (f" [{short(transition.when)}]" if transition.when else "")
        for source in transition.from_:
            if source == "*":
                source = _any_node(graph, transition.except_)
            graph.link(source, transition.to, label)
    for stage, playbook in project.playbooks.items():
        for step, _ in walk_steps(playbook.steps):
            edge = step.stage_edge()  # a goto, or (no target) an end
            if edge is not None:
                target, label = edge
                if target is None:
                    target = graph.add(Node(END, ["end"], "end"))
                graph.link(stage, target, label, dashed=True)
    for stage, spec in lifecycle.stages.items():
        if spec.terminal:
            graph.add(Node(END, ["end"], "end"))
            graph.link(stage, END)
    return graph


def _any_node(graph: Graph, excepted: list[str]) -> str:
    """The "any stage" box of a `*` transition; one per distinct `except` list."""
    if not excepted:
        node = Node(ANY, ["any stage"], "any")
    else:
        node = Node(f"{ANY}_except_{'_'.join(sorted(excepted))}",
                    [f"any stage except {', '.join(sorted(excepted))}"], "any")
    graph.add(node)
    return node.id


# ---------------------------------------------------------------- one stage playbook


Pending = list[tuple[str, str]]  # (node id, label) of edges still looking for their target


def stage_graph(project: Project, stage: str) -> Graph:
    """The stage playbook as a flowchart: steps, branches, waits and timeouts; KeyError if none."""
    playbook = project.playbooks[stage]
    return _Flow(project, stage).build(playbook.steps)


class _Flow:
    """Builds a stage flowchart: each step links to what runs after it."""

    def __init__(self, project: Project, stage: str) -> None:
        self.project = project
        self.stage = stage
        self.graph = Graph("flow", stage)
        self.count = 0

    def build(self, steps: list[Any]) -> Graph:
        """Entry node, the steps, and a 'done' node when some path runs off the end."""
        entry = self.graph.add(Node("entry", self._entry_label(), "stadium"))
        pending = self._steps(steps, [(entry, "")], "")
        if pending:
            done = self.graph.add(Node("done", ["playbook done:", "stays until a transition"], "stadium"))
            self._connect(pending, done)
        return self.graph

    def _entry_label(self) -> list[str]:
        lifecycle = self.project.lifecycle
        ways = sorted({t.on for t in lifecycle.transitions if t.to == self.stage})
        if self.stage == lifecycle.initial_stage:
            ways = sorted(set(ways) | {n for n, s in lifecycle.events.items() if s.starts_lifecycle})
        gotos = sorted({source for source, playbook in self.project.playbooks.items()
                        for step, _ in walk_steps(playbook.steps)
                        if step.goes_to() == self.stage})
        lines = [f"enter {self.stage}"]
        if ways:
            lines.append("on " + ", ".join(ways))
        if gotos:
            lines.append("goto from " + ", ".join(gotos))
        return lines

    def _connect(self, pending: Pending, target: str) -> None:
        for source, label in pending:
            self.graph.link(source, target, label)

    def _steps(self, steps: list[Any], pending: Pending, path: str) -> Pending:
        for index, step in enumerate(steps):
            here = f"{path}{index}"
            node = self._node(step, here)
            self._connect(pending, node)
            pending = self._after(step, node, f"{here}.")
        return pending

    def _node(self, step: Any, path: str) -> str:
        self.count += 1
        shape, text = step.describe()
        label = [step.id or f"{step.kind}@{path}", *text]
        return self.graph.add(Node(f"s{self.count}", label, shape))

    def _after(self, step: Any, node: str, path: str) -> Pending:
        """Edges leaving a step: to the next step, through its branches, or none (goto, end)."""
        out: Pending = []
        for way in step.ways():
            prefix = path + "".join(f"{part}." for part in way.label)
            out += self._steps(way.steps, [(node, step.way_text(way))], prefix)
        return out


# ---------------------------------------------------------------- Mermaid


def to_mermaid(graph: Graph) -> str:
    """Mermaid text: `stateDiagram-v2` for a lifecycle, `flowchart TD` for a stage playbook."""
    return _mermaid_state(graph) if graph.kind == "state" else _mermaid_flow(graph)


def _state_label(text: str) -> str:
    # A state diagram label runs to the end of the line and may not hold ':' or ';'.
    return text.replace(":", "∶").replace(";", ",").replace("#", "＃")


def _mermaid_state(graph: Graph) -> str:
    lines = ["stateDiagram-v2", "    direction LR"]
    ids = {START: "[*]", END: "[*]"}
    for node in graph.nodes.values():
        if node.shape == "any":
            # `__any__` is drawn as `any_stage`, `__any___except_a_b` as `any_stage_except_a_b`.
            ids[node.id] = "any_stage" + node.id.removeprefix(ANY)
            lines.append(f'    state "{node.label[0]}" as {ids[node.id]}')
    for edge in graph.edges:
        source, target = ids.get(edge.source, edge.source), ids.get(edge.target, edge.target)
        label = f": {_state_label(edge.label)}" if edge.label else ""
        lines.append(f"    {source} --> {target}{label}")
    terminal = [node.id for node in graph.nodes.values() if node.shape == "terminal"]
    lines.append("    classDef terminal font-weight:bold,stroke-width:3px")
    lines.append("    classDef anystage stroke-dasharray:5 5")
    if terminal:
        lines.append(f"    class {','.join(terminal)} terminal")
    wildcards = [ids[node.id] for node in graph.nodes.values() if node.shape == "any"]
    if wildcards:
        lines.append(f"    class {','.join(wildcards)} anystage")
    return "\n".join(lines) + "\n"


_FLOW_SHAPES = {
    "io": ('[/"', '"/]'), "box": ('["', '"]'), "round": ('(["', '"])'), "hexagon": ('{{"', '"}}'),
    "diamond": ('{"', '"}'), "subroutine": ('[["', '"]]'), "flag": ('>"', '"]'),
    "circle": ('(("', '"))'), "stadium": ('(["', '"])'),
}


def _flow_text(text: str) -> str:
    # Inside a quoted Mermaid label only '"' needs escaping; '#' would start an entity code.
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _mermaid_flow(graph: Graph) -> str:
    lines = ["flowchart TD"]
    for node in graph.nodes.values():
        left, right = _FLOW_SHAPES.get(node.shape, ('["', '"]'))
        text = "<br/>".join(_flow_text(line) for line in node.label if line)
        lines.append(f"    {node.id}{left}{text}{right}")
    for edge in graph.edges:
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{_flow_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Graphviz


_DOT_SHAPES = {
    "stage": 'shape=box, style=rounded', "terminal": 'shape=box, style="rounded,bold", peripheries=2',
    "start": 'shape=point, width=0.2', "end": 'shape=doublecircle, label="", width=0.15',
    "any": 'shape=box, style="rounded,dashed"', "io": "shape=parallelogram", "box": "shape=box",
    "round": 'shape=box, style=rounded', "hexagon": "shape=hexagon", "diamond": "shape=diamond",
    "subroutine": "shape=box, peripheries=2", "flag": "shape=cds", "circle": "shape=doublecircle",
    "stadium": "shape=ellipse",
}


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz DOT text of the same diagram."""
    direction = "LR" if graph.kind == "state" else "TB"
    lines = [f"digraph {_dot_string(graph.title)} {{", f"    rankdir={direction};",
             '    node [fontname="Helvetica", fontsize=11];', '    edge [fontname="Helvetica", fontsize=9];']
    for node in graph.nodes.values():
        label = "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in node.label if line)
        attrs = _DOT_SHAPES[node.shape]
        if "label=" not in attrs:
            attrs = f'label="{label}", {attrs}'
        lines.append(f"    {_dot_string(node.id)} [{attrs}];")
    for edge in graph.edges:
        attrs = []
        if edge.label:
            attrs.append(f"label={_dot_string(edge.label)}")
        if edge.dashed:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {_dot_string(edge.source)} -> {_dot_string(edge.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(graph: Graph) -> str:
    """SVG drawn by Graphviz's `dot`; GraphvizError when it is not installed."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizError("--format svg needs Graphviz's 'dot' program, which is not installed "
                              "(e.g. apt-get install graphviz); use --format mermaid or dot instead")
    result = subprocess.run([program, "-Tsvg"], input=to_dot(graph), capture_output=True, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        problem = (result.stderr.strip().splitlines() or ["unknown error"])[0]
        raise GraphvizError(f"Graphviz 'dot' failed: {problem}")
    return result.stdout

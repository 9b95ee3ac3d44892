"""`lifecycle graph`: the lifecycle as a state diagram and a stage playbook as a flowchart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from engine.graph import ANY, END, START, lifecycle_graph, stage_graph, to_dot, to_mermaid
from engine.loader import load_project

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "authoring"


@pytest.fixture(scope="module")
def project():
    return load_project(FIXTURE / "lifecycle.yaml")


def edges(graph):
    return {(edge.source, edge.target, edge.label) for edge in graph.edges}


def labelled(graph, step_id):
    return next(node.id for node in graph.nodes.values() if node.label[0] == step_id)


def test_lifecycle_graph_has_start_transitions_wildcards_gotos_and_ends(project):
    graph = lifecycle_graph(project)
    assert edges(graph) == {
        (START, "sale", "order.placed"),
        ("sale", "check_in", "order.delivered"),
        (ANY, "lost", "customer.lost"),
        ("check_in", "closed", "goto"),
        ("closed", END, ""),
        ("lost", END, ""),
    }
    assert [edge.dashed for edge in graph.edges if edge.label == "goto"] == [True]


def test_transition_guard_is_shown_on_its_edge(project):
    guarded = project.lifecycle.model_copy(deep=True)
    guarded.transitions[0].when = "event.data.delivered_at != null"
    graph = lifecycle_graph(type(project)(project.path, guarded, project.playbooks))
    assert ("sale", "check_in", "order.delivered [event.data.delivered_at != null]") in edges(graph)


def test_lifecycle_mermaid_is_a_state_diagram(project):
    text = to_mermaid(lifecycle_graph(project))
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> sale: order.placed" in lines
    assert "    any_stage --> lost: customer.lost" in lines
    assert "    check_in --> closed: goto" in lines
    assert "    closed --> [*]" in lines


def test_state_labels_never_hold_a_colon_or_semicolon(project):
    guarded = project.lifecycle.model_copy(deep=True)
    guarded.transitions[0].when = "event.data.delivered_at != null ? true : false"
    text = to_mermaid(lifecycle_graph(type(project)(project.path, guarded, project.playbooks)))
    line = next(line for line in text.splitlines() if "order.delivered" in line)
    assert line.count(":") == 1 and ";" not in line


def test_stage_flowchart_follows_branches_waits_and_timeouts(project):
    graph = stage_graph(project, "check_in")
    ids = {step: labelled(graph, step) for step in
           ("check_date", "apology", "survey", "await_survey", "call_back", "promoter", "referral", "done")}
    assert {
        ("entry", ids["check_date"], ""),
        (ids["check_date"], ids["apology"], "broken"),
        (ids["check_date"], ids["survey"], "kept"),
        (ids["apology"], ids["survey"], ""),
        (ids["await_survey"], ids["promoter"], "survey.answered"),
        (ids["await_survey"], ids["call_back"], "timeout 1w"),
        (ids["call_back"], ids["promoter"], ""),
        (ids["promoter"], ids["referral"], "then"),
        (ids["promoter"], ids["done"], "else"),
        (ids["referral"], ids["done"], ""),
    } <= edges(graph)
    assert not any(edge.source == ids["done"] for edge in graph.edges)  # goto leaves the stage
    assert "done" not in graph.nodes  # every path leaves, so no "playbook done" node


def test_stage_without_exit_ends_in_a_done_node(project):
    graph = stage_graph(project, "sale")
    assert (labelled(graph, "summary"), "done", "") in edges(graph)
    assert graph.nodes["entry"].label == ["enter sale", "on order.placed"]


def test_stage_mermaid_is_a_flowchart_with_escaped_labels(project):
    text = to_mermaid(stage_graph(project, "check_in"))
    assert text.startswith("flowchart TD\n")
    assert '{"promoter<br/>if facts.last_score != null && facts.last_score #gt;= 9"}' in text
    assert '-->|"timeout 1w"|' in text


def test_dot_output_is_a_digraph(project):
    text = to_dot(lifecycle_graph(project))
    assert text.startswith('digraph "authoring" {')
    assert '"sale" -> "check_in" [label="order.delivered"];' in text
    assert '"check_in" -> "closed" [label="goto", style=dashed];' in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_through_graphviz():
    result = CliRunner().invoke(main, ["graph", str(FIXTURE), "--stage", "check_in", "--format", "svg"])
    assert result.exit_code == 0
    assert "<svg" in result.output and "await_survey" in result.output


def test_svg_without_graphviz_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(main, ["graph", str(FIXTURE), "--format", "svg"])
    assert result.exit_code == 1
    assert result.output.startswith("error: --format svg needs Graphviz's 'dot' program")
    assert result.output.count("\n") == 1


def test_cli_mermaid_by_default_and_to_a_file(tmp_path):
    result = CliRunner().invoke(main, ["graph", str(FIXTURE / "lifecycle.yaml"), "-o", str(tmp_path / "g.mmd")])
    assert result.exit_code == 0
    assert (tmp_path / "g.mmd").read_text().startswith("stateDiagram-v2\n")


def test_cli_unknown_stage_suggests_a_name():
    result = CliRunner().invoke(main, ["graph", str(FIXTURE), "--stage", "check_inn"])
    assert result.exit_code == 1
    assert result.output.startswith("error: unknown stage 'check_inn' (did you mean 'check_in'?)")


def test_cli_terminal_stage_has_no_flowchart():
    result = CliRunner().invoke(main, ["graph", str(FIXTURE), "--stage", "closed"])
    assert (result.exit_code, result.output) == (1, "error: stage 'closed' has no playbook to draw (it is terminal)\n")


@pytest.mark.parametrize("stage", [None, "set_expectations", "delivery_check_in", "warranty_follow_up",
                                   "referral_request"])
def test_bundled_lifecycle_draws(stage):
    args = ["graph", str(ROOT / "playbooks"), "--format", "dot"] + (["--stage", stage] if stage else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("digraph")


@pytest.mark.parametrize("page", ["docs/authoring.md", "README.md"])
def test_the_diagrams_of_the_bundled_lifecycle_are_current(page):
    text = (ROOT / page).read_text()
    block = text.split("<!-- lifecycle-graph:", 1)[1].split("<!-- /lifecycle-graph -->", 1)[0]
    shown = block.split("```mermaid\n", 1)[1].split("```", 1)[0]
    current = to_mermaid(lifecycle_graph(load_project(ROOT / "playbooks" / "lifecycle.yaml")))
    assert shown == current, (
        f"{page} shows an old lifecycle diagram; paste the output of\n"
        "    .venv/bin/lifecycle graph playbooks\n"
        "between the ```mermaid fences of its lifecycle-graph block"
    )

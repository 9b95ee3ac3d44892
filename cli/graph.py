"""`lifecycle graph`: the lifecycle as a state diagram, or one stage playbook as a flowchart."""

from __future__ import annotations

from pathlib import Path

import click

from cli.output import fail, lifecycle_path, load
from engine.errors import suggest
from engine.graph import GraphvizError, lifecycle_graph, stage_graph, to_dot, to_mermaid, to_svg


@click.command("graph")
@click.argument("path", type=click.Path(path_type=Path), default=Path("playbooks"))
@click.option("--stage", help="Draw this stage's playbook as a flowchart instead of the lifecycle.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid",
              show_default=True, help="mermaid for Markdown; dot for Graphviz; svg needs Graphviz installed.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to this file instead of printing.")
def graph_command(path: Path, stage: str | None, fmt: str, output: Path | None) -> None:
    """Draw the lifecycle, or one stage's playbook (PATH: lifecycle file or folder).

    The lifecycle is a state diagram of stages, transitions (event and guard) and gotos;
    --stage draws that stage's steps as a flowchart with its branches, waits and timeouts.
    """
    project = load(lifecycle_path(path))
    if stage is None:
        graph = lifecycle_graph(project)
    elif stage not in project.lifecycle.stages:
        fail(f"unknown stage '{stage}'{suggest(stage, project.lifecycle.stages)}; "
             f"stages: {', '.join(project.lifecycle.stages)}")
    elif stage not in project.playbooks:
        fail(f"stage '{stage}' has no playbook to draw (it is terminal)")
    else:
        graph = stage_graph(project, stage)
    try:
        text = {"mermaid": to_mermaid, "dot": to_dot, "svg": to_svg}[fmt](graph)
    except GraphvizError as error:
        fail(str(error))
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error}")
    click.echo(f"wrote {output}")

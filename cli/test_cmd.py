"""`lifecycle test`: run playbook test cases through the simulator and report ok or a diff."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.output import fail
from cli.simulate import format_timeline
from engine.casefile import CaseResult, run_cases

DEFAULT_CASES = Path("playbooks/tests")


def format_result(result: CaseResult) -> str:
    """`ok <name>`, or FAIL with each difference (expected vs actual) and the actual timeline."""
    if result.ok:
        return f"ok {result.name}"
    lines = [f"FAIL {result.name} ({result.path})"]
    for failure in result.failures:
        lines += [f"  {line}" for line in failure.splitlines()]
    if result.timeline is not None:
        lines.append("  actual timeline:")
        lines += [f"    {line}" for line in format_timeline(result.timeline).splitlines()]
    return "\n".join(lines)


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def test_command(paths: tuple[Path, ...]) -> None:
    """Run playbook test cases through the simulator (default: playbooks/tests).

    PATHS are case files or folders of them; a playbooks folder means its tests/ folder.

    Each case simulates a customer's events and checks the stages, actions, promises,
    facts and outcome it expects. Exit 1 when any case fails.
    """
    # A playbooks folder (one holding lifecycle.yaml) means its tests/, as `lifecycle test
    # playbooks` reads next to `lifecycle validate playbooks`.
    chosen = [path / "tests" if (path / "lifecycle.yaml").is_file() else path
              for path in paths] or [DEFAULT_CASES]
    for path in chosen:
        if not path.exists():
            fail(f"no such file or folder: {path}")
    results = run_cases(chosen)
    if not results:
        fail(f"no test cases (*.yaml) in {', '.join(map(str, chosen))}")
    for result in results:
        click.echo(format_result(result))
    failed = sum(1 for result in results if not result.ok)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        sys.exit(1)

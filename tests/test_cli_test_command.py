"""`lifecycle test PLAYBOOKS`: a playbooks folder runs the cases in its tests/ folder."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def test_a_playbooks_folder_runs_its_tests_folder():
    result = CliRunner().invoke(main, ["test", str(ROOT / "playbooks")])
    assert result.exit_code == 0, result.output
    cases = len(list((ROOT / "playbooks" / "tests").glob("*.yaml")))
    assert result.output.splitlines()[-1] == f"{cases} passed, 0 failed"
    assert "ok a second order before the first is delivered is confirmed at once" in result.output

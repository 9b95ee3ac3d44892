"""Values that would break a running workflow are load errors: durations beyond 100 years,
YAML values that are not plain JSON, numbers too large to keep."""

from __future__ import annotations

import shutil
from pathlib import Path
from textwrap import dedent, indent

import pytest

from engine.errors import PlaybookLoadError
from engine.loader import load_project

VALID = Path(__file__).parent / "fixtures" / "valid"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(VALID, tmp_path / "p")
    return Path("p")


def sale(folder: Path, steps: str, head: str = "") -> None:
    """The sale playbook: `head` lines after `playbook: sale`, then the steps."""
    (folder / "sale.yaml").write_text("playbook: sale\n" + dedent(head) + "steps:\n" + indent(dedent(steps), "  "))
    (folder / "delivery.yaml").write_text("playbook: delivery\nsteps:\n  - kind: end\n")


def errors(folder: Path) -> list[str]:
    with pytest.raises(PlaybookLoadError) as info:
        load_project(folder / "lifecycle.yaml")
    return [str(error) for error in info.value.errors]


def test_a_wait_of_more_than_100_years_is_located(folder: Path) -> None:
    sale(folder, "- kind: wait\n  duration: 5300w\n")
    assert errors(folder) == ["p/sale.yaml:4:15: '5300w' is longer than 100 years"]


def test_a_duration_with_a_thousand_digits_is_an_error_not_an_overflow(folder: Path) -> None:
    sale(folder, f"- kind: wait\n  duration: {'9' * 5000}d\n")
    assert errors(folder) == [f"p/sale.yaml:4:15: '{'9' * 40}' is longer than 100 years"]


def test_a_task_due_in_a_century_and_more(folder: Path) -> None:
    sale(folder, "- kind: task\n  role: installer\n  title: Later\n  guideline: Wait.\n  due: P40000D\n")
    assert errors(folder) == ["p/sale.yaml:7:10: 'P40000D' is longer than 100 years"]


def test_exactly_100_years_is_allowed(folder: Path) -> None:
    sale(folder, "- kind: wait\n  duration: 36525d\n")
    load_project(folder / "lifecycle.yaml")


@pytest.mark.parametrize(("value", "message"), [
    ("!!binary aGVsbG8=", "binary data (!!binary) is not supported; write the value as text"),
    (".inf", "inf is not a number a lifecycle can keep; write a finite number"),
    ("-.inf", "-inf is not a number a lifecycle can keep; write a finite number"),
    (".nan", "nan is not a number a lifecycle can keep; write a finite number"),
    ("123456789012345678901234567890",
     "the number is too large: whole numbers are 64-bit (at most 9223372036854775807)"),
    ("!!set {a, b}", "unsupported YAML tag '!!set'"),
    ("!!python/object:os.system x", "unknown YAML tag '!!python/object:os.system'"),
    ("2026-03-01", "2026-03-01 is read as a date, which becomes text once the workflow stores it; "
                   "quote it ('2026-03-01') or keep dates in a fact of type date"),
])
def test_a_var_that_is_not_plain_json_is_located(folder: Path, value: str, message: str) -> None:
    sale(folder, "- kind: end\n", head=f"vars:\n  launch: {value}\n")
    assert errors(folder) == [f"p/sale.yaml:3:11: {message}"]


def test_a_date_deep_inside_a_var(folder: Path) -> None:
    sale(folder, "- kind: end\n", head="vars:\n  launch:\n    dates: [2026-03-01T10:00:00Z]\n")
    assert errors(folder) == ["p/sale.yaml:4:13: 2026-03-01T10:00:00+00:00 is read as a date, which becomes "
                              "text once the workflow stores it; quote it ('2026-03-01T10:00:00+00:00') "
                              "or keep dates in a fact of type date"]


def test_quoted_dates_and_ordinary_values_are_fine(folder: Path) -> None:
    sale(folder, "- kind: end\n", head="vars:\n  launch: '2026-03-01'\n  big: 9223372036854775807\n"
                                     "  rate: 0.25\n  tags: [a, {b: null}]\n")
    assert load_project(folder / "lifecycle.yaml").playbooks["sale"].vars["launch"] == "2026-03-01"


def test_a_date_fact_may_start_at_a_date_but_a_list_fact_may_not_hold_one(folder: Path) -> None:
    path = folder / "lifecycle.yaml"
    text = path.read_text().replace(
        "  last_satisfaction:\n    type: int\n",
        "  last_satisfaction:\n    type: int\n  opened:\n    type: date\n    initial: 2026-01-01\n"
        "  holidays:\n    type: list\n    initial: [2026-12-25]\n",
    )
    path.write_text(text)
    line = text.splitlines().index("    initial: [2026-12-25]") + 1
    assert errors(folder) == [f"p/lifecycle.yaml:{line}:15: 2026-12-25 is read as a date, which becomes text once "
                              f"the workflow stores it; quote it ('2026-12-25') or keep dates in a fact of type date"]

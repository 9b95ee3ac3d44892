"""Whatever an author types, the loader returns a Project or located errors: never a traceback."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import PlaybookLoadError
from engine.loader import load_project, parse_yaml
from engine.project import Project
from engine.references import ExpressionSyntaxError, analyse

HERE = Path(__file__).parent
VALID = HERE / "fixtures" / "valid"
BUNDLED = HERE.parent / "playbooks"
BASES = [VALID] + ([BUNDLED] if (BUNDLED / "lifecycle.yaml").exists() else [])
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def fresh_copy(base: Path, scratch: Path) -> Path:
    """A new copy of a lifecycle folder for one example; hypothesis runs many per test."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    shutil.copytree(base, folder / "p")
    return folder / "p"


def assert_loads_or_locates(folder: Path) -> None:
    """The whole contract: a Project, or a PlaybookLoadError whose errors all point into a file."""
    try:
        project = load_project(folder / "lifecycle.yaml")
    except PlaybookLoadError as error:
        assert error.errors, "a load error must carry at least one error"
        for item in error.errors:
            assert item.line >= 1 and item.column >= 1, item
            assert item.message and "\n" not in item.message, item
            assert "internal error" not in item.message, item
            path = Path(item.path)
            if path.is_file():
                lines = path.read_bytes().count(b"\n") + 1
                assert item.line <= lines + 1, item
        return
    assert isinstance(project, Project)
    assert set(project.versions) == set(project.lifecycle.stages)


# ---------------------------------------------------------------- random documents

YAMLISH = st.text(
    alphabet=st.sampled_from(list("abkindsteplayo:-_ []{},.'\"|>&*!#%@`?\n\t 0123456789\\~") + ["\u00e9", "\x00"]),
    max_size=120,
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False),
    st.text(max_size=12), st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.sampled_from(["send", "wait", "if", "end", "sale", "delivery", "2d", "facts.open_tickets > 0",
                     "order.placed", "account_manager", "*", "preferred", "check_in"]),
)
keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["kind", "steps", "playbook", "template", "when", "then", "else", "elif", "on",
                     "events", "duration", "stage", "id", "var", "fact", "value", "promise", "lifecycle",
                     "stages", "transitions", "from", "to", "channels", "roles", "initial_stage"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


@FUZZ
@given(text=YAMLISH)
def test_random_text_as_the_lifecycle_file(scratch: Path, text: str) -> None:
    folder = fresh_copy(VALID, scratch)
    (folder / "lifecycle.yaml").write_text(text, encoding="utf-8")
    assert_loads_or_locates(folder)


@FUZZ
@given(text=YAMLISH)
def test_random_text_as_a_stage_playbook(scratch: Path, text: str) -> None:
    folder = fresh_copy(VALID, scratch)
    (folder / "sale.yaml").write_text(text, encoding="utf-8")
    assert_loads_or_locates(folder)


@FUZZ
@given(data=documents)
def test_random_yaml_data_as_a_stage_playbook(scratch: Path, data: Any) -> None:
    folder = fresh_copy(VALID, scratch)
    (folder / "delivery.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert_loads_or_locates(folder)


@FUZZ
@given(steps=st.lists(st.dictionaries(keys, documents, max_size=5), min_size=1, max_size=4))
def test_random_steps_in_a_stage_playbook(scratch: Path, steps: list[dict[str, Any]]) -> None:
    folder = fresh_copy(VALID, scratch)
    text = yaml.safe_dump({"playbook": "delivery", "steps": steps}, allow_unicode=True)
    (folder / "delivery.yaml").write_text(text, encoding="utf-8")
    assert_loads_or_locates(folder)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("{}%#()[]|.,'\" abcdefnrsu_\n=<>+-")), max_size=80))
def test_random_template_text(scratch: Path, text: str) -> None:
    folder = fresh_copy(VALID, scratch)
    (folder / "templates" / "check_in.txt").write_text(text, encoding="utf-8")
    assert_loads_or_locates(folder)


EXPRESSIONS = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz._()[]{},:?!&|=<>+-*/%'\"0123456789 \n$")),
    max_size=60,
)


@FUZZ
@given(source=EXPRESSIONS)
def test_expression_analysis_never_crashes(source: str) -> None:
    try:
        info = analyse(source)
    except ExpressionSyntaxError as error:
        assert error.line >= 1 and error.column >= 1
        return
    for ref in info.references:
        assert all(line >= 1 and column >= 1 for line, column in ref.positions)


@FUZZ
@given(source=EXPRESSIONS, style=st.sampled_from(["plain", "single", "double", "literal", "folded"]))
def test_random_expression_in_a_playbook(scratch: Path, source: str, style: str) -> None:
    folder = fresh_copy(VALID, scratch)
    if style == "plain":
        value = yaml.safe_dump(source, default_style=None).strip()
        if value.endswith("\n..."):
            value = value[: -len("\n...")]
    elif style == "single":
        value = "'" + source.replace("'", "''").replace("\n", " ") + "'"
    elif style == "double":
        value = yaml.safe_dump(source, default_style='"', width=10**6).strip()
    else:
        marker = "|" if style == "literal" else ">"
        body = "\n".join("        " + line for line in (source.splitlines() or [""]))
        value = f"{marker}\n{body}"
    text = (f"playbook: delivery\nsteps:\n  - kind: if\n    when: {value}\n"
            f"    then:\n      - kind: end\n")
    (folder / "delivery.yaml").write_text(text, encoding="utf-8")
    assert_loads_or_locates(folder)


# ---------------------------------------------------------------- mutations of real playbooks


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every data path in a document, the root included."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for segment in path:
        data = data[segment]
    return data


def mutate(data: Any, choice: st.DataObject) -> Any:
    """Apply one random edit an author might make: delete, rename, retype or change a value."""
    paths = [p for p in _paths(data) if p]
    if not paths:
        return choice.draw(documents)
    path = choice.draw(st.sampled_from(paths))
    parent, last = _get(data, path[:-1]), path[-1]
    operation = choice.draw(st.sampled_from(["delete", "rename", "scalar", "swap", "duplicate", "near"]))
    if operation == "delete":
        del parent[last]
    elif operation == "rename" and isinstance(parent, dict):
        new = choice.draw(keys)
        value = parent.pop(last)
        parent[new] = value
    elif operation == "near" and isinstance(parent, dict) and isinstance(last, str) and last:
        # A typo: drop, double or swap one character of a key.
        index = choice.draw(st.integers(0, len(last) - 1))
        typo = choice.draw(st.sampled_from([
            last[:index] + last[index + 1:], last[:index] + last[index] + last[index:],
            last[:index] + last[index + 1: index + 2] + last[index: index + 1] + last[index + 2:],
        ]))
        parent[typo or "x"] = parent.pop(last)
    elif operation == "scalar":
        parent[last] = choice.draw(scalars)
    elif operation == "swap":
        value = parent[last]
        parent[last] = choice.draw(st.sampled_from([[value], {"x": value}, str(value), None, 1]))
    elif operation == "duplicate" and isinstance(parent, list):
        parent.insert(last, _clone(parent[last]))
    else:
        parent[last] = choice.draw(scalars)
    return data


def _clone(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


def _yaml_files(base: Path) -> list[str]:
    return sorted(p.name for p in base.glob("*.yaml"))


@pytest.mark.parametrize("base", BASES, ids=[b.name for b in BASES])
@FUZZ
@given(choice=st.data())
def test_mutated_playbooks(scratch: Path, base: Path, choice: st.DataObject) -> None:
    folder = fresh_copy(base, scratch)
    name = choice.draw(st.sampled_from(_yaml_files(base)))
    doc, errors = parse_yaml(name, (folder / name).read_text(encoding="utf-8"))
    assert not errors
    data = doc.data
    for _ in range(choice.draw(st.integers(1, 3))):
        data = mutate(data, choice)
    (folder / name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert_loads_or_locates(folder)


@pytest.mark.parametrize("base", BASES, ids=[b.name for b in BASES])
@FUZZ
@given(choice=st.data())
def test_mutated_playbook_text(scratch: Path, base: Path, choice: st.DataObject) -> None:
    """Edits to the text itself: a deleted, duplicated or re-indented line, a stray character."""
    folder = fresh_copy(base, scratch)
    name = choice.draw(st.sampled_from(_yaml_files(base)))
    lines = (folder / name).read_text(encoding="utf-8").split("\n")
    index = choice.draw(st.integers(0, len(lines) - 1))
    operation = choice.draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "insert"]))
    if operation == "delete":
        del lines[index]
    elif operation == "duplicate":
        lines.insert(index, lines[index])
    elif operation == "indent":
        lines[index] = " " * choice.draw(st.integers(1, 3)) + lines[index]
    elif operation == "dedent":
        lines[index] = lines[index][choice.draw(st.integers(1, 4)):]
    else:
        column = choice.draw(st.integers(0, len(lines[index])))
        char = choice.draw(st.sampled_from(list(":-[]{}'\"#&*!|>%@`\t")))
        lines[index] = lines[index][:column] + char + lines[index][column:]
    (folder / name).write_text("\n".join(lines), encoding="utf-8")
    assert_loads_or_locates(folder)

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
# The bundled lifecycle is several times larger than the fixture: fewer examples keep it quick.
FEW = settings(FUZZ, max_examples=100)


class Workspace:
    """One copy of a lifecycle folder; each example edits one file and then restores it."""

    def __init__(self, base: Path, root: Path) -> None:
        self.base = base
        self.folder = Path(tempfile.mkdtemp(dir=root)) / "p"
        shutil.copytree(base, self.folder)

    def read(self, name: str) -> str:
        return (self.base / name).read_text(encoding="utf-8")

    def edit_and_load(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text, encoding="utf-8")
        try:
            assert_loads_or_locates(self.folder)
        finally:
            shutil.copyfile(self.base / name, self.folder / name)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def valid(scratch: Path) -> Workspace:
    return Workspace(VALID, scratch)


@pytest.fixture(scope="module", params=BASES, ids=[b.name for b in BASES])
def base(request: pytest.FixtureRequest, scratch: Path) -> Workspace:
    return Workspace(request.param, scratch)


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
                text = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                assert item.line <= text.count(b"\n") + 2, item
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
def test_random_text_as_the_lifecycle_file(valid: Workspace, text: str) -> None:
    valid.edit_and_load("lifecycle.yaml", text)


@FUZZ
@given(text=YAMLISH)
def test_random_text_as_a_stage_playbook(valid: Workspace, text: str) -> None:
    valid.edit_and_load("sale.yaml", text)


@FUZZ
@given(data=documents)
def test_random_yaml_data_as_a_stage_playbook(valid: Workspace, data: Any) -> None:
    valid.edit_and_load("delivery.yaml", yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(steps=st.lists(st.dictionaries(keys, documents, max_size=5), min_size=1, max_size=4))
def test_random_steps_in_a_stage_playbook(valid: Workspace, steps: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump({"playbook": "delivery", "steps": steps}, allow_unicode=True)
    valid.edit_and_load("delivery.yaml", text)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("{}%#()[]|.,'\" abcdefnrsu_\n=<>+-")), max_size=80))
def test_random_template_text(valid: Workspace, text: str) -> None:
    valid.edit_and_load("templates/check_in.txt", text)


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
def test_random_expression_in_a_playbook(valid: Workspace, source: str, style: str) -> None:
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
    valid.edit_and_load("delivery.yaml", text)


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


@FEW
@given(choice=st.data())
def test_mutated_playbooks(base: Workspace, choice: st.DataObject) -> None:
    name = choice.draw(st.sampled_from(_yaml_files(base.base)))
    doc, errors = parse_yaml(name, base.read(name))
    assert not errors
    data = doc.data
    for _ in range(choice.draw(st.integers(1, 3))):
        data = mutate(data, choice)
    base.edit_and_load(name, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@FEW
@given(choice=st.data())
def test_mutated_playbook_text(base: Workspace, choice: st.DataObject) -> None:
    """Edits to the text itself: a deleted, duplicated or re-indented line, a stray character."""
    name = choice.draw(st.sampled_from(_yaml_files(base.base)))
    lines = base.read(name).split("\n")
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
    base.edit_and_load(name, "\n".join(lines))


# ---------------------------------------------------------------- positions are exact

def _plain_ok(source: str) -> bool:
    """Whether `source` reads back unchanged as a plain (unquoted) YAML scalar."""
    try:
        return yaml.safe_load(f"k: {source}") == {"k": source}
    except yaml.YAMLError:
        return False


GOOD_PARTS = ["facts.open_tickets > 0", "customer.name == 'x'", "now > timestamp('2020-01-01T00:00:00Z')",
              "(facts.open_tickets + 1) * 2 < 10", "[1, 2].exists(n, n > facts.open_tickets)"]


@FUZZ
@given(
    parts=st.lists(st.sampled_from(GOOD_PARTS), max_size=4),
    where=st.integers(0, 4),
    breaks=st.lists(st.booleans(), min_size=5, max_size=5),
    style=st.sampled_from(["plain", "single", "double", "literal", "folded"]),
)
def test_unknown_name_is_located_on_the_name(valid: Workspace, parts: list[str], where: int,
                                             breaks: list[bool], style: str) -> None:
    parts = list(parts)
    parts.insert(min(where, len(parts)), "facts.zz_nope == 1")
    multiline = style in ("literal", "folded")
    pieces = []
    for index, part in enumerate(parts):
        joiner = "" if index == 0 else ("\n && " if multiline and breaks[index % 5] else " && ")
        pieces.append(joiner + part)
    source = "".join(pieces)
    if style == "plain" and _plain_ok(source):
        value = source
    elif style in ("plain", "single"):
        value = "'" + source.replace("'", "''") + "'"
    elif style == "double":
        value = '"' + source + '"'
    else:
        marker = "|" if style == "literal" else ">"
        value = marker + "\n" + "\n".join("      " + line for line in source.split("\n"))
    text = f"playbook: delivery\nsteps:\n  - kind: set\n    var: x\n    value: {value}\n"
    folder = valid.folder
    (folder / "delivery.yaml").write_text(text, encoding="utf-8")
    try:
        with pytest.raises(PlaybookLoadError) as info:
            load_project(folder / "lifecycle.yaml")
    finally:
        shutil.copyfile(valid.base / "delivery.yaml", folder / "delivery.yaml")
    [error] = [e for e in info.value.errors if "zz_nope" in e.message]
    line = text.split("\n")[error.line - 1]
    assert line[error.column - 1:].startswith("zz_nope"), (error, text)

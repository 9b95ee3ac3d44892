"""A copy of the valid fixture lifecycle in a temporary folder, edited one file at a time; and
`in_memory`, a project without files for engine tests.

Loader and type tests write a mistake into it and expect it back as `file:line:column`; the
`ws` fixture (tests/conftest.py) runs from the folder above it, so paths come out relative.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from textwrap import dedent, indent

import pytest
import yaml

from engine.errors import PlaybookLoadError
from engine.loader import load_project
from engine.model import Lifecycle, Playbook
from engine.project import Project

VALID = Path(__file__).parent / "fixtures" / "valid"


def in_memory(lifecycle: str | dict, playbooks: dict[str, str | dict],
              templates: dict[str, str] | None = None) -> Project:
    """A project held in memory: the lifecycle and its playbooks as YAML text (or the data it
    parses to), every playbook at version v1."""
    def data(source: str | dict) -> dict:
        return yaml.safe_load(source) if isinstance(source, str) else source

    return Project(path=None, lifecycle=Lifecycle.model_validate(data(lifecycle)),
                   playbooks={name: Playbook.model_validate(data(source)) for name, source in playbooks.items()},
                   templates=templates or {}, versions={name: "v1" for name in playbooks})


class Workspace:
    """The fixture lifecycle under `root/p`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(VALID, root / "p")

    def write(self, name: str, text: str) -> None:
        path = self.root / "p" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))

    def sale(self, steps: str, head: str = "playbook: sale\n", vars: str = "") -> None:
        """Replace the sale playbook (steps start on line 3 without `vars`) and make delivery trivial."""
        if vars:
            head += f"vars:\n{indent(dedent(vars), '  ')}"
        self.write("sale.yaml", head + "steps:\n" + indent(dedent(steps), "  "))
        self.write("delivery.yaml", "playbook: delivery\nsteps:\n  - kind: end\n")

    def lifecycle(self, old: str, new: str) -> None:
        """Edit the lifecycle file by replacing one exact snippet."""
        path = self.root / "p" / "lifecycle.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    def errors(self) -> list[str]:
        with pytest.raises(PlaybookLoadError) as info:
            load_project(Path("p/lifecycle.yaml"))
        return [str(error) for error in info.value.errors]

    def load(self):
        return load_project(Path("p/lifecycle.yaml"))

"""A copy of the valid fixture lifecycle in a temporary folder, edited one file at a time.

Loader and type tests write a mistake into it and expect it back as `file:line:column`; the
`ws` fixture (tests/conftest.py) runs from the folder above it, so paths come out relative.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from textwrap import dedent, indent

import pytest

from engine.errors import PlaybookLoadError
from engine.loader import load_project

VALID = Path(__file__).parent / "fixtures" / "valid"


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

"""The `load_stage` activity: reading playbooks from disk is I/O, so it is an effect.

The workflow pins what this returns for the whole stage entry, so editing a playbook never
changes a stage a customer is already in; the next entry gets the new version.
"""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from engine.loader import load_project
from engine.project import Project, StageBundle


class PlaybookSource:
    """The lifecycle on disk, reloaded when any of its files changes."""

    def __init__(self, lifecycle_path: str | Path) -> None:
        self.path = Path(lifecycle_path)
        self._project: Project | None = None
        self._stamp: tuple | None = None

    def _files_stamp(self) -> tuple:
        folder = self.path.parent
        return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size)
                            for p in folder.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".txt")))

    def project(self) -> Project:
        """The current project; a file being edited into an invalid state raises, and the
        activity retries until it is fixed, so no lifecycle ever runs a broken playbook."""
        stamp = self._files_stamp()
        if self._project is None or stamp != self._stamp:
            self._project = load_project(self.path)
            self._stamp = stamp
        return self._project

    @activity.defn(name="load_stage")
    async def load_stage(self, stage: str) -> StageBundle:
        """The current version of a stage's playbook and templates."""
        return self.project().bundle(stage)

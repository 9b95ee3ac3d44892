"""The `load_stage` activity: reading playbooks from disk is I/O, so it is an effect.

The workflow pins what this returns for the whole stage entry, so editing a playbook never
changes a stage a customer is already in; the next entry gets the new version.

A broken file holds only the stages it belongs to: when the whole project does not load,
a stage whose own files (the lifecycle file, its playbook, its templates) have no error
still gets its bundle (`engine.project.sound_bundle`).
"""

from __future__ import annotations

from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from engine.errors import PlaybookLoadError
from engine.loader import load_project
from engine.project import Project, StageBundle, sound_bundle

LOAD_FAILED = "StageLoadFailed"  # ApplicationError type: the message is the located errors


class PlaybookSource:
    """The lifecycle on disk, reloaded when any of its files changes."""

    def __init__(self, lifecycle_path: str | Path) -> None:
        self.path = Path(lifecycle_path)
        self._project: Project | None = None
        self._stamp: tuple | None = None

    def _files(self) -> list[Path]:
        """The files the loaded project was made of: only an edit to one of them matters."""
        project = self._project
        if project is None:
            return []
        folder = self.path.parent
        playbooks = [folder / spec.playbook for spec in project.lifecycle.stages.values() if spec.playbook]
        templates = [folder / project.lifecycle.templates / f"{name}.txt" for name in project.templates]
        return [self.path, *playbooks, *templates]

    def _files_stamp(self) -> tuple | None:
        try:
            return tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size) for path in self._files())
        except OSError:
            return None  # a file went away: load again, and report it if it is really missing

    def project(self) -> Project:
        """The current project; a file being edited into an invalid state raises, and the
        stage entry is held until it is fixed, so no lifecycle ever runs a broken playbook."""
        stamp = self._files_stamp()
        if self._project is None or stamp is None or stamp != self._stamp:
            self._project = load_project(self.path)
            self._stamp = self._files_stamp()
        return self._project

    def bundle(self, stage: str) -> StageBundle:
        """The current version of one stage; raises PlaybookLoadError only for its own files."""
        try:
            return self.project().bundle(stage)
        except PlaybookLoadError as whole:
            return sound_bundle(whole, stage)

    @activity.defn(name="load_stage")
    async def load_stage(self, stage: str) -> StageBundle:
        """The current version of a stage's playbook and templates."""
        try:
            return self.bundle(stage)
        except PlaybookLoadError as error:
            # Not retried here: the workflow holds the customer and retries on its own clock.
            # An expected outcome, not a crash: one line per attempt in the worker's log, where
            # the SDK printed a traceback for every held customer at every look at the files.
            activity.logger.warning("stage %s does not load, the customer is held: %s", stage, error.errors[0])
            raise ApplicationError(str(error), type=LOAD_FAILED, non_retryable=True,
                                   category=ApplicationErrorCategory.BENIGN) from None

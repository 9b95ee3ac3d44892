"""The `load_stage` activity: reading playbooks from disk is I/O, so it is an effect.

The workflow pins what this returns for the whole stage entry, so editing a playbook never
changes a stage a customer is already in; the next entry gets the new version.

A broken file holds only the stages it belongs to: when the whole project does not load,
a stage whose own files (the lifecycle file, its playbook, its templates) are sound is
loaded on its own, checked against the lifecycle.
"""

from __future__ import annotations

from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.errors import PlaybookError, PlaybookLoadError
from engine.loader import _version, load_document, load_playbook_file, load_project, validate
from engine.model import Lifecycle
from engine.project import Project, StageBundle, templates_used

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
            self._project = None
            self._project = load_project(self.path)
            self._stamp = self._files_stamp()
        return self._project

    def bundle(self, stage: str) -> StageBundle:
        """The current version of one stage; raises PlaybookLoadError only for its own files."""
        try:
            return self.project().bundle(stage)
        except PlaybookLoadError as whole:
            return load_one_stage(self.path, stage, whole)

    @activity.defn(name="load_stage")
    async def load_stage(self, stage: str) -> StageBundle:
        """The current version of a stage's playbook and templates."""
        try:
            return self.bundle(stage)
        except PlaybookLoadError as error:
            # Not retried here: the workflow holds the customer and retries on its own clock.
            raise ApplicationError(str(error), type=LOAD_FAILED, non_retryable=True) from None


def load_one_stage(lifecycle_path: Path, stage: str, whole: PlaybookLoadError) -> StageBundle:
    """Load `stage` alone, when the project as a whole does not load because of other files.

    Raises PlaybookLoadError with the errors that concern this stage (the lifecycle file is
    every stage's concern)."""
    raw, doc, errors = load_document(lifecycle_path)
    lifecycle = None
    if doc is not None and not errors:
        lifecycle, errors = validate(doc, Lifecycle)
    if lifecycle is None or errors or stage not in lifecycle.stages:
        raise PlaybookLoadError(errors or whole.errors)
    folder = lifecycle_path.parent
    spec = lifecycle.stages[stage]
    if not spec.playbook:
        return StageBundle(stage=stage, playbook=None, templates={}, version=_version(raw or b"", b""),
                           lifecycle=lifecycle)
    playbook_path = folder / spec.playbook
    playbook = load_playbook_file(playbook_path, lifecycle)  # raises with this file's errors
    templates_folder = (folder / lifecycle.templates).resolve()
    templates: dict[str, str] = {}
    parts = [raw or b"", playbook_path.read_bytes()]
    for name in sorted(templates_used(playbook)):
        file = (templates_folder / f"{name}.txt").resolve()
        if not file.is_relative_to(folder.resolve()):
            raise PlaybookLoadError([PlaybookError(str(file), 1, 1, "a template outside the lifecycle's folder")])
        mine = [error for error in whole.errors if Path(error.path).resolve() == file]
        if mine:
            raise PlaybookLoadError(mine)
        templates[name] = file.read_text(encoding="utf-8")
        parts += [name.encode(), templates[name].encode()]
    return StageBundle(stage=stage, playbook=playbook, templates=templates, version=_version(*parts),
                       lifecycle=lifecycle)

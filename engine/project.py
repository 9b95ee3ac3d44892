"""A loaded lifecycle: its definition, stage playbooks and templates, each stage versioned."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from engine.errors import PlaybookLoadError
from engine.model import Lifecycle, Playbook
from engine.walk import walk_steps


class StageBundle(BaseModel):
    """What a lifecycle pins when it enters a stage: the playbook, its templates, a version."""

    stage: str
    playbook: Playbook | None
    templates: dict[str, str]
    version: str
    lifecycle: Lifecycle | None = None  # the current lifecycle definition, refreshed per entry
    # Per stage whose playbook loaded with this one, the events it waits for (its wait_for
    # events, `task.completed` for a task with on_done): how the lifecycle judges an event sent
    # while the customer moves to a stage not pinned yet (engine.lifecycle). None in a bundle
    # from before it was kept: such an event is kept for that stage and judged once it is pinned.
    waits: dict[str, list[str]] | None = None


@dataclass
class Project:
    """The output of `engine.loader.load_project`: everything needed to run a lifecycle."""

    path: Path
    lifecycle: Lifecycle
    playbooks: dict[str, Playbook] = field(default_factory=dict)
    templates: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    _bundles: dict[str, StageBundle] = field(default_factory=dict, repr=False, compare=False)
    _waits: dict[str, list[str]] | None = field(default=None, repr=False, compare=False)

    def bundle(self, stage: str) -> StageBundle:
        """The pinned unit for one stage; the workflow fetches it through an activity.

        Made once per stage (a project does not change once loaded): the simulator asks for
        it at every stage entry of every customer. Callers must not change it."""
        made = self._bundles.get(stage)
        if made is None:
            made = self._bundles[stage] = self._make_bundle(stage)
        return made

    def _make_bundle(self, stage: str) -> StageBundle:
        playbook = self.playbooks.get(stage)
        return StageBundle(
            stage=stage,
            playbook=playbook,
            templates={name: self.templates[name] for name in templates_used(playbook)},
            version=self.versions.get(stage, ""),
            lifecycle=self.lifecycle,
            waits=self.waits(),
        )

    def waits(self) -> dict[str, list[str]]:
        """Per stage with a playbook loaded, the events it waits for (see StageBundle.waits)."""
        if self._waits is None:
            self._waits = {name: sorted({event for step, _ in walk_steps(playbook.steps)
                                         for event in step.events_waited()})
                           for name, playbook in sorted(self.playbooks.items())}
        return self._waits


def sound_bundle(error: PlaybookLoadError, stage: str) -> StageBundle:
    """The bundle of `stage` from a lifecycle that did not load as a whole, when none of the
    errors is in the stage's own files (the lifecycle file, its playbook, its templates): a
    broken file holds only the stages it belongs to. Raises `error` otherwise."""
    project = error.partial
    if project is None or project.path is None or stage not in project.lifecycle.stages:
        raise error
    folder = project.path.parent
    spec = project.lifecycle.stages[stage]
    playbook = project.playbooks.get(stage)
    own = {path.resolve() for path in (
        project.path, *([folder / spec.playbook] if spec.playbook else []),
        *(folder / project.lifecycle.templates / f"{name}.txt" for name in templates_used(playbook)))}
    mine = [problem for problem in error.errors if Path(problem.path).resolve() in own]
    if mine:
        raise PlaybookLoadError(mine) from None
    if spec.playbook and playbook is None:
        raise error
    return project.bundle(stage)


def held_stages(error: PlaybookLoadError) -> list[str] | None:
    """The stages a lifecycle that did not load as a whole holds, when the lifecycle file itself
    is sound: a customer entering one of them is held on a `load` incident, every other stage
    runs. None when the lifecycle file is broken, so that nothing can run or be judged by it."""
    project = error.partial
    if project is None or project.path is None:
        return None
    lifecycle_file = project.path.resolve()
    if any(Path(problem.path).resolve() == lifecycle_file for problem in error.errors):
        return None
    held = []
    for stage in project.lifecycle.stages:
        try:
            sound_bundle(error, stage)
        except PlaybookLoadError:
            held.append(stage)
    return held


def templates_used(playbook: Playbook | None) -> set[str]:
    """Names of every template a playbook's `send` steps use, at any depth."""
    if playbook is None:
        return set()
    return {name for step, _ in walk_steps(playbook.steps) for name in step.templates()}

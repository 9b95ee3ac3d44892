"""The lifecycle the API judges events by: loaded at start, reloaded when its files change.

The worker reloads playbooks the same way (`PlaybookSource`), so an event added to the
lifecycle file is accepted by the API without a restart. A file edited into an invalid
state is ignored until it loads again: the API keeps the last good lifecycle.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from activities.playbooks import PlaybookSource
from engine.errors import PlaybookLoadError
from engine.project import Project, held_stages

log = logging.getLogger("lifecycle.api")


class LifecycleView:
    """The current project, checked for changes at most every `recheck` seconds."""

    def __init__(self, lifecycle_file: Path, recheck: float = 2.0) -> None:
        self.source = PlaybookSource(lifecycle_file)
        self.recheck = recheck
        try:
            self._project = self.source.project()
        except PlaybookLoadError as error:
            # A broken stage playbook holds only the customers entering its stage; events are
            # judged by the lifecycle file. A broken lifecycle file raises: refuse to start.
            if held_stages(error) is None:
                raise
            log.warning("playbooks do not load, judging events by the lifecycle file: %s", error.errors[0])
            self._project = error.partial
        self._checked = time.monotonic()

    def project(self) -> Project:
        """The project as of at most `recheck` seconds ago."""
        now = time.monotonic()
        if now - self._checked >= self.recheck:
            self._checked = now
            try:
                self._project = self.source.project()
            except PlaybookLoadError as error:
                log.warning("playbooks do not load, keeping the last good version: %s", error.errors[0])
        return self._project

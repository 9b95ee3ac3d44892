"""The strict loader: YAML files in, a checked `Project` out, or every error with its location.

Each file is parsed with positions (`engine.yamlsource`), validated against the models
(`engine.validation`), then cross-checked across files (`engine.lifecycle_checks`,
`engine.checks`); all errors of all files are collected and raised together as one
PlaybookLoadError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError

from engine import checks, lifecycle_checks, policy_checks
from engine.errors import PlaybookError, PlaybookLoadError
from engine.model import Lifecycle, Playbook
from engine.project import Project, templates_used
from engine.templates import compile_part, split_subject, unsafe_uses
from engine.validation import validate
from engine.yamlsource import DataPath, Document, parse_yaml

__all__ = [
    "DataPath", "Document", "compile_template", "load_document", "load_playbook_file",
    "load_project", "parse_yaml", "validate",
]

TEMPLATE_SUFFIX = ".txt"


def _display(path: Path) -> str:
    """A path as errors show it: as the user gave it, joined with the lifecycle's folder."""
    return str(path)


def _read(path: Path, at: Callable[[str], PlaybookError] | None = None) -> tuple[bytes | None, str | None, list[PlaybookError]]:
    """(bytes, text, errors) of a file; `at` places a 'cannot read' error (default: path:1:1)."""
    shown = _display(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        message = f"file not found: {shown}"
    except IsADirectoryError:
        message = f"{shown} is a folder, not a file"
    except OSError as error:
        message = f"cannot read {shown}: {error.strerror or error}"
    else:
        try:
            return raw, raw.decode("utf-8-sig"), []
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
            return raw, None, [PlaybookError(shown, line, column, "the file is not UTF-8 text")]
    return None, None, [at(message) if at else PlaybookError(shown, 1, 1, message)]


def outside(base: Path, given: str) -> str | None:
    """Why the file or folder `given` (relative to the folder `base`) is not inside `base`, or None.

    A lifecycle reads only its own folder: an absolute path, a `..` way out, or a link to
    a file elsewhere (`/etc/passwd`) is refused before anything is read.
    """
    if Path(given).is_absolute():
        return f"'{given}' is an absolute path; give a path inside the lifecycle's folder, relative to it"
    try:
        (base / given).resolve().relative_to(base.resolve())
    except ValueError:
        return f"'{given}' leads outside the lifecycle's folder (through '..' or a link); keep the files inside it"
    except (OSError, RuntimeError):  # a link loop
        return f"'{given}' cannot be resolved (a link that leads to itself?)"
    return None


def load_document(path: Path, at: Callable[[str], PlaybookError] | None = None) -> tuple[bytes | None, Document | None, list[PlaybookError]]:
    """Read and parse one YAML file into a located Document."""
    raw, text, errors = _read(path, at)
    if text is None:
        return raw, None, errors
    doc, errors = parse_yaml(_display(path), text)
    return raw, doc, errors


def _validatable(doc: Document, errors: list[PlaybookError]) -> bool:
    """Validate the models unless YAML errors left nothing (or only a guess) to validate."""
    return doc.data is not None or not errors


def load_playbook_file(path: str | Path, lifecycle: Lifecycle | None = None) -> Playbook:
    """Load one stage playbook; with its lifecycle, also check its references.

    `load_project` is what the engine uses; this is for tools that look at a single file.
    """
    path = Path(path)
    _, doc, errors = load_document(path)
    playbook = None
    if doc is not None and _validatable(doc, errors):
        playbook, more = validate(doc, Playbook)
        errors += more + plain_values(None, playbook, doc)
    if playbook is not None and lifecycle is not None:
        folder = path.parent / lifecycle.templates
        available = set() if outside(path.parent, lifecycle.templates) else _template_files(folder)
        errors += checks.check_playbook(
            lifecycle, playbook.playbook, playbook, doc,
            promises=None, templates=available, templates_folder=_display(folder),
        )
    if errors or playbook is None:
        raise PlaybookLoadError(sorted(set(errors)))
    return playbook


def _template_files(folder: Path) -> set[str]:
    try:
        return {p.name[: -len(TEMPLATE_SUFFIX)] for p in folder.iterdir()
                if p.name.endswith(TEMPLATE_SUFFIX) and p.is_file()}
    except OSError:
        return set()


def compile_template(path: str, source: str) -> list[PlaybookError]:
    """Syntax errors and sandbox violations of a template file, compiled the way
    `engine.templates` renders it (which evaluates nothing)."""
    subject, body = split_subject(source)
    parts = [(body, 1, 0)]
    if subject:
        first, _, rest = source.partition("\n")
        parts = [(subject, 1, first.find(subject)), (body, 2 + len(rest) - len(rest.lstrip("\n")), 0)]
    errors = []
    for text, first_line, indent in parts:
        try:
            tree = checks.parse_template(text)
            compile_part(text)  # unknown filters and tests; evaluates nothing
        except TemplateSyntaxError as error:  # TemplateAssertionError too
            line = first_line + max((error.lineno or 1) - 1, 0)
            errors.append(PlaybookError(path, line, 1, f"template syntax error: {error.message}"))
            continue
        except RecursionError:
            errors.append(PlaybookError(path, first_line, 1, "template is nested too deeply"))
            continue
        for line, column, message in unsafe_uses(tree, text):
            errors.append(PlaybookError(path, first_line + line - 1, column + (indent if line == 1 else 0), message))
    return errors


def _kept_as_is(value: Any, path: DataPath) -> tuple[DataPath, str] | None:
    """Where a value would not come back the same from workflow state (JSON), and why."""
    if isinstance(value, dict):
        for key, item in value.items():
            found = _kept_as_is(item, (*path, key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _kept_as_is(item, (*path, index))
            if found:
                return found
    elif isinstance(value, (date, datetime)):
        return path, (f"{value.isoformat()} is read as a date, which becomes text once the workflow "
                      f"stores it; quote it ('{value.isoformat()}') or keep dates in a fact of type date")
    elif value is not None and not isinstance(value, (str, int, float)):
        return path, f"a {type(value).__name__} value cannot be kept; use text, numbers, lists and mappings"
    return None


def plain_values(lifecycle: Lifecycle | None, playbook: Playbook | None, doc: Document) -> list[PlaybookError]:
    """A playbook's vars and a lifecycle's fact initial values must survive workflow state as
    they are, or the simulator would preview a date where the workflow sees text."""
    found = []
    if playbook is not None:
        found = [_kept_as_is(value, ("vars", name)) for name, value in playbook.vars.items()]
    if lifecycle is not None:
        found = [_kept_as_is(spec.initial, ("facts", name, "initial")) for name, spec in lifecycle.facts.items()
                 if not (spec.type in ("date", "timestamp") and isinstance(spec.initial, date))]
    return [doc.error(path, message) for path, message in filter(None, found)]


def _version(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        # Length-prefixed so that moving bytes between parts changes the version.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:12]


def load_project(lifecycle_path: str | Path) -> Project:
    """Load and check a lifecycle, its stage playbooks and templates; raise PlaybookLoadError."""
    return _ProjectLoader(Path(lifecycle_path)).load()


class _ProjectLoader:
    """One load: collects every error across files before deciding."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[PlaybookError] = []
        self.file_order: list[str] = [_display(path)]

    def load(self) -> Project:
        try:
            return self._load()
        except PlaybookLoadError:
            raise
        except Exception as error:  # a bug must still surface as one located line
            self.errors.append(PlaybookError(
                _display(self.path), 1, 1, f"internal error while loading: {type(error).__name__}: {error}"
            ))
            raise PlaybookLoadError(self._sorted()) from error

    def _sorted(self) -> list[PlaybookError]:
        order = {name: index for index, name in enumerate(self.file_order)}
        unique = sorted(set(self.errors), key=lambda e: (order.get(e.path, len(order)), e.path, e.line, e.column, e.message))
        return unique

    def _load(self) -> Project:
        raw, doc, errors = load_document(self.path)
        self.errors += errors
        if doc is None or raw is None:
            raise PlaybookLoadError(self._sorted())
        lifecycle = None
        if _validatable(doc, errors):
            lifecycle, errors = validate(doc, Lifecycle)
            self.errors += errors + plain_values(lifecycle, None, doc)
        if lifecycle is None:
            # The lifecycle is unusable, but the playbook files it names can still be checked.
            self._check_named_playbooks(doc)
            raise PlaybookLoadError(self._sorted())

        playbooks, sources, docs = self._load_playbooks(lifecycle, doc)
        folder = self.path.parent / lifecycle.templates
        escape = outside(self.path.parent, lifecycle.templates)
        if escape:
            self.errors.append(doc.error(("templates",), escape))
            # Read nothing there; pretend the templates exist rather than report each send step.
            available = set().union(*(templates_used(p) for p in playbooks.values()))
        else:
            available = _template_files(folder)
        all_loaded = len(playbooks) == sum(1 for s in lifecycle.stages.values() if s.playbook)
        # With a playbook missing, its promises and gotos are unknown: check less, not wrongly.
        promises = checks.promises_recorded(playbooks.values()) if all_loaded else None
        self.errors += lifecycle_checks.check_lifecycle(lifecycle, doc, promises)
        # The contact policy (engine.policy_checks): its names, and the do-not-contact file.
        self.errors += policy_checks.check_contact(lifecycle, doc)
        do_not_contact, errors = policy_checks.read_do_not_contact(lifecycle, self.path.parent, doc)
        self.errors += errors
        raw += do_not_contact
        entries = checks.stage_events(lifecycle, playbooks) if all_loaded else {}
        for stage, playbook in playbooks.items():
            self.errors += checks.check_playbook(
                lifecycle, stage, playbook, docs[stage], promises=promises,
                templates=available, templates_folder=_display(folder), entry=entries.get(stage),
            )
        templates = {} if escape else self._load_templates(lifecycle, playbooks, folder, available, promises)
        versions = {}
        for stage in lifecycle.stages:
            playbook = playbooks.get(stage)
            parts = [raw, sources.get(stage, b"")]
            for name in sorted(templates_used(playbook)):
                parts += [name.encode(), templates.get(name, "").encode()]
            versions[stage] = _version(*parts)
        project = Project(path=self.path, lifecycle=lifecycle, playbooks=playbooks,
                          templates=templates, versions=versions)
        if self.errors:
            raise PlaybookLoadError(self._sorted(), partial=project)
        return project

    def _check_named_playbooks(self, doc: Document) -> None:
        stages = doc.data.get("stages") if isinstance(doc.data, dict) else None
        if not isinstance(stages, dict):
            return
        seen: set[Path] = set()
        for stage, spec in stages.items():
            file = spec.get("playbook") if isinstance(spec, dict) else None
            if not isinstance(file, str) or not file:
                continue
            path = self.path.parent / file
            if path in seen:
                continue
            seen.add(path)
            where = ("stages", stage, "playbook")
            escape = outside(self.path.parent, file)
            if escape:
                self.errors.append(doc.error(where, f"stage '{stage}': {escape}"))
                continue
            self.file_order.append(_display(path))
            _, playbook_doc, errors = load_document(path, lambda m, w=where: doc.error(w, m))
            self.errors += errors
            if playbook_doc is not None and _validatable(playbook_doc, errors):
                self.errors += validate(playbook_doc, Playbook)[1]

    def _load_playbooks(self, lifecycle: Lifecycle, doc: Document) -> tuple[dict[str, Playbook], dict[str, bytes], dict[str, Document]]:
        playbooks: dict[str, Playbook] = {}
        sources: dict[str, bytes] = {}
        docs: dict[str, Document] = {}
        cache: dict[Path, tuple[bytes | None, Document | None, Playbook | None]] = {}
        for stage, spec in lifecycle.stages.items():
            if not spec.playbook:
                continue
            path = self.path.parent / spec.playbook
            where = ("stages", stage, "playbook")
            escape = outside(self.path.parent, spec.playbook)
            if escape:
                self.errors.append(doc.error(where, f"stage '{stage}': {escape}"))
                continue
            if path not in cache:
                self.file_order.append(_display(path))
                raw, playbook_doc, errors = load_document(
                    path, lambda m, w=where: doc.error(w, f"stage '{stage}': {m}")
                )
                self.errors += errors
                playbook = None
                if playbook_doc is not None and _validatable(playbook_doc, errors):
                    playbook, errors = validate(playbook_doc, Playbook)
                    self.errors += errors + plain_values(None, playbook, playbook_doc)
                cache[path] = (raw, playbook_doc, playbook)
            raw, playbook_doc, playbook = cache[path]
            if playbook is not None and playbook_doc is not None and raw is not None:
                playbooks[stage], sources[stage], docs[stage] = playbook, raw, playbook_doc
        return playbooks, sources, docs

    def _load_templates(self, lifecycle: Lifecycle, playbooks: dict[str, Playbook], folder: Path,
                        available: set[str], promises: set[str] | None) -> dict[str, str]:
        users: dict[str, list[Playbook]] = {}
        for playbook in playbooks.values():
            for name in templates_used(playbook):
                users.setdefault(name, []).append(playbook)
        templates: dict[str, str] = {}
        for name in sorted(users):
            if name not in available or not checks.is_template_name(name):
                continue  # reported at each send step by the checks
            path = folder / f"{name}{TEMPLATE_SUFFIX}"
            shown = _display(path)
            self.file_order.append(shown)
            if outside(self.path.parent, str(path.relative_to(self.path.parent))):
                self.errors.append(PlaybookError(shown, 1, 1, "this template is a link to a file outside "
                                                              "the lifecycle's folder; copy the file in instead"))
                continue
            _, text, errors = _read(path)
            self.errors += errors
            if text is None:
                continue
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            syntax = compile_template(shown, text)
            self.errors += syntax
            if not syntax:
                self.errors += checks.check_template(
                    lifecycle, shown, text, users[name], promises
                )
            templates[name] = text
        return templates

"""Playbook test cases: a customer, events over time, and what the lifecycle must do with them.

A case file (`playbooks/tests/*.yaml`) runs through the simulator, the same interpreter the
workflow runs, and compares the timeline with `expect`:

```yaml
name: late delivery breaks the promise and skips the referral
lifecycle: ../lifecycle.yaml          # relative to this file; this is the default
customer: {id: c-1, email: ada@example.com, preferred_channel: email, consent: {email: true}}
events:
  - {at: 0d, event: order.placed, data: {order_id: A-1, promised_delivery: 2026-01-15, price: 1200}}
  - {at: 14d, event: order.delivered, data: {delivered_at: 2026-01-19}}
expect:
  stages: {includes: [delivery_check_in]}        # or the exact list
  actions: {includes: [delivery_apology], excludes: [referral_request]}   # step ids
  channels: {delivery_apology: email}            # channel, `task` (otherwise) or `suppressed`
  promises: {delivery_date: broken}
  ended: closed                                  # or null: still running
  facts: {open_tickets: 0}                       # a subset
  rejected: []                                   # events expected to be rejected (default none)
  deferred: {survey: "08:00 local"}              # the contact policy deferred it to that local time
                                                 # (or "2026-03-09 08:00 local")
  suppressed: {referral: marketing_weekly}       # suppressed, by this rule or for a reason with these words
  splits: {welcome_test: short}                  # the branch a split step took (every time)
```
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from engine.durations import parse_duration
from engine.errors import PlaybookLoadError, suggest
from engine.expressions import parse_time
from engine.loader import Document, parse_yaml
from engine.project import Project
from engine.scenario import DEFAULT_HORIZON, ScenarioError, parse_customer, parse_events
from engine.simulator import ScheduledEvent, Timeline, simulate

CASE_FIELDS = ("name", "description", "lifecycle", "customer", "start", "until", "events", "expect")
EXPECT_FIELDS = ("stages", "actions", "channels", "promises", "ended", "facts", "rejected", "incident", "splits",
                 "deferred", "suppressed", "reminded")
LIST_FORMS = ("includes", "excludes")
DEFAULT_LIFECYCLE = "../lifecycle.yaml"


class CaseError(ValueError):
    """A case file that cannot be run; the message starts with `path:line:column:`."""


@dataclass
class Case:
    """One parsed test case, ready to simulate."""

    path: Path
    name: str
    lifecycle: Path
    customer: dict[str, Any]
    events: list[ScheduledEvent]
    expect: dict[str, Any]
    until: datetime | None = None


@dataclass
class CaseResult:
    """The outcome of one case: what went wrong (nothing when it passed) and the timeline."""

    case: Case | None
    path: Path
    failures: list[str] = field(default_factory=list)
    timeline: Timeline | None = None

    @property
    def ok(self) -> bool:
        """Whether the case passed."""
        return not self.failures

    @property
    def name(self) -> str:
        """The case's name, or its file name when it could not be read."""
        return self.case.name if self.case else self.path.stem


# ---------------------------------------------------------------- reading


def discover(paths: Iterable[Path]) -> list[Path]:
    """Case files: each path is a file, or a folder whose *.yaml files are cases (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            found.append(path)
    return found


def load_case(path: Path) -> Case:
    """Parse a case file; raise CaseError (located) when it is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CaseError(f"{path}:1:1: the file is not UTF-8 text") from None
    except OSError as error:
        raise CaseError(f"{path}:1:1: cannot read: {error.strerror or error}") from None
    doc, errors = parse_yaml(str(path), text)
    if errors:
        raise CaseError(str(errors[0]))
    data = doc.data
    if not isinstance(data, dict):
        raise CaseError(f"{path}:1:1: expected a mapping with name, customer, events and expect")

    def error(where: tuple[Any, ...], message: str, key: bool = False) -> CaseError:
        return CaseError(str(doc.error(where, message, key=key)))

    for key in data:
        if key not in CASE_FIELDS:
            raise error((key,), f"unknown field '{key}'{suggest(key, CASE_FIELDS)}", key=True)
    for required in ("name", "events", "expect"):
        if required not in data:
            raise error((), f"a test case needs '{required}'")
    if not isinstance(data["name"], str) or not data["name"].strip():
        raise error(("name",), "'name' must be text")
    lifecycle = data.get("lifecycle", DEFAULT_LIFECYCLE)
    if not isinstance(lifecycle, str):
        raise error(("lifecycle",), "'lifecycle' must be a path, relative to this file")
    try:
        customer = parse_customer(data.get("customer") or {})
    except ScenarioError as problem:
        raise error(("customer",), str(problem)) from None
    events = _events(doc, data, customer["id"], error)
    until = None
    if data.get("until") is not None:
        until = parse_time(data["until"])
        if until is None:
            try:
                until = _start(data, error) + parse_duration(str(data["until"]))
            except (ValueError, OverflowError) as problem:
                raise error(("until",), f"'until' must be a duration after start or a date: {problem}") from None
        first = min((item.at for item in events), default=None)
        if first is not None and until < first:
            raise error(("until",), f"'until' ({until:%Y-%m-%d %H:%M}) is before the first event "
                                    f"({first:%Y-%m-%d %H:%M})")
    return Case(path=path, name=data["name"].strip(), lifecycle=(path.parent / lifecycle),
                customer=customer, events=events, expect=_expect(data["expect"], error), until=until)


def _start(data: dict[str, Any], error: Callable[..., CaseError]) -> datetime:
    from engine.scenario import DEFAULT_START

    if data.get("start") is None:
        return DEFAULT_START
    start = parse_time(data["start"])
    if start is None:
        raise error(("start",), f"'start' {data['start']!r} is not a date or time")
    return start


def _events(doc: Document, data: dict[str, Any], customer_id: str,
            error: Callable[..., CaseError]) -> list[ScheduledEvent]:
    items = data["events"]
    if not isinstance(items, list) or not items:
        raise error(("events",), "'events' must be a list with at least the event that starts the lifecycle")
    start = _start(data, error)
    scheduled: list[ScheduledEvent] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            for name, kind in (("event", str), ("data", dict), ("customer", dict), ("key", str)):
                if item.get(name) is not None and not isinstance(item[name], kind):
                    what = "text" if kind is str else "a mapping"
                    raise error(("events", index, name), f"'{name}' must be {what}")
        try:
            scheduled += parse_events({"start": start.isoformat(), "events": [item]}, customer_id, "")
        except ScenarioError as problem:
            raise error(("events", index), problem.reason) from None
    return scheduled


def _expect(expect: Any, error: Callable[..., CaseError]) -> dict[str, Any]:
    if not isinstance(expect, dict) or not expect:
        raise error(("expect",), f"'expect' must be a mapping with some of: {', '.join(EXPECT_FIELDS)}")
    for key, value in expect.items():
        where = ("expect", key)
        if key not in EXPECT_FIELDS:
            raise error(where, f"unknown expectation '{key}'{suggest(key, EXPECT_FIELDS)}", key=True)
        if key in ("stages", "actions", "rejected"):
            if isinstance(value, dict) and key != "rejected":
                unknown = [k for k in value if k not in LIST_FORMS]
                if unknown:
                    raise error((*where, unknown[0]), f"'{key}' takes 'includes' and 'excludes', "
                                                      f"not '{unknown[0]}'", key=True)
                if not all(isinstance(v, list) for v in value.values()):
                    raise error(where, f"'{key}.includes' and '{key}.excludes' must be lists")
            elif not isinstance(value, list):
                raise error(where, f"'{key}' must be a list" + ("" if key == "rejected" else
                                                                " or {includes: [...], excludes: [...]}"))
        elif key in ("deferred", "suppressed") and not (isinstance(value, dict) and
                                                        all(isinstance(v, str) for v in value.values())):
            raise error(where, f"'{key}' must be a mapping of step id to text, e.g. "
                               + ("{survey: '08:00 local'}" if key == "deferred" else "{referral: marketing_weekly}"))
        elif key == "reminded" and not (isinstance(value, dict) and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values())):
            raise error(where, "'reminded' must be a mapping of task step id to a number of reminders, e.g. {call: 1}")
        elif key in ("promises", "facts", "channels", "splits") and not isinstance(value, dict):
            raise error(where, f"'{key}' must be a mapping of name to expected value")
        elif key in ("ended", "incident") and value is not None and not isinstance(value, str):
            raise error(where, "'ended' must be an outcome (e.g. closed) or null" if key == "ended"
                        else "'incident' must be the step the customer is held at, or null")
    return expect


# ---------------------------------------------------------------- running


def run_case(case: Case, load: Callable[[Path], Project]) -> CaseResult:
    """Simulate a case and compare; `load` gives the project (cached by the caller)."""
    result = CaseResult(case, case.path)
    try:
        project = load(case.lifecycle)
    except PlaybookLoadError as error:
        result.failures = [f"the lifecycle does not load: {line}" for line in error.errors]
        return result
    # Without `until`, a lifecycle that never ends (a stage that repeats) stops at the horizon.
    until = case.until or (min(item.at for item in case.events) + DEFAULT_HORIZON if case.events else None)
    try:
        result.timeline = simulate(project, case.customer, case.events, until=until)
    except ValueError as error:
        result.failures = [f"cannot simulate: {error}"]
        return result
    except Exception as error:  # an engine bug must still come out as one readable line
        result.failures = [f"internal error while simulating: {type(error).__name__}: {error}"]
        return result
    result.failures = unknown_names(case.expect, project) + compare(case.expect, result.timeline)
    return result


STEP_EXPECTATIONS = ("channels", "deferred", "suppressed", "reminded", "splits")  # maps keyed by step id


def unknown_names(expect: dict[str, Any], project: Project) -> list[str]:
    """Stage names and step ids in `expect` that the lifecycle has nowhere: a typo there would
    otherwise read as the lifecycle's fault (`expected 1 reminder, got 0`)."""
    from engine.walk import step_key, walk_steps

    steps = {step_key(step, path) for playbook in project.playbooks.values()
             for step, path in walk_steps(playbook.steps)}
    stages = set(project.lifecycle.stages)
    named: list[tuple[str, Any, set[str], str]] = []
    for what, known, kind in (("stages", stages, "stage"), ("actions", steps, "step")):
        listed = expect.get(what)
        items = [*listed.get("includes", []), *listed.get("excludes", [])] if isinstance(listed, dict) else listed
        named += [(what, item, known, kind) for item in items or []]
    named += [(f"{what}.{step}", step, steps, "step") for what in STEP_EXPECTATIONS
              for step in expect.get(what) or {}]
    return [f"{what}: no {kind} '{item}' in the lifecycle{suggest(item, known)}"
            for what, item, known, kind in named if str(item) not in known]


def run_cases(paths: Iterable[Path]) -> list[CaseResult]:
    """Load and run every case file; a malformed file is a failed result, not an exception."""
    from engine.loader import load_project

    projects: dict[Path, Project | PlaybookLoadError] = {}

    def load(path: Path) -> Project:
        key = path.resolve()
        if key not in projects:
            try:
                projects[key] = load_project(path)
            except PlaybookLoadError as error:
                projects[key] = error
        loaded = projects[key]
        if isinstance(loaded, PlaybookLoadError):
            raise loaded
        return loaded

    results = []
    for path in discover(paths):
        try:
            case = load_case(path)
        except CaseError as error:
            results.append(CaseResult(None, path, [str(error)]))
            continue
        results.append(run_case(case, load))
    return results


# ---------------------------------------------------------------- comparing


def compare(expect: dict[str, Any], timeline: Timeline) -> list[str]:
    """Every way the timeline differs from `expect`, one readable block per expectation."""
    failures: list[str] = []
    state = timeline.state
    if "stages" in expect:
        failures += _list("stages", expect["stages"], timeline.stages())
    if "actions" in expect:
        failures += _list("actions", expect["actions"], timeline.steps())
    rejected = [item.event.name if item.event else f"@{item.release}"
                for item, receipt in timeline.receipts if receipt.status == "rejected"]
    if rejected or "rejected" in expect:
        failures += _list("rejected", expect.get("rejected", []), rejected)
    # Like a rejected event, a customer held on an incident fails the case unless it is expected.
    held = state.incident
    held_at = (held.step or f"stage {held.stage}") if held else None
    if (held or "incident" in expect) and expect.get("incident") != held_at:
        got = f"held at {held_at}: {held.error.splitlines()[0]}" if held else "not held"
        failures.append(f"incident: expected {expect.get('incident') or 'none'}, got {got}")
    if "channels" in expect:
        failures += _channels(expect["channels"], timeline)
    failures += _deferred(expect.get("deferred") or {}, timeline)
    failures += _suppressed(expect.get("suppressed") or {}, timeline)
    for step, wanted in (expect.get("reminded") or {}).items():
        got = sum(1 for r in timeline.records if r.kind == "task_reminded" and r.step == step)
        if got != wanted:
            failures.append(f"reminded.{step}: expected {wanted} reminder{'s' * (wanted != 1)}, got {got}")
    for name, wanted in (expect.get("promises") or {}).items():
        entry = state.promises.get(name)
        got = entry.state if entry else "not made"
        if got != wanted:
            failures.append(f"promises.{name}: expected {wanted}, got {got}")
    if "ended" in expect and expect["ended"] != state.ended:
        got = state.ended if state.ended else f"still running (in stage {state.stage})"
        failures.append(f"ended: expected {expect['ended'] or 'still running'}, got {got}")
    for step, wanted in (expect.get("splits") or {}).items():
        taken = [str(r.detail.get("branch")) for r in timeline.records if r.kind == "split" and r.step == step]
        if not taken or any(branch != str(wanted) for branch in taken):
            failures.append(f"splits.{step}: expected {wanted}, got {', '.join(taken) or 'not run'}")
    for name, wanted in (expect.get("facts") or {}).items():
        if name not in state.facts:
            failures.append(f"facts.{name}: expected {_value(wanted)}, but there is no such fact"
                            f"{suggest(name, state.facts)}")
        elif not same_value(wanted, state.facts[name]):
            failures.append(f"facts.{name}: expected {_value(wanted)}, got {_value(state.facts[name])}")
    return failures


def _value(value: Any) -> str:
    """A value as a case file writes it (2027-02-03, not datetime.date(2027, 2, 3))."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return json.dumps(value, default=str, ensure_ascii=False)


def how_sent(timeline: Timeline) -> dict[str, list[str]]:
    """step id → how each of its sends went: the channel, `task` (otherwise) or `suppressed`."""
    out: dict[str, list[str]] = {}
    for record in timeline.records:
        if record.kind == "message":
            out.setdefault(str(record.step), []).append(str(record.detail.get("channel")))
        elif record.kind == "suppressed":
            out.setdefault(str(record.step), []).append("suppressed")
        elif record.kind == "task" and record.detail.get("reason"):  # only an `otherwise` task has one
            out.setdefault(str(record.step), []).append("task")
    return out


def _deferred(expected: dict[str, str], timeline: Timeline) -> list[str]:
    """`deferred: {step: "08:00 local"}`: the step was deferred to that local time (or date and time)."""
    failures = []
    for step, wanted in expected.items():
        got = [str(r.detail.get("local") or r.detail.get("until")) for r in timeline.records
               if r.kind == "deferred" and r.step == step]
        want = wanted.removesuffix(" local").strip()
        if not any(_local_matches(want, local) for local in got):
            failures.append(f"deferred.{step}: expected deferred to {wanted}, got "
                            + (", ".join(f"deferred to {local}" for local in got) or "not deferred"))
    return failures


def _local_matches(wanted: str, local: str) -> bool:
    day, _, rest = local.partition(" ")
    clock = rest.split(" ")[0]
    return wanted in (clock, f"{day} {clock}", local)


def _suppressed(expected: dict[str, str], timeline: Timeline) -> list[str]:
    """`suppressed: {step: rule-or-words}`: the step was suppressed by that rule or for that reason."""
    failures = []
    for step, wanted in expected.items():
        got = [r.detail for r in timeline.records if r.kind == "suppressed" and r.step == step]
        if not any(wanted == d.get("rule") or wanted in str(d.get("reason", "")) for d in got):
            failures.append(f"suppressed.{step}: expected suppressed ({wanted}), got "
                            + (", ".join(f"suppressed ({d.get('rule') or d.get('reason')})" for d in got)
                               or "not suppressed"))
    return failures


def _channels(expected: dict[str, Any], timeline: Timeline) -> list[str]:
    sent = how_sent(timeline)
    failures = []
    for step, wanted in expected.items():
        got = sent.get(step, [])
        if got != [wanted] and not (got and all(item == wanted for item in got)):
            failures.append(f"channels.{step}: expected {wanted}, got {', '.join(got) or 'not sent'}")
    return failures


def same_value(expected: Any, actual: Any) -> bool:
    """Equal, reading dates and times alike however they were written (2026-03-10 or ISO)."""
    if isinstance(expected, (date, datetime)) or (isinstance(expected, str) and isinstance(actual, str)):
        left, right = parse_time(expected), parse_time(actual)
        if left is not None and right is not None:
            return left == right
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return expected == actual


def _list(what: str, expected: Any, actual: list[str]) -> list[str]:
    if isinstance(expected, dict):
        out = []
        missing = [item for item in expected.get("includes", []) if item not in actual]
        present = [item for item in expected.get("excludes", []) if item in actual]
        if missing:
            out.append(f"{what}: expected to include {', '.join(map(str, missing))}; got {_shown(actual)}")
        if present:
            out.append(f"{what}: expected not to include {', '.join(map(str, present))}; got {_shown(actual)}")
        return out
    expected = [str(item) for item in expected]
    if expected == actual:
        return []
    diff = difflib.unified_diff(expected, actual, "expected", "actual", lineterm="", n=len(expected) + len(actual))
    lines = [line for line in diff if not line.startswith("@@")]
    return [f"{what}: expected {_shown(expected)}, got {_shown(actual)}\n" + "\n".join(f"    {line}" for line in lines)]


def _shown(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]" if items else "nothing"


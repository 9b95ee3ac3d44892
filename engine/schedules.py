"""Schedules: lifecycle-level timers that turn time into events, whatever the stage.

A schedule (`schedules:` in the lifecycle file) names a declared event and the moments it is
sent at: once `at` a timestamp computed from the profile or the facts, or `every` period
after `from` (or starting `at`). The lifecycle machine asks `next_due` for the earliest
moment still to come and waits for it alongside whatever the stage waits for; when it comes,
the event goes through the normal event path (fact updates, transitions, waiting steps) with
the idempotency key `schedule:<event>:<moment>`, so a replay or a restart never sends it twice.

Nothing is stored about a moment in advance: it is computed again from the anchor whenever
the machine waits, so a fact that changes moves the schedule, and an anchor that is null (a
fact not yet known) means "not scheduled yet". The state keeps only the last moment each
schedule fired (`LifecycleState.schedules`): moments after it are still to come.

Recurrence never drifts: the k-th moment is computed from the anchor, with the engine's
`add_months` for calendar periods (a monthly schedule from Jan 31 fires on Feb 28, then Mar 31).
A moment that passed without firing (the anchor became known late, the customer was held)
fires once, at once; of several passed moments only the latest fires.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from engine.context import expression_names
from engine.durations import parse_duration
from engine.expressions import ExpressionError, add_months, evaluate, parse_time

if TYPE_CHECKING:
    from engine.model import Lifecycle, ScheduleSpec
    from engine.runtime import Runtime
    from engine.state import LifecycleState

SHORTEST_PERIOD = timedelta(hours=1)
"""Every firing is a few history events in Temporal: more often than hourly is a mistake."""

_CALENDAR = re.compile(r"^(\d+)(y|mo)$")
_ISO_CALENDAR = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?$", re.IGNORECASE)
PERIOD_EXAMPLES = "examples: 1y, 6mo, P1Y, P3M, 1w, 30d"


@dataclass(frozen=True)
class Period:
    """Calendar months (years are 12) or a fixed duration."""

    months: int = 0
    span: timedelta = timedelta(0)

    def after(self, anchor: datetime, times: int) -> datetime:
        """The moment `times` periods after `anchor`, computed from the anchor (no drift)."""
        if self.months:
            return add_months(anchor, self.months * times)
        return anchor + self.span * times

    def index_after(self, anchor: datetime, moment: datetime) -> int:
        """The smallest k with `after(anchor, k) > moment` (k may be 0 or negative)."""
        if self.months:
            guess = ((moment.year - anchor.year) * 12 + moment.month - anchor.month) // self.months
        else:
            guess = (moment - anchor) // self.span
        k = guess - 1
        while self.after(anchor, k) <= moment:
            k += 1
        while self.after(anchor, k - 1) > moment:
            k -= 1
        return k


def parse_period(text: str) -> Period:
    """`1y`, `6mo`, `P1Y6M` (calendar) or a duration of at least an hour; ValueError for an author."""
    source = str(text).strip()
    calendar = _CALENDAR.match(source)
    if calendar:
        count = int(calendar.group(1))
        months = count * 12 if calendar.group(2) == "y" else count
        if not 0 < months <= 1200:
            raise ValueError(f"'{text}' must be between 1 month and 100 years")
        return Period(months=months)
    iso = _ISO_CALENDAR.match(source)
    if iso and any(iso.groups()):
        months = int(iso.group(1) or 0) * 12 + int(iso.group(2) or 0)
        if not 0 < months <= 1200:
            raise ValueError(f"'{text}' must be between 1 month and 100 years")
        return Period(months=months)
    try:
        span = parse_duration(source)
    except ValueError:
        raise ValueError(f"'{text}' is not a period ({PERIOD_EXAMPLES})") from None
    if span < SHORTEST_PERIOD:
        raise ValueError(f"'{text}' is shorter than an hour: a schedule fires at most hourly")
    return Period(span=span)


@dataclass(frozen=True)
class Due:
    """The next moment of one schedule."""

    at: datetime
    name: str  # the schedule, which is the event it sends

    @property
    def key(self) -> str:
        """The idempotency key of this firing: the same on replay, restart or continue-as-new."""
        return f"schedule:{self.name}:{self.at.isoformat()}"


def anchor_of(lifecycle: Lifecycle, state: LifecycleState, source: str, now: datetime) -> datetime | None:
    """The anchor's value, or None when it cannot be computed yet (a fact it reads is null)."""
    try:
        value = evaluate(source, expression_names(lifecycle, state, None, now, with_vars=False, source=source))
    except ExpressionError:
        return None  # `add_months(null, -3)`: the types were checked at load, so a null is the cause
    return parse_time(value) if value is not None else None


def next_moment(spec: ScheduleSpec, anchor: datetime, last: datetime | None, now: datetime) -> datetime | None:
    """The schedule's next moment after `last` (its last firing): the first one to come, or, when
    moments after `last` have already passed, the latest of them (fired at once, once)."""
    if spec.every is None:
        return anchor if last is None or anchor > last else None
    period = parse_period(spec.every)
    first = 1 if spec.from_ is not None else 0
    try:
        k = first if last is None else max(first, period.index_after(anchor, last))
        moment = period.after(anchor, k)
        if moment <= now:
            moment = period.after(anchor, max(k, period.index_after(anchor, now) - 1))
    except (OverflowError, ValueError):  # past the year 9999: never
        return None
    return moment


def next_due(lifecycle: Lifecycle, state: LifecycleState, now: datetime) -> Due | None:
    """The earliest moment of any schedule still to fire (by name on a tie), or None."""
    if not lifecycle.schedules or state.ended is not None:
        return None
    found: Due | None = None
    for name, spec in lifecycle.schedules.items():
        source = spec.at if spec.at is not None else spec.from_
        assert source is not None
        anchor = anchor_of(lifecycle, state, source, now)
        if anchor is None:
            continue
        moment = next_moment(spec, anchor, state.schedules.get(name), now)
        if moment is not None and (found is None or (moment, name) < (found.at, found.name)):
            found = Due(moment, name)
    return found


class ScheduledRuntime:
    """The machine's runtime with schedules: every wait also waits for the next schedule moment.

    A wait with no schedule to come is passed through unchanged (a lifecycle without schedules
    gives the same commands as before schedules existed). Otherwise it waits until the stage's
    condition holds, its deadline passes, or the next moment comes (then `fire` sends the event
    and the wait goes on), and wakes early when the next moment changes (a fact moved it).
    """

    def __init__(self, runtime: Runtime, due: Callable[[], Due | None], fire: Callable[[Due], None]) -> None:
        self.runtime = runtime
        self._due = due
        self._fire = fire
        # The rest of the Runtime protocol, bound once: the interpreter asks for `now` and
        # `patched` many times per step. (No `__getattr__` passing on other names: a class with
        # one makes every attribute read of its instances slower.)
        for name in ("now", "act", "stage_bundle", "hold", "patched"):
            if hasattr(runtime, name):
                setattr(self, name, getattr(runtime, name))

    async def wait(self, ready: Callable[[], bool], until: datetime | None) -> bool:
        while True:
            due = self._due()
            if due is None:
                return await self.runtime.wait(ready, until)

            def woken(due: Due = due) -> bool:
                return ready() or self._due() != due

            if until is not None and until <= due.at:
                await self.runtime.wait(woken, until)
                if ready():
                    return True
                if self.runtime.now() >= until:
                    return False
                continue  # the schedule changed before the deadline: wait again with it
            await self.runtime.wait(woken, due.at)
            if ready():
                return True
            if self.runtime.now() >= due.at and self._due() == due:
                self._fire(due)
                if ready():  # the event moved the customer on, or a wait_for takes it
                    return True

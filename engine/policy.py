"""Contact policy: whether, how and when a message may go to a customer.

The lifecycle file's `contact:` section (`ContactPolicy`) says which categories need an
explicit yes, the quiet hours of each channel and category in the customer's time zone, the
frequency caps across the whole lifecycle and who must never be contacted. `decide` is the
one pure function that applies it to one send: send now (on which channel), defer (until
when, and why), or suppress (why, and which rule). The interpreter calls it before every send
and again when a deferred send wakes up; `note_event` applies consent events as they arrive,
whatever the stage is doing; `note_sent` keeps the send log the caps count.

Consent lives in the customer's profile, `customer.consent`, a map whose keys are channel
names or categories:

    consent: {email: true, sms: true, marketing: false, survey: {sms: false}}

A message on channel C in category K needs `consent[C] == true`, and `consent[K]` not false
(a map by channel is read for C); a category listed in `requires_consent` needs
`consent[K]` (or `consent[K][C]`) to be true. A global opt-out (`consent.changed` without
channel and category, or `customer.unsubscribed`) is kept apart from the profile, in
`ContactState.opted_out`, so a profile update from another system cannot undo it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from engine import calendars
from engine.durations import format_duration
from engine.memo import per_object
from engine.policy_model import ContactPolicy, QuietHours
from engine.state import ContactState, Sent

CONSENT_CHANGED = "consent.changed"
UNSUBSCRIBED = "customer.unsubscribed"
# Their payloads: engine.events.POLICY_EVENTS.


def policy_of(lifecycle: Any) -> ContactPolicy:
    """The lifecycle's policy, or the empty one (nothing changes) when it has no `contact:`."""
    return getattr(lifecycle, "contact", None) or _EMPTY


_EMPTY = ContactPolicy()


# ---------------------------------------------------------------- what the lifecycle remembers


def note_sent(policy: ContactPolicy, contact: ContactState, at: datetime, channel: str, category: str) -> None:
    """Log a message for the caps; entries older than the longest window are dropped."""
    window = policy.longest_window()
    if window <= timedelta(0):
        return
    contact.sent = [entry for entry in contact.sent if at - entry.at < window]
    contact.sent.append(Sent(at=at, channel=channel, category=category))


def note_event(policy: ContactPolicy, contact: ContactState, customer: dict[str, Any], channels: Any,
               name: str, data: dict[str, Any], at: datetime) -> str | None:
    """Apply what an event means to the policy; returns a line for the timeline, or None.

    Consent events change `customer.consent` (or the global opt-out) at once, so the next send
    and every deferred one see it, in whatever stage and step the customer is."""
    if any(cap.after == name for cap in policy.caps):
        contact.last_event[name] = at
    if name == UNSUBSCRIBED:
        contact.opted_out = f"unsubscribed{': ' + data['reason'] if data.get('reason') else ''}"
        return "opted out of every message"
    if name != CONSENT_CHANGED:
        return None
    granted, channel, category = data.get("granted") is True, data.get("channel"), data.get("category")
    if channel is None and category is None:
        contact.opted_out = None if granted else "consent withdrawn for every message"
        return "consent given again for messages" if granted else "opted out of every message"
    consent = dict(customer.get("consent") or {})
    if category is None:
        consent[channel] = granted
    elif channel is None:
        consent[category] = granted
    else:
        current = consent.get(category)
        by_channel = dict(current) if isinstance(current, dict) else \
            ({name: current for name in channels} if isinstance(current, bool) else {})
        by_channel[channel] = granted
        consent[category] = by_channel
    customer["consent"] = consent
    what = " ".join(part for part in (category, "on " + channel if channel else None) if part)
    return f"consent {'given' if granted else 'withdrawn'}: {what}"


# ---------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Decision:
    """What to do with one send: `send` on `channel` to `address`, `defer` until `until`, or
    `suppress`; `reason` says why (and `rule` which cap or window) for the timeline."""

    action: Literal["send", "defer", "suppress"]
    channel: str | None = None
    address: str | None = None
    until: datetime | None = None
    reason: str = ""
    rule: str | None = None
    no_channel: bool = False  # suppressed because no channel has consent: `otherwise` applies

    def detail(self, zone_name: str | None = None) -> dict[str, Any]:
        """The decision as timeline detail (the local time of a deferral when the zone is known)."""
        out: dict[str, Any] = {"reason": self.reason}
        if self.channel:
            out["channel"] = self.channel
        if self.rule:
            out["rule"] = self.rule
        if self.until is not None:
            out["until"] = self.until.isoformat()
            if zone_name:
                moment = calendars.local(self.until, zone_name)
                out["local"] = f"{moment:%Y-%m-%d %H:%M} {zone_name}"
        return out


def customer_zone(policy: ContactPolicy, customer: dict[str, Any]) -> str | None:
    """The customer's time zone: the profile's, else the lifecycle default (None: neither)."""
    name = customer.get("timezone") or policy.timezone
    return name if name and calendars.is_zone(name) else policy.timezone


def customer_calendar(policy: ContactPolicy, customer: dict[str, Any]) -> str | None:
    """The customer's holiday calendar: the profile's, else the lifecycle default."""
    name = customer.get("calendar") or policy.calendar
    return name if name and calendars.calendar_problem(name) is None else policy.calendar


def business_deadline(policy: ContactPolicy, customer: dict[str, Any], role: str | None, now: datetime,
                      count: int, unit: str = "days") -> datetime:
    """`count` business days (or hours, `unit`) after `now`, on the role's calendar and zone when the
    policy gives it one (else the customer's).

    Days keep the time of day, or end at the role's close of business when it has business hours.
    Hours count only the role's `business_hours` window on its business days (engine.calendars
    `add_business_hours`); a role without that window has no business hours to count."""
    team = policy.roles.get(role) if role else None
    what = f"{count} business {unit}"
    calendar = (team.calendar if team else None) or customer_calendar(policy, customer)
    if calendar is None:
        raise calendars.CalendarError(f"{what}: no holiday calendar (customer.calendar or contact.calendar)")
    zone_name = (team.timezone if team else None) or customer_zone(policy, customer)
    if unit == "hours":
        if team is None or team.opens is None or team.closes is None:
            raise calendars.CalendarError(f"{what}: role '{role}' has no business_hours in contact.roles")
        return calendars.add_business_hours(now, count, calendar, zone_name or "UTC", team.opens, team.closes)
    due = calendars.add_business_days(now, count, calendar, zone_name)
    if team is not None and team.closes is not None:
        due = calendars.at_local(due, team.closes, zone_name or "UTC")
    return due


def allows(consent: dict[str, Any], channel: str, category: str, explicit: bool) -> bool:
    """Whether `consent` (the profile's map) allows `category` on `channel` (see the module doc)."""
    if consent.get(channel) is not True:
        return False
    given = consent.get(category)
    if isinstance(given, dict):
        given = given.get(channel)
    return given is True if explicit else given is not False


def channel_order(lifecycle: Any, customer: dict[str, Any], asked: str) -> list[str]:
    """The channels to try: the asked one, or the preferred one then the lifecycle's fallbacks."""
    if asked != "preferred":
        return [asked]
    order = list(lifecycle.channels)
    preferred = customer.get("preferred_channel")
    if preferred in order:
        order.remove(preferred)
        order.insert(0, preferred)
    return order


@per_object
def _blocked(policy: ContactPolicy) -> frozenset[str]:
    """The do-not-contact list as a set, made once per loaded policy (not for every send)."""
    return frozenset(policy.do_not_contact)


def decide(lifecycle: Any, customer: dict[str, Any], contact: ContactState, asked: str, category: str,
           now: datetime) -> Decision:
    """Send, defer or suppress one message of `category` asked for on channel `asked`.

    In order: a global opt-out or a do-not-contact entry suppresses; the first channel with
    an address, consent for the category and no do-not-contact entry is chosen (none: a
    suppression `otherwise` may replace); a cap suppresses or defers; a quiet period defers.
    """
    policy = policy_of(lifecycle)
    if contact.opted_out:
        return Decision("suppress", reason=f"opted out ({contact.opted_out})", rule="opt-out")
    blocked = _blocked(policy)
    if customer.get("id") in blocked:
        return Decision("suppress", reason="the customer is on the do-not-contact list", rule="do_not_contact")
    consent = customer.get("consent") or {}
    explicit = category in policy.requires_consent
    chosen = None
    for channel in channel_order(lifecycle, customer, asked):
        address = customer.get(lifecycle.channels[channel].contact)
        if address and str(address) not in blocked and allows(consent, channel, category, explicit):
            chosen = channel, str(address)
            break
    if chosen is None:
        why = f"no channel with consent for {category}" if explicit or category in consent \
            else "no channel with consent"
        return Decision("suppress", reason=why, no_channel=True)
    channel, address = chosen
    capped = _capped(policy, contact, channel, category, now)
    if capped is not None:
        return Decision(capped[0], channel, address, until=capped[1], reason=capped[2], rule=capped[3])
    zone_name = customer_zone(policy, customer)
    quiet = _quiet(policy, channel, category, now, zone_name, customer_calendar(policy, customer))
    if quiet is not None:
        return Decision("defer", channel, address, until=quiet[0], reason=quiet[1], rule=quiet[2])
    return Decision("send", channel, address)


def _applies(names: list[str], name: str) -> bool:
    return not names or name in names


def _capped(policy: ContactPolicy, contact: ContactState, channel: str, category: str,
            now: datetime) -> tuple[str, datetime | None, str, str] | None:
    """The first cap that stops this message now: (suppress|defer, until, reason, rule id)."""
    for cap in policy.caps:
        if not (_applies(cap.channels, channel) and _applies(cap.categories, category)):
            continue
        if cap.after is not None:
            last = contact.last_event.get(cap.after)
            if last is not None and now - last < cap.per:
                return (cap.then, last + cap.per if cap.then == "defer" else None,
                        f"within {format_duration(cap.per)} after {cap.after}", cap.id)
            continue
        counted = sorted(entry.at for entry in contact.sent
                         if now - entry.at < cap.per and _applies(cap.channels, entry.channel)
                         and _applies(cap.categories, entry.category))
        assert cap.at_most is not None
        if len(counted) >= cap.at_most:
            # Deferred until enough of the counted messages have left the window.
            free_at = counted[len(counted) - cap.at_most] + cap.per if cap.at_most else None
            until = free_at if cap.then == "defer" else None
            return (cap.then if free_at or cap.then == "suppress" else "suppress", until,
                    f"at most {cap.at_most} {'/'.join(cap.categories) or 'messages'} in "
                    f"{format_duration(cap.per)}", cap.id)
    return None


def _quiet(policy: ContactPolicy, channel: str, category: str, now: datetime, zone_name: str | None,
           calendar: str | None) -> tuple[datetime, str, str] | None:
    """When the message may go out, if not now: (moment, reason, rule) for the first closed window."""
    rules = [(index, rule) for index, rule in enumerate(policy.quiet_hours)
             if _applies(rule.channels, channel) and _applies(rule.categories, category)]
    if not rules:
        return None
    zone_name = zone_name or "UTC"
    moment, first = now, None
    for _ in range(64):  # every window opens within a few days; a bound rather than a loop for ever
        closed = [(index, rule) for index, rule in rules if not _open(rule, moment, zone_name, calendar)]
        if not closed:
            break
        first = first or closed[0]
        moment = max(_next_opening(rule, moment, zone_name, calendar) for _, rule in closed)
    else:
        raise calendars.CalendarError("the quiet hours that apply to this message leave no time to send it")
    if first is None:
        return None
    index, rule = first
    where = "/".join(rule.channels) or "messages"
    days = {"all": "", "weekdays": ", weekdays", "business": ", business days"}[rule.days]
    return moment, f"quiet hours: {where} only {rule.allowed}{days} ({zone_name})", f"quiet_hours[{index}]"


def _day_open(rule: QuietHours, moment: datetime, calendar: str | None) -> bool:
    if rule.days == "all":
        return True
    if rule.days == "weekdays" or calendar is None:
        return moment.weekday() < 5
    return calendars.is_business_date(moment.date(), calendar)


def _open(rule: QuietHours, moment: datetime, zone_name: str, calendar: str | None) -> bool:
    wall = calendars.local(moment, zone_name)
    clock = wall.time()
    return _day_open(rule, wall, calendar) and \
        calendars.clock(rule.opens) <= clock < calendars.clock(rule.closes)


def _next_opening(rule: QuietHours, moment: datetime, zone_name: str, calendar: str | None) -> datetime:
    """The next moment after `moment` (or at it) when `rule`'s window opens."""
    wall = calendars.local(moment, zone_name)
    day = wall.date()
    if wall.time() >= calendars.clock(rule.opens):
        day += timedelta(days=1)
    for _ in range(400):
        start = calendars.at_local_date(day, calendars.clock(rule.opens), zone_name)
        if _day_open(rule, calendars.local(start, zone_name), calendar):
            return start
        day += timedelta(days=1)
    raise calendars.CalendarError(f"the window {rule.allowed} never opens")

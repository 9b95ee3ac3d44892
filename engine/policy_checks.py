"""Load-time checks of the lifecycle's `contact:` section, located as file:line:column."""

from __future__ import annotations

from pathlib import Path

from engine import calendars
from engine.errors import PlaybookError, suggest
from engine.events import declared_events
from engine.expression_checks import Located
from engine.model import Lifecycle
from engine.policy_model import CATEGORIES


DO_NOT_CONTACT_MAX = 2000
"""The list travels with the lifecycle definition into every stage entry's history: keep it small."""


def check_contact(lifecycle: Lifecycle, doc: Located) -> list[PlaybookError]:
    """Zones, calendars, channels and events the contact policy names must exist."""
    policy = lifecycle.contact
    errors: list[PlaybookError] = []
    for name in lifecycle.channels:
        if name in CATEGORIES:  # consent.<name> would mean both the channel and the category
            errors.append(doc.error(("channels", name), f"channel '{name}' has the name of a message category "
                                                        f"({', '.join(CATEGORIES)}): rename it", key=True))
    if policy is None:
        return errors
    base = ("contact",)
    if policy.timezone is not None and not calendars.is_zone(policy.timezone):
        errors.append(doc.error((*base, "timezone"), f"unknown time zone '{policy.timezone}' "
                                                     f"(an IANA name such as America/New_York or Europe/Berlin)"))
    if policy.calendar is not None:
        problem = calendars.calendar_problem(policy.calendar)
        if problem:
            errors.append(doc.error((*base, "calendar"), problem))
    channels = lifecycle.channels
    for index, rule in enumerate(policy.quiet_hours):
        errors += _channels(doc, (*base, "quiet_hours", index), rule.channels, channels)
        if rule.days == "business" and policy.calendar is None:
            errors.append(doc.error((*base, "quiet_hours", index, "days"),
                                    "'days: business' needs contact.calendar (the default holiday calendar)"))
    for role, team in policy.roles.items():
        where = (*base, "roles", role)
        if role not in lifecycle.roles:
            errors.append(doc.error(where, f"unknown role '{role}'{suggest(role, lifecycle.roles)}", key=True))
        if team.timezone is not None and not calendars.is_zone(team.timezone):
            errors.append(doc.error((*where, "timezone"), f"unknown time zone '{team.timezone}'"))
        problem = calendars.calendar_problem(team.calendar) if team.calendar is not None else None
        if problem:
            errors.append(doc.error((*where, "calendar"), problem))
    events = declared_events(lifecycle)
    seen: set[str] = set()
    for index, cap in enumerate(policy.caps):
        where = (*base, "caps", index)
        if cap.id in seen:
            errors.append(doc.error((*where, "id"), f"cap '{cap.id}' is defined twice"))
        seen.add(cap.id)
        errors += _channels(doc, where, cap.channels, channels)
        if cap.after is not None and cap.after not in events:
            errors.append(doc.error((*where, "after"), f"unknown event '{cap.after}'{suggest(cap.after, events)}"))
    return errors


def _channels(doc: Located, where: tuple, names: list[str], channels: dict) -> list[PlaybookError]:
    return [doc.error((*where, "channels", position), f"unknown channel '{name}'{suggest(name, channels)}")
            for position, name in enumerate(names) if name not in channels]


def read_do_not_contact(lifecycle: Lifecycle, folder: Path, doc: Located) -> tuple[bytes, list[PlaybookError]]:
    """Add the entries of `contact.do_not_contact_file` to `contact.do_not_contact`.

    Returns the file's bytes (part of every stage's version, so a new list is picked up at the
    next stage entry) and the errors (a missing or unreadable file)."""
    from engine.loader import outside

    policy = lifecycle.contact
    if policy is None or policy.do_not_contact_file is None:
        return b"", []
    where = ("contact", "do_not_contact_file")
    escape = outside(folder, policy.do_not_contact_file)
    if escape:
        return b"", [doc.error(where, escape)]
    try:
        raw = (folder / policy.do_not_contact_file).read_bytes()
        text = raw.decode("utf-8")
    except OSError as error:
        return b"", [doc.error(where, f"cannot read '{policy.do_not_contact_file}': {error.strerror or error}")]
    except UnicodeDecodeError:
        return b"", [doc.error(where, f"'{policy.do_not_contact_file}' is not UTF-8 text")]
    entries = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    policy.do_not_contact = sorted(set(policy.do_not_contact) | {entry for entry in entries if entry})
    if len(policy.do_not_contact) > DO_NOT_CONTACT_MAX:
        return raw, [doc.error(where, f"the do-not-contact list has {len(policy.do_not_contact):,} entries; at most "
                                      f"{DO_NOT_CONTACT_MAX:,} travel with every stage entry (keep a longer list "
                                      f"in the delivery system, or end those customers' lifecycles)")]
    return raw, []

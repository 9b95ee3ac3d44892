"""The `contact:` section of the lifecycle file, as pydantic models (see engine.policy for what it does).

Kept apart from engine.policy so that engine.model can hold it as a Lifecycle field without an
import cycle: this module knows only the field types (engine.fields) and clock times.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine import calendars
from engine.fields import Duration, Strict

CATEGORIES = ("transactional", "service", "survey", "marketing")
Category = Literal["transactional", "service", "survey", "marketing"]


class QuietHours(Strict):
    """When messages on some channels and categories may go out: a daily window in local time."""

    channels: list[str] = Field(default_factory=list, description="The channels it applies to; none: every channel.",
                                examples=[["sms"]])
    categories: list[Category] = Field(
        default_factory=list, description="The categories it applies to; none: every category.",
        examples=[["service", "survey", "marketing"]])
    allowed: str = Field(description="The window, HH:MM-HH:MM in the customer's time zone (start before end).",
                         examples=["08:00-21:00"])
    days: Literal["all", "weekdays", "business"] = Field(
        "all", description="Which days the window is open: every day, Monday to Friday, or business days "
                           "(weekdays that are not public holidays of the customer's calendar).",
        examples=["business"])

    @field_validator("allowed")
    @classmethod
    def _window(cls, value: str) -> str:
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError(f"'{value}' is not a window: write HH:MM-HH:MM, e.g. 08:00-21:00")
        try:
            opens, closes = calendars.clock(start.strip()), calendars.clock(end.strip())
        except calendars.CalendarError as error:
            raise ValueError(str(error)) from None
        if opens >= closes:
            raise ValueError(f"'{value}': the window must open before it closes (split one across midnight in two)")
        return f"{start.strip()}-{end.strip()}"

    @property
    def opens(self) -> str:
        return self.allowed.split("-")[0]

    @property
    def closes(self) -> str:
        return self.allowed.split("-")[1]


class Cap(Strict):
    """A frequency cap: at most `at_most` messages in `per`, or none within `per` after an event."""

    id: str = Field(description="The rule's name, shown in the timeline when it caps a message.",
                    examples=["marketing_weekly"])
    categories: list[Category] = Field(default_factory=list, description="Categories counted and capped; none: all.",
                                       examples=[["marketing"]])
    channels: list[str] = Field(default_factory=list, description="Channels counted and capped; none: all.",
                                examples=[["sms"]])
    at_most: int | None = Field(None, ge=0, description="How many messages in any window of length `per`.",
                                examples=[2])
    after: str | None = Field(None, description="An event: no message within `per` after it arrived.",
                              examples=["ticket.opened"])
    per: Duration = Field(description="The window.", examples=["7d", "24h"])
    then: Literal["suppress", "defer"] = Field(
        "suppress", description="What happens to a capped message: it is not sent, or it waits until the cap allows it.",
        examples=["defer"])

    @model_validator(mode="after")
    def _one_kind(self) -> Cap:
        if (self.at_most is None) == (self.after is None):
            raise ValueError("give exactly one of 'at_most' (a count in a window) or 'after' (an event)")
        if self.per <= timedelta(0):
            raise ValueError("'per' must be longer than zero")
        return self


class RoleCalendar(Strict):
    """Where and when a role works: its tasks' business days count on its calendar."""

    calendar: str | None = Field(None, description="The role's holiday calendar (default: the customer's).",
                                 examples=["DE-BY"])
    timezone: str | None = Field(None, description="The role's time zone (default: the customer's).",
                                 examples=["Europe/Berlin"])
    business_hours: str | None = Field(
        None, description="HH:MM-HH:MM in the role's zone: a task due in N business hours counts only this "
                          "window on business days; one due in N business days is due at its close on the "
                          "last of them.", examples=["08:00-17:00"])

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        return None if value is None else QuietHours._window(value)

    @property
    def opens(self) -> str | None:
        return self.business_hours.split("-")[0] if self.business_hours else None

    @property
    def closes(self) -> str | None:
        return self.business_hours.split("-")[1] if self.business_hours else None


class ContactPolicy(Strict):
    """The lifecycle's contact policy: time zone, calendar, consent, quiet hours, caps, do-not-contact."""

    timezone: str | None = Field(None, description="The time zone of customers without `timezone` (IANA name).",
                                 examples=["America/New_York"])
    calendar: str | None = Field(
        None, description="The holiday calendar of customers without `calendar`: a country code, optionally "
                          "with a subdivision (holidays package), e.g. US, US-NY, DE-BY.", examples=["US"])
    requires_consent: list[Category] = Field(
        default_factory=list, description="Categories that need the customer's explicit yes (consent.CATEGORY); "
                                          "the others need only the channel's consent.", examples=[["marketing"]])
    quiet_hours: list[QuietHours] = Field(
        default_factory=list, description="Send windows; a message outside every window that applies to it "
                                          "waits for the next allowed moment.",
        examples=[[{"channels": ["sms"], "allowed": "08:00-21:00"}]])
    caps: list[Cap] = Field(default_factory=list, description="Frequency caps across the whole lifecycle.",
                            examples=[[{"id": "marketing_weekly", "categories": ["marketing"], "at_most": 2,
                                        "per": "7d"}]])
    do_not_contact: list[str] = Field(
        default_factory=list, description="Customer ids, e-mail addresses or phone numbers never to contact "
                                          "(kept by operators; `do_not_contact_file` adds a file of them).",
        examples=[["c-1042", "someone@example.com"]])
    roles: dict[str, RoleCalendar] = Field(
        default_factory=dict, description="Calendars and business hours of roles (teams), for their tasks' "
                                          "`N business days` and `N business hours` deadlines.",
        examples=[{"warranty_technician": {"calendar": "DE-BY", "timezone": "Europe/Berlin",
                                           "business_hours": "08:00-17:00"}}])
    do_not_contact_file: str | None = Field(
        None, description="A text file, relative to the lifecycle file, with one id or address per line "
                          "(# comments); read when the lifecycle loads.", examples=["do-not-contact.txt"])

    def longest_window(self) -> timedelta:
        """How long the send log must remember a message."""
        return max((cap.per for cap in self.caps), default=timedelta(0))

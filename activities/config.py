"""Where effects go: which implementation serves each channel, read from LIFECYCLE_* variables.

Routing is configuration, not code, so the same playbooks send to an outbox file on a
laptop and to a real SMTP relay or webhook in production.

    LIFECYCLE_CHANNELS="email=smtp,sms=outbox,letter=outbox"   # unlisted channels: outbox
    LIFECYCLE_TASKS=outbox|webhook
    LIFECYCLE_SMTP_HOST / _PORT / _FROM / _USERNAME / _PASSWORD / _STARTTLS / _TLS
    LIFECYCLE_SMTP_TIMEOUT / _DATA_TIMEOUT (seconds; RFC 5321's 300 and 600 by default)
    LIFECYCLE_WEBHOOK_URL / _TOKEN / _TIMEOUT
    LIFECYCLE_STATE_DIR (default .lifecycle), LIFECYCLE_TASK_QUEUE (default lifecycle)
    LIFECYCLE_PLAYBOOKS (the lifecycle file or its folder; default playbooks)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator

ChannelImpl = Literal["outbox", "smtp", "webhook"]
"""An implementation that can carry a message."""

TaskImpl = Literal["outbox", "webhook"]
"""An implementation that can hand a task to a person (a human role)."""

PREFIX = "LIFECYCLE_"


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message is one readable line."""


class SmtpSettings(BaseModel):
    """How to reach the SMTP relay."""

    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field("lifecycle@localhost", description="The From address (LIFECYCLE_SMTP_FROM).")
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool | None = Field(
        None, description="True: require STARTTLS; False: never; None: use it when offered."
    )
    tls: bool = Field(False, description="Implicit TLS from the first byte (port 465).")
    timeout: float = Field(
        300.0, gt=0,
        description="Wait for the greeting and each command's reply (RFC 5321 §4.5.3.2: 5 minutes).",
    )
    data_timeout: float = Field(
        600.0, gt=0,
        description="Wait for the reply to the message's final '.' (RFC 5321 §4.5.3.2.6: 10 minutes). "
        "Shorter risks resending a message the relay has already taken.",
    )


class WebhookSettings(BaseModel):
    """Where to POST actions served by the webhook implementation."""

    url: str | None = None
    token: SecretStr | None = Field(None, description="Sent as 'Authorization: Bearer <token>'.")
    timeout: float = Field(10.0, gt=0)


class LifecycleSettings(BaseModel):
    """Every knob of the effect side, with defaults that work on a laptop (all to the outbox)."""

    state_dir: Path = Path(".lifecycle")
    task_queue: str = "lifecycle"
    playbooks: Path = Field(Path("playbooks"), description="The lifecycle file or its folder.")
    channels: dict[str, ChannelImpl] = Field(
        default_factory=dict, description="Channel name → implementation; unlisted channels use outbox."
    )
    tasks: TaskImpl = "outbox"
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)

    @model_validator(mode="after")
    def _complete(self) -> LifecycleSettings:
        # Fail when the worker starts, not at the first message hours later.
        used = set(self.channels.values()) | {self.tasks}
        if "smtp" in used and not self.smtp.host:
            raise ValueError("LIFECYCLE_SMTP_HOST is required when a channel uses smtp")
        if "webhook" in used and not self.webhook.url:
            raise ValueError("LIFECYCLE_WEBHOOK_URL is required when a channel or tasks use webhook")
        return self

    @property
    def lifecycle_file(self) -> Path:
        """The lifecycle file: `playbooks` itself, or the lifecycle.yaml in that folder."""
        return self.playbooks / "lifecycle.yaml" if self.playbooks.is_dir() else self.playbooks

    @property
    def outbox_path(self) -> Path:
        """The JSON-lines file the outbox implementation appends to."""
        return self.state_dir / "outbox.jsonl"

    def implementation_for(self, kind: str, channel: str | None) -> str:
        """The implementation that serves an action of this kind on this channel."""
        if kind in ("task", "incident", "notice", "reminder"):  # for people, never to the customer's channel
            return self.tasks
        return self.channels.get(channel or "", "outbox")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LifecycleSettings:
        """Read the settings from LIFECYCLE_* variables (the process environment by default).

        Raises SettingsError with one line naming the variable at fault.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(PREFIX + name)
            return value.strip() if value is not None and value.strip() else None

        raw: dict = {"smtp": {}, "webhook": {}}
        simple = {
            "STATE_DIR": ("state_dir",), "TASK_QUEUE": ("task_queue",), "TASKS": ("tasks",),
            "PLAYBOOKS": ("playbooks",),
            "SMTP_HOST": ("smtp", "host"), "SMTP_PORT": ("smtp", "port"),
            "SMTP_FROM": ("smtp", "sender"), "SMTP_USERNAME": ("smtp", "username"),
            "SMTP_PASSWORD": ("smtp", "password"), "SMTP_TLS": ("smtp", "tls"),
            "SMTP_TIMEOUT": ("smtp", "timeout"), "SMTP_DATA_TIMEOUT": ("smtp", "data_timeout"),
            "WEBHOOK_URL": ("webhook", "url"), "WEBHOOK_TOKEN": ("webhook", "token"),
            "WEBHOOK_TIMEOUT": ("webhook", "timeout"),
        }
        for name, path in simple.items():
            value = get(name)
            if value is not None:
                target = raw if len(path) == 1 else raw[path[0]]
                target[path[-1]] = value
        starttls = get("SMTP_STARTTLS")
        if starttls is not None and starttls.lower() != "auto":
            raw["smtp"]["starttls"] = starttls
        channels = get("CHANNELS")
        if channels is not None:
            raw["channels"] = parse_channels(channels)
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, data: Mapping) -> LifecycleSettings:
        """Build settings from a plain dict; errors become one SettingsError line."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise SettingsError(_one_line(error)) from None


def parse_channels(text: str) -> dict[str, str]:
    """Parse 'email=smtp,sms=outbox' into a mapping, with a readable error for a bad entry."""
    mapping: dict[str, str] = {}
    allowed = get_args(ChannelImpl)
    for entry in filter(None, (part.strip() for part in text.split(","))):
        channel, sep, impl = (piece.strip() for piece in entry.partition("="))
        if not sep or not channel or not impl:
            raise SettingsError(f"LIFECYCLE_CHANNELS: {entry!r} is not channel=implementation")
        if impl not in allowed:
            raise SettingsError(
                f"LIFECYCLE_CHANNELS: unknown implementation {impl!r} for channel {channel!r}"
                f" (choose {', '.join(allowed)})"
            )
        mapping[channel] = impl
    return mapping


def _one_line(error: ValidationError) -> str:
    """Name the first failing setting by its environment variable."""
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    message = first["msg"].removeprefix("Value error, ")
    if not loc:
        return message
    if loc[0] == "smtp" and loc[1:2] == ["sender"]:
        loc = ["smtp", "from"]
    # Only the smtp and webhook groups are nested; a channel name is part of one variable.
    parts = loc[:2] if loc[0] in ("smtp", "webhook") else loc[:1]
    return f"{PREFIX}{'_'.join(parts).upper()}: {message}"

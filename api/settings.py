"""The API's knobs, read from LIFECYCLE_API_* variables (and the worker's LIFECYCLE_* ones).

    LIFECYCLE_API_TOKENS="crm:4f0c...,helpdesk:9a1e..."   # name:token pairs; required
    LIFECYCLE_API_MAX_BODY=1048576                        # bytes per request body (413 above)
    LIFECYCLE_API_IDEMPOTENCY_ENTRIES=100000              # keys remembered per API process
    LIFECYCLE_API_EVENT_TIMEOUT=30                        # seconds to wait for a worker (then queued or 504)
    LIFECYCLE_API_RATE=100/s                              # requests per caller (429 above); "off" for none
    LIFECYCLE_API_BODY_TIMEOUT=10                         # seconds to receive a request body (408 after)
    LIFECYCLE_PLAYBOOKS, LIFECYCLE_TASK_QUEUE             # as for the worker
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TOKENS_VAR = "LIFECYCLE_API_TOKENS"
MIN_TOKEN_LENGTH = 16
MAX_BATCH = 500
MAX_BODY_BYTES = 1024 * 1024
RATE_VAR = "LIFECYCLE_API_RATE"
DEFAULT_RATE = "100/s"
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*(s|sec|second|seconds|m|min|minute|minutes|h|hour|hours)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


class ApiSettingsError(ValueError):
    """A setting is missing or wrong; the message is one line naming the variable."""


def parse_tokens(text: str) -> dict[str, str]:
    """Parse `name:token,name2:token2` into name → token; names identify callers in logs."""
    tokens: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, token = (piece.strip() for piece in entry.partition(":"))
        if not sep or not name or not token:
            # Never echo the entry: it may hold a token.
            raise ApiSettingsError(f"{TOKENS_VAR}: entry {len(tokens) + 1} is not name:token")
        if name in tokens:
            raise ApiSettingsError(f"{TOKENS_VAR}: caller '{name}' is listed twice")
        sharing = next((other for other, theirs in tokens.items() if theirs == token), None)
        if sharing is not None:
            # A shared token makes the callers indistinguishable: logs, rate limits and revoking
            # one of them would all apply to both. Never echo the token itself.
            raise ApiSettingsError(f"{TOKENS_VAR}: callers '{sharing}' and '{name}' share one token; "
                                   "give each caller its own")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ApiSettingsError(
                f"{TOKENS_VAR}: the token of '{name}' is shorter than {MIN_TOKEN_LENGTH} characters"
            )
        tokens[name] = token
    return tokens


def parse_rate(text: str) -> tuple[int, int] | None:
    """`100/s`, `6000/minute`, `10 per 2 seconds` → (requests, seconds); `off` → None."""
    if text.strip().lower() in ("off", "none", "0"):
        return None
    match = _RATE.match(text.lower())
    if not match or int(match.group(1)) <= 0:
        raise ApiSettingsError(f"{RATE_VAR}: {text!r} is not a rate like 100/s, 6000/minute or off")
    count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)[0]
    return count, multiple * _UNIT_SECONDS[unit]


@dataclass(frozen=True)
class ApiSettings:
    """Everything the HTTP API needs besides a Temporal client."""

    lifecycle_file: Path
    tokens: Mapping[str, str] = field(repr=False)
    task_queue: str = "lifecycle"
    max_body_bytes: int = MAX_BODY_BYTES
    max_batch: int = MAX_BATCH
    idempotency_entries: int = 100_000
    event_timeout: float = 30.0
    rate: tuple[int, int] | None = (100, 1)
    """Requests per caller: (count, seconds); None for no limit."""
    body_timeout: float = 10.0
    analytics_store: Path = Path(".lifecycle/analytics.duckdb")
    """The DuckDB file GET /v1/analytics/... reads: $LIFECYCLE_STATE_DIR/analytics.duckdb."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ApiSettings:
        """Read the settings from the environment; `overrides` win (the CLI's options)."""
        env = os.environ if environ is None else environ
        playbooks = Path(env.get("LIFECYCLE_PLAYBOOKS") or "playbooks")
        values: dict[str, object] = {
            "lifecycle_file": playbooks / "lifecycle.yaml" if playbooks.is_dir() else playbooks,
            "tokens": parse_tokens(env.get(TOKENS_VAR, "")),
            "task_queue": env.get("LIFECYCLE_TASK_QUEUE") or "lifecycle",
            "rate": parse_rate(env.get(RATE_VAR) or DEFAULT_RATE),
            "analytics_store": Path(env.get("LIFECYCLE_STATE_DIR") or ".lifecycle") / "analytics.duckdb",
        }
        numbers = {"MAX_BODY": ("max_body_bytes", int), "IDEMPOTENCY_ENTRIES": ("idempotency_entries", int),
                   "EVENT_TIMEOUT": ("event_timeout", float), "BODY_TIMEOUT": ("body_timeout", float)}
        for suffix, (name, kind) in numbers.items():
            raw = env.get(f"LIFECYCLE_API_{suffix}")
            if raw:
                try:
                    number = kind(raw)
                except ValueError:
                    raise ApiSettingsError(f"LIFECYCLE_API_{suffix}: {raw!r} is not a number") from None
                if number <= 0:
                    raise ApiSettingsError(f"LIFECYCLE_API_{suffix}: must be positive")
                values[name] = number
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]


DEV_TOKEN_FILE = "api-token"


def dev_token(state_dir: Path) -> Path:
    """The file holding the token `lifecycle dev` gives its API, created (0600) on first use."""
    import secrets

    path = state_dir / DEV_TOKEN_FILE
    if not path.is_file() or len(path.read_text().strip()) < MIN_TOKEN_LENGTH:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)
    return path

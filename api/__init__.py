"""The HTTP API for other systems: events in, status and listings out (FastAPI on uvicorn).

`docs/events.md` is the contract; `create_app` builds the application, `api.server` serves it.
"""

from __future__ import annotations

from api.app import create_app
from api.settings import ApiSettings, ApiSettingsError

__all__ = ["ApiSettings", "ApiSettingsError", "create_app"]

"""Every side effect of a lifecycle: message channels, tasks for people, webhooks.

Importing this package loads the I/O clients (httpx, aiosmtplib), so workflow code
imports from it inside `workflow.unsafe.imports_passed_through()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.delivery import Delivery, deliver
from workflows.policy import DELIVERY_OPTIONS, RETRY_POLICY

ALL_ACTIVITIES: list[Callable[..., Any]] = [deliver]
"""The activities a lifecycle worker registers."""

__all__ = ["ALL_ACTIVITIES", "DELIVERY_OPTIONS", "RETRY_POLICY", "Delivery", "deliver"]

"""Every side effect of a lifecycle: message channels, tasks for people, webhooks.

Importing this package loads the I/O clients (httpx, aiosmtplib), so workflow code
imports from it inside `workflow.unsafe.imports_passed_through()`.
"""

from __future__ import annotations

from activities.delivery import Delivery
from workflows.policy import DELIVERY_OPTIONS, RETRY_POLICY

__all__ = ["DELIVERY_OPTIONS", "RETRY_POLICY", "Delivery"]

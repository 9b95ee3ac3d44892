"""The `deliver` activity: send a message or hand a task to a person, on the configured implementation."""

from __future__ import annotations

from temporalio import activity

from activities.config import LifecycleSettings
from activities.outbox import send_to_outbox
from activities.smtp import send_email
from activities.webhook import post_action
from engine.state import Action, ActionResult


class Delivery:
    """Routes actions to outbox, SMTP or webhook according to explicit settings.

    A worker that wants settings other than the environment's registers
    `Delivery(settings).deliver` instead of the module-level `deliver`.
    """

    def __init__(self, settings: LifecycleSettings) -> None:
        """Deliver with these settings."""
        self.settings = settings

    @activity.defn(name="deliver")
    async def deliver(self, action: Action) -> ActionResult:
        """Perform the action once; raise ApplicationError (retryable or not) when it fails."""
        implementation = self.settings.implementation_for(action.kind, action.channel)
        if activity.in_activity():
            activity.logger.info(
                "deliver %s %s via %s (attempt %d)",
                action.kind, action.id, implementation, activity.info().attempt,
            )
        if implementation == "smtp":
            return await send_email(action, self.settings.smtp)
        if implementation == "webhook":
            return await post_action(action, self.settings.webhook)
        return await send_to_outbox(action, self.settings.outbox_path)


@activity.defn(name="deliver")
async def deliver(action: Action) -> ActionResult:
    """Perform the action with settings read from the LIFECYCLE_* environment at call time."""
    # Read per call (cheap) so an operator's change applies without stale module state.
    return await Delivery(LifecycleSettings.from_env()).deliver(action)

"""The benchmark's baseline: the playbook's work written by hand against the Temporal SDK.

Its own module, with only what a workflow may import, so the sandbox validates it. Made twice:
as an engineer would deploy it by default (in the sandbox), and without the sandbox, as the
engine's own workflow runs (CustomerLifecycle's docstring), so the benchmark shows both.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.state import Action, ActionResult


class _Onboarding:
    """The same work written directly against the SDK."""

    def __init__(self) -> None:
        self.delivered = False

    async def onboard(self, customer_id: str) -> None:
        def message(step: str) -> Action:
            return Action(id=f"{workflow.info().workflow_id}/{step}", kind="message", customer_id=customer_id,
                          stage="onboarding", step=step, channel="email", to="ada@example.com")

        options = dict(start_to_close_timeout=timedelta(seconds=30), result_type=ActionResult)
        await workflow.execute_activity("deliver", message("welcome"), **options)
        await workflow.wait_condition(lambda: self.delivered)
        for step in ("check_in", "survey", "thanks"):
            await workflow.execute_activity("deliver", message(step), **options)

    @workflow.update
    def delivered_event(self, delivered_at: str) -> str:
        self.delivered = True
        return "accepted"


@workflow.defn(name="HandwrittenOnboarding")
class HandwrittenOnboarding(_Onboarding):
    @workflow.run
    async def run(self, customer_id: str) -> None:
        await self.onboard(customer_id)


@workflow.defn(name="HandwrittenUnsandboxed", sandboxed=False)
class HandwrittenUnsandboxed(_Onboarding):
    @workflow.run
    async def run(self, customer_id: str) -> None:
        await self.onboard(customer_id)

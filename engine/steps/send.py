"""`send`: a message from a template, on a channel or on the customer's preferred one.

The send path, one method each so that a policy can step in between: choose the channel
(`channel_for`), render the template (`StageRun.render`), build the message action
(`message`); without a channel, the `otherwise` task or the record of the suppression
(`no_channel`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from engine.state import Action, ActionResult
from engine.steps.base import Checks, Events, Lint, Step
from engine.steps.task import TaskSpec, task_effect
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import Effect, StageRun


class Send(Step):
    """Send a message from a template on a channel, or on the customer's preferred one."""

    kind: Literal["send"] = Field("send", description="Send a message.", examples=["send"])
    template: str = Field(description="Template name in the template folder.", examples=["check_in"])
    channel: str = Field(
        "preferred",
        description="A declared channel, or 'preferred': the customer's preferred channel, "
        "then the others in the lifecycle's fallback order.",
        examples=["preferred", "email"],
    )
    category: Literal["transactional", "marketing"] = Field(
        "transactional",
        description="'marketing' for messages that sell or ask (referral requests, offers).",
        examples=["marketing"],
    )
    otherwise: TaskSpec | None = Field(
        None, description="A task to create instead when no channel has the customer's consent.",
        examples=[{"role": "account_manager", "title": "Call instead", "guideline": "Ask how it went."}],
    )

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        playbook.template((*path, "template"), self.template)
        playbook.channel((*path, "channel"), self.channel)
        if self.otherwise is not None:
            playbook.role((*path, "otherwise", "role"), self.otherwise.role)
            playbook.span((*path, "otherwise", "due"), self.otherwise.due, None)

    # ------------------------------------------------------------ the send path

    def prepare(self, stage: StageRun, path: str) -> list[Effect]:
        """The message, the task replacing it, or (no action) the record of its suppression."""
        chosen = self.channel_for(stage)
        if chosen is None:
            return [self.no_channel(stage, path)]
        channel, address = chosen
        subject, body = stage.render(self.template)
        return [self.message(stage, path, channel, address, subject, body)]

    async def run(self, stage: StageRun, path: str) -> None:
        await stage.act(self.prepare(stage, path))

    def channel_for(self, stage: StageRun) -> tuple[str, str] | None:
        """The first channel with consent and an address: the asked one, or preferred then fallbacks."""
        customer = stage.state.customer
        channels = stage.lifecycle.channels
        consent = customer.get("consent") or {}
        if self.channel == "preferred":
            order = list(channels)
            preferred = customer.get("preferred_channel")
            if preferred in order:
                order.remove(preferred)
                order.insert(0, preferred)
        else:
            order = [self.channel]
        for channel in order:
            address = customer.get(channels[channel].contact)
            if consent.get(channel) is True and address:
                return channel, str(address)
        return None

    def no_channel(self, stage: StageRun, path: str) -> Effect:
        """No channel can be used: the `otherwise` task, or (no action) a `suppressed` record."""
        if self.otherwise is None:
            key = step_key(self, path)
            return None, lambda _: stage.record("suppressed", key, template=self.template,
                                                reason="no channel with consent")
        return task_effect(stage, self.otherwise, self, path, reason=f"no consent to send '{self.template}'")

    def message(self, stage: StageRun, path: str, channel: str, address: str, subject: str, body: str) -> Effect:
        """The message action on `channel` to `address`, and what to record of its result."""
        key = step_key(self, path)
        state = stage.state
        action = Action(
            id=stage.action_id(self, path), kind="message", customer_id=state.customer["id"],
            stage=state.stage, step=key, channel=channel, to=address, template=self.template,
            category=self.category, subject=subject, body=body,
        )
        stage.checked_action(f"the message of '{self.template}'", action)

        def on_result(result: ActionResult) -> None:
            if result.status == "done":
                stage.record("message", key, channel=channel, template=self.template, action_id=action.id)
            else:
                stage.record("failed", key, channel=channel, template=self.template, error=result.detail)

        return action, on_result

    # ------------------------------------------------------------ analyses

    def describe(self) -> tuple[str, list[str]]:
        extra = [self.channel] + (["marketing"] if self.category == "marketing" else [])
        lines = [f"send {self.template}", ", ".join(extra)]
        if self.otherwise is not None:
            lines.append(f"otherwise task: {self.otherwise.role}")
        return "io", lines

    def lint(self, linter: Lint, path: DataPath, guarded: bool) -> None:
        if self.channel == "preferred" and self.otherwise is None:
            linter.warn(path, "preferred-without-otherwise",
                        f"send '{self.template}' on the preferred channel has no 'otherwise' "
                        f"task: a customer with no consented channel gets nothing and nobody "
                        f"is told")
        if self.category == "marketing" and not guarded:
            linter.warn(path, "unguarded-marketing",
                        f"marketing send '{self.template}' is not inside an 'if': every customer "
                        f"in the stage gets it, satisfied or not")

    def templates(self) -> list[str]:
        return [self.template]

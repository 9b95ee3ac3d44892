"""`send`: a message from a template, on a channel or on the customer's preferred one.

The send path, one method each: the contact policy decides (`decide`, engine.policy: the
channel, or defer until when, or suppress why), then the template is rendered
(`StageRun.render`) and the message action built (`message`); without a channel, the
`otherwise` task or the record of the suppression (`no_channel`).

A send the policy defers does not act at once: `prepare` gives None, so the step runs on its
own (`run`): it waits on a durable timer like a `wait` step, then decides again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from engine import policy
from engine.calendars import CalendarError
from engine.exits import StepFailed
from engine.policy import Decision
from engine.policy_model import Category
from engine.state import Action, ActionResult, Pending, built
from engine.steps.base import Checks, Events, Lint, Step
from engine.steps.notices import notice_action, notice_failure
from engine.steps.task import TaskSpec, task_effect
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import Effect, StageRun

CONTACT_POLICY = "contact-policy"
"""The change that made every send go through the contact policy (engine.policy): a history
recorded before it sends where the policy would defer or suppress, on the channel the old rule chose."""

POLICY_NOTICES = "policy-notices"
"""The change that made a deferred or suppressed send also act: a `notice` action (outbox or
webhook, like a task) saying what the policy decided and why. A history recorded before it has
only the timeline record (`deferred`, `suppressed`), and no activity for it."""


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
    category: Category = Field(
        "transactional",
        description="What the message is for: transactional (about a purchase), service (support, "
        "reminders), survey (asks for feedback), marketing (sells or asks a favour: offers, referral "
        "requests). The contact policy's consent, quiet hours and caps go by it.",
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
            playbook.span((*path, "otherwise", "due"), self.otherwise.due, None, self.otherwise.role)

    # ------------------------------------------------------------ the send path

    def prepare(self, stage: StageRun, path: str) -> list[Effect] | None:
        """The message, the task replacing it, or (no action) the record of its suppression;
        None when the contact policy defers it (then `run` waits)."""
        decision = self.decide(stage)
        return None if decision.action == "defer" else self.effects(stage, path, decision)

    async def run(self, stage: StageRun, path: str) -> None:
        """A send the contact policy deferred: record why, wait on a durable timer (a transition
        interrupts it like any wait), then decide again: an opt-out or a cap that came meanwhile
        still applies. Resumed in a new run (continue-as-new), its wait goes on."""
        key = step_key(self, path)
        decision = None if stage.paused_at(path) else self.decide(stage)
        while decision is None or decision.action == "defer":
            if decision is not None:
                zone = policy.customer_zone(policy.policy_of(stage.lifecycle), stage.state.customer)
                detail = decision.detail(zone)
                stage.record("deferred", key, template=self.template, **detail)
                if stage.runtime.patched(POLICY_NOTICES):
                    await stage.act([self.notice(stage, path, decision, detail)])
            deferred = decision
            until = stage.resumed_until(path, lambda: deferred.until if deferred else None)
            before = stage.state.pending  # after continue-as-new the reason is the one recorded
            reason = deferred.reason if deferred else (before.deferred if before and before.deferred else "deferred")
            await stage.pause(self, path, built(Pending, step=key, until=until, deferred=reason), lambda: False,
                              until)
            decision = self.decide(stage)
        await stage.act(self.effects(stage, path, decision))

    def decide(self, stage: StageRun) -> Decision:
        """The contact policy's decision for this send now. A history recorded before the policy
        existed replays the old rule (`channel_for`, sent at once)."""
        try:
            decision = policy.decide(stage.lifecycle, stage.state.customer, stage.state.contact, self.channel,
                                     self.category, stage.runtime.now())
        except CalendarError as error:  # e.g. a profile's time zone this machine does not know
            raise StepFailed("policy", str(error)) from None
        legacy = self.channel_for(stage)
        same = decision.action == "send" and legacy is not None and decision.channel == legacy[0] or \
            decision.action == "suppress" and decision.no_channel and legacy is None
        if same or stage.runtime.patched(CONTACT_POLICY):
            return decision
        if legacy is None:
            return Decision("suppress", reason="no channel with consent", no_channel=True)
        return Decision("send", legacy[0], legacy[1])

    def effects(self, stage: StageRun, path: str, decision: Decision) -> list[Effect]:
        """What a decision to send or to suppress does: the message (logged at once for the caps),
        the `otherwise` task, or the record of the suppression."""
        if decision.action == "suppress":
            return [self.no_channel(stage, path, decision)]
        channel, address = decision.channel, decision.address
        assert channel is not None and address is not None
        subject, body = stage.render(self.template)
        effect = self.message(stage, path, channel, address, subject, body)
        # Logged for the caps now, not when its batch is delivered: the next send of the same
        # batch must count it (a message that then fails to go out still counts: caps err on quiet).
        policy.note_sent(policy.policy_of(stage.lifecycle), stage.state.contact, stage.runtime.now(), channel,
                         self.category)
        return [effect]

    def channel_for(self, stage: StageRun) -> tuple[str, str] | None:
        """Before CONTACT_POLICY: the first channel with consent and an address, the asked one or
        preferred then fallbacks (kept to replay histories recorded before the contact policy)."""
        customer = stage.state.customer
        consent = customer.get("consent") or {}
        for channel in policy.channel_order(stage.lifecycle, customer, self.channel):
            address = customer.get(stage.lifecycle.channels[channel].contact)
            if consent.get(channel) is True and address:
                return channel, str(address)
        return None

    def no_channel(self, stage: StageRun, path: str, decision: Decision) -> Effect:
        """A suppressed send: the `otherwise` task when no channel has consent, else a
        `suppressed` record with the policy's reason, and its notice (POLICY_NOTICES)."""
        if self.otherwise is None or not decision.no_channel:
            key = step_key(self, path)
            if stage.runtime.patched(POLICY_NOTICES):
                return self.notice(stage, path, decision, decision.detail())
            return None, lambda _: stage.record("suppressed", key, template=self.template, **decision.detail())
        return task_effect(stage, self.otherwise, self, path, reason=f"no consent to send '{self.template}'")

    def notice(self, stage: StageRun, path: str, decision: Decision, detail: dict[str, Any]) -> Effect:
        """The `notice` action telling operators the policy deferred or suppressed this send.

        Its id is the message's plus what was decided (and until when), so a retry is the same
        notice and each deferral of one send its own. A suppression's notice records the
        `suppressed` line (as before the notice existed), with the notice's failure if any."""
        key = step_key(self, path)
        what = f"Message '{self.template}'" + (f" on {decision.channel}" if decision.channel else "")
        if decision.action == "defer":
            assert decision.until is not None
            decided, kind = f"deferred@{decision.until.isoformat()}", "deferred"
            when = detail.get("local") or decision.until.isoformat()
            title = f"{what} deferred to {when}: {decision.reason}"
        else:
            decided, kind = "suppressed", "suppressed"
            title = f"{what} suppressed: {decision.reason}"
        action = notice_action(
            stage, self, path, decided, title,
            f"{kind}: {decision.reason}" + (f" (rule {decision.rule})" if decision.rule else ""),
            channel=decision.channel, template=self.template, category=self.category,
        )

        def on_result(result: ActionResult | None) -> None:
            failed = notice_failure(result)
            if kind == "suppressed":
                stage.record("suppressed", key, template=self.template, **detail, **failed)
            elif failed:
                stage.record("failed", key, template=self.template, error=f"notice: {failed['notice_error']}")

        return action, on_result

    def message(self, stage: StageRun, path: str, channel: str, address: str, subject: str, body: str) -> Effect:
        """The message action on `channel` to `address`, and what to record of its result."""
        key = step_key(self, path)
        state = stage.state
        action = built(
            Action, id=stage.action_id(self, path), kind="message", customer_id=state.customer["id"],
            stage=state.stage, step=key, channel=channel, to=address, template=self.template,
            category=self.category, subject=subject, body=body,
        )
        stage.checked_action(f"the message of '{self.template}'", action)

        def on_result(result: ActionResult) -> None:
            if result.status == "done":
                stage.record("message", key, channel=channel, template=self.template, category=self.category,
                             action_id=action.id)
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

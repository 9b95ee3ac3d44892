"""`notice` actions: telling operators what the engine decided for a customer, and why.

A notice goes where tasks go (outbox or task webhook, never a customer's channel). The contact
policy acts one for a deferred or suppressed send (engine.steps.send), a split for the branch it
assigns (engine.steps.split). Its id is the step's action id plus what was decided, so a retry
of the activity is the same notice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.state import Action, ActionResult
from engine.walk import step_key

if TYPE_CHECKING:
    from engine.interpreter import StageRun


def notice_action(stage: StageRun, step: Any, path: str, decided: str, title: str, guideline: str,
                  **fields: Any) -> Action:
    """The `notice` about `step` at `path`: `decided` is appended to the step's action id
    (`deferred@<until>`, `suppressed`, `split@<branch>`); `title` says what, `guideline` why."""
    state = stage.state
    return Action(id=f"{stage.action_id(step, path)}/{decided}", kind="notice", customer_id=state.customer["id"],
                  stage=state.stage, step=step_key(step, path), title=title, guideline=guideline, **fields)


def notice_failure(result: ActionResult | None) -> dict[str, str]:
    """`{"notice_error": why}` when the notice could not be delivered, else nothing."""
    return {"notice_error": result.detail} if result is not None and result.status == "failed" else {}

"""`split`: send each customer down one weighted branch, the same one every time (an A/B test).

The choice is a stable hash (SHA-256, the same in every process and Python version; never
`hash()`, which is salted per process, nor `workflow.random`) of the lifecycle id (which
holds the customer id), the stage and the step's id, mapped onto the branches' weights. So
a replay, a restart, a continue-as-new or a second simulation gives the same branch.

It is also sticky: the branch is kept in `LifecycleState.splits`, so a customer who enters
the stage again takes the same branch even after the weights were edited (a ramp-up moves
new customers only), as long as that branch still exists.

Operators are told once per decision: the first assignment acts a `notice` (outbox or task
webhook) naming the branch and why; a re-entry that keeps the branch is a timeline record only
(`split` with `kept: true`), since nothing new was decided.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from engine.fields import Name, Strict
from engine.flow import Way
from engine.state import ActionResult, LifecycleState
from engine.steps.base import STEPS_EXAMPLE, BranchLabel, Checks, Events, Lint, Step
from engine.steps.notices import notice_action, notice_failure
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import Effect, StageRun
    from engine.steps import AnyStep  # noqa: F401  (resolved when engine.steps rebuilds the models)

SPLIT_NOTICES = "split-notices"
"""The change that made a split's first assignment of a customer also act: a `notice` action
(outbox or webhook, like a task) naming the branch and why. A history recorded before it has
only the timeline record (`split`), and no activity for it."""


class SplitVariant(Strict):
    """One branch of a split: its name (recorded), its share of customers and its steps."""

    name: Name = Field(description="The branch's name, recorded on the timeline for analytics.",
                       examples=["short_welcome"])
    weight: float = Field(gt=0, allow_inf_nan=False, description="Its share, relative to the other branches' weights.",
                          examples=[50])
    description: str = Field("", description="What this branch tries.", examples=["A two-line welcome."])
    steps: list[AnyStep] = Field(
        default_factory=list, description="Steps to run in this branch; none for a hold-out.",
        examples=[STEPS_EXAMPLE],
    )


class Split(Step):
    """Send each customer down one weighted branch, the same one every time (an A/B test)."""

    kind: Literal["split"] = Field("split", description="Split customers between branches.", examples=["split"])
    variants: list[SplitVariant] = Field(
        min_length=1, description="The branches, each with a name, a weight and steps.",
        examples=[[{"name": "short", "weight": 50, "steps": STEPS_EXAMPLE}, {"name": "long", "weight": 50}]],
    )
    holdout: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="The weight of a hold-out branch named 'holdout' that runs no steps.", examples=[10],
    )

    def arms(self) -> list[tuple[str, float]]:
        """(name, weight) of every branch, the hold-out last."""
        arms = [(variant.name, variant.weight) for variant in self.variants]
        return arms + ([("holdout", self.holdout)] if self.holdout is not None else [])

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        # Branch names once each (the hold-out is named 'holdout'), and at least two branches;
        # positive weights are checked by the model.
        seen: set[str] = set()
        for index, variant in enumerate(self.variants):
            if variant.name in seen:
                playbook.error((*path, "variants", index, "name"), f"branch '{variant.name}' is named twice")
            elif variant.name == "holdout" and self.holdout is not None:
                playbook.error((*path, "variants", index, "name"),
                               "'holdout' is the name of the hold-out branch that 'holdout' adds; rename this one")
            seen.add(variant.name)
        if len(self.arms()) < 2:
            playbook.error((*path, "variants"), "a split needs at least two branches (or one and a 'holdout')")

    async def run(self, stage: StageRun, path: str) -> None:
        key = step_key(self, path)
        name, kept = branch_for(stage.state, stage.state.stage, key, self.arms())
        stage.record("split", key, branch=name, kept=kept)
        # One notice per decision: a re-entry keeping its branch decided nothing new.
        if not kept and stage.runtime.patched(SPLIT_NOTICES):
            await stage.act([self.notice(stage, path, name)])
        for index, variant in enumerate(self.variants):
            if variant.name == name:
                await stage.steps(variant.steps, f"{path}.variants.{index}.steps.")

    def notice(self, stage: StageRun, path: str, branch: str) -> Effect:
        """The `notice` telling operators which branch this customer was assigned, and why.

        Its id is the step's action id plus `split@<branch>`, so a retry is the same notice."""
        key = step_key(self, path)
        total = sum(weight for _, weight in self.arms())
        shares = ", ".join(f"{name} {weight:g} ({weight / total:.0%})" for name, weight in self.arms())
        action = notice_action(
            stage, self, path, f"split@{branch}", f"Split {key}: branch {branch}",
            f"split: assigned '{branch}' by a stable hash of the lifecycle id, the stage and the step "
            f"onto the weights {shares}; kept if the customer enters the stage again",
        )

        def on_result(result: ActionResult | None) -> None:
            if failed := notice_failure(result):
                stage.record("failed", key, branch=branch, error=f"notice: {failed['notice_error']}")

        return action, on_result

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("variants", index, "steps"), variant.steps) for index, variant in enumerate(self.variants)]

    def ways(self) -> list[Way]:  # every branch by its name; the hold-out goes on
        return [*(Way(variant.name, ("variants", index, "steps"), variant.steps)
                  for index, variant in enumerate(self.variants)),
                *([Way("holdout")] if self.holdout is not None else [])]

    def describe(self) -> tuple[str, list[str]]:
        total = sum(weight for _, weight in self.arms())
        return "diamond", ["split", ", ".join(f"{name} {weight / total:.0%}" for name, weight in self.arms())]

    def lint(self, linter: Lint, path: DataPath, guarded: bool) -> None:
        if self.id is None:
            linter.warn(path, "split-without-id",
                        "split has no id: customers are assigned by its place in the playbook, so "
                        "moving it would send them down other branches (give it an id)")


def split_key(stage: str, step: str) -> str:
    """Where a customer's branch is kept in the state: the stage and the step's id."""
    return f"{stage}/{step}"


def choose(seed: str, weights: Sequence[float]) -> int:
    """The index of the branch `seed` falls in, each branch taking its share of [0, 1)."""
    point = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") / 2**64
    total = sum(weights)
    running = 0.0
    for index, weight in enumerate(weights):
        running += weight / total
        if point < running:
            return index
    return len(weights) - 1  # rounding at the very top


def branch_for(state: LifecycleState, stage: str, step: str, arms: Sequence[tuple[str, float]]) -> tuple[str, bool]:
    """(branch name, whether it was kept from an earlier entry); remembers a new choice."""
    key = split_key(stage, step)
    names = [name for name, _ in arms]
    kept = state.splits.get(key)
    if kept in names:
        return kept, True
    name = names[choose(f"{state.lifecycle_id}/{key}", [weight for _, weight in arms])]
    state.splits[key] = name
    return name, False

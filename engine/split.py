"""Which branch of a `kind: split` step a customer takes: weighted, deterministic, sticky.

The choice is a stable hash (SHA-256, the same in every process and Python version; never
`hash()`, which is salted per process, nor `workflow.random`) of the lifecycle id (which
holds the customer id), the stage and the step's id, mapped onto the branches' weights. So
a replay, a restart, a continue-as-new or a second simulation gives the same branch.

It is also sticky: the branch is kept in `LifecycleState.splits`, so a customer who enters
the stage again takes the same branch even after the weights were edited (a ramp-up moves
new customers only), as long as that branch still exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from engine.state import LifecycleState


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

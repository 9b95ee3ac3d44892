"""Results computed once per loaded object (a lifecycle, a playbook, an event spec).

What the loader builds is never changed afterwards, so what is derived from it (merged event
specs, the kinds of its fields, the events a playbook waits for) can be kept for as long as
the object lives. The simulator asks for these for every step of every customer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

Result = TypeVar("Result")

KEPT = 256  # objects remembered per function: a worker holds a few lifecycle versions at most


def per_object(function: Callable[[Any], Result]) -> Callable[[Any], Result]:
    """`function(owner)`, computed once per `owner` object. The cache holds the owner, so its
    id cannot be reused by another object while the result is kept."""
    cache: dict[int, tuple[Any, Result]] = {}

    @wraps(function)
    def once(owner: Any) -> Result:
        known = cache.get(id(owner))
        if known is None or known[0] is not owner:
            if len(cache) >= KEPT:
                cache.clear()
            known = cache[id(owner)] = (owner, function(owner))
        return known[1]

    return once

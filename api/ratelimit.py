"""Requests per caller (`LIFECYCLE_API_RATE`, default 100/s): 429 with Retry-After above it.

A moving window per caller name, kept in this process (the `limits` library's memory
storage): behind a load balancer with N API instances a caller gets up to N times the rate.
Callers are told apart by their token, which is why two callers may not share one.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from api.errors import ApiError


class CallerRate:
    """`count` requests per `seconds` for each caller."""

    def __init__(self, count: int, seconds: int) -> None:
        self.item = RateLimitItemPerSecond(count, seconds)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def take(self, caller: str) -> None:
        """Count one request of `caller`, or raise 429 saying when to come back."""
        if await self.limiter.hit(self.item, caller):
            return
        reset, _ = await self.limiter.get_window_stats(self.item, caller)
        wait = max(1, math.ceil(reset - time.time()))
        raise ApiError(429, "rate_limited",
                       f"caller '{caller}' sent more than {self.item.amount} requests in "
                       f"{self.item.multiples}s; retry after {wait}s",
                       headers={"Retry-After": str(wait)}, limit=self.item.amount)

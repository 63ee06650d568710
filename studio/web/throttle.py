"""Login back-off: after a few wrong passwords, from one address or for one user name, each further
attempt waits longer (429 with Retry-After), whatever the password. A right password resets the count.

Counted: POST /login (Gradio's form) and HTTP Basic on the API. The address is the TCP peer (behind a
reverse proxy every client shares the proxy's address: the per-address count then guards the proxy).
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

USER_FREE_FAILURES = 5  # wrong passwords for one user name before the back-off starts
ADDRESS_FREE_FAILURES = 10  # from one address (several users may share it)
FIRST_WAIT, LONGEST_WAIT = 2.0, 300.0  # seconds: doubled at each failure past the free ones
FORGET_AFTER = 900.0  # a quiet key is forgotten after this many seconds
MAX_KEYS = 10_000  # the oldest keys go first: a spray of addresses cannot fill the memory


@dataclass
class Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.keys: OrderedDict[tuple[str, str], Failures] = OrderedDict()

    def retry_after(self, address: str, user: str | None) -> int:
        """Whole seconds to wait before the next attempt is heard; 0 when it may be tried now."""
        now = self.clock()
        waits = [entry.blocked_until - now for key in self._keys(address, user)
                 if (entry := self.keys.get(key)) is not None and now - entry.last <= FORGET_AFTER]
        longest = max(waits, default=0.0)
        return math.ceil(longest) if longest > 0 else 0

    def failed(self, address: str, user: str | None) -> None:
        now = self.clock()
        for key in self._keys(address, user):
            entry = self._get(key, now)
            entry.count += 1
            entry.last = now
            free = USER_FREE_FAILURES if key[0] == "user" else ADDRESS_FREE_FAILURES
            if entry.count >= free:
                entry.blocked_until = now + min(LONGEST_WAIT, FIRST_WAIT * 2 ** (entry.count - free))
            self.keys.move_to_end(key)
        while len(self.keys) > MAX_KEYS:
            self.keys.popitem(last=False)

    def succeeded(self, address: str, user: str | None) -> None:
        for key in self._keys(address, user):
            self.keys.pop(key, None)

    def _get(self, key: tuple[str, str], now: float) -> Failures:
        entry = self.keys.get(key)
        if entry is None or now - entry.last > FORGET_AFTER:
            entry = self.keys[key] = Failures()
        return entry

    @staticmethod
    def _keys(address: str, user: str | None) -> list[tuple[str, str]]:
        return [("address", address)] + ([("user", user.strip().lower())] if user else [])

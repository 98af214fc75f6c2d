"""Log-in throttling: after too many failed log-ins for one user name, or from one client
address, further attempts are refused for a while, before any password is hashed.

The counters live in this process's memory: enough for `lenstrack serve`, which runs one
process. Several server processes would each count on their own (each allowing the limits).
"""

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from server.domain.errors import TooManyAttempts, Unauthorized

# Counters kept at most; past it the least recently used go. An attacker must fail this
# many distinct log-ins (each an argon2 hash) within a window to push a lockout out early.
MAX_COUNTERS = 50_000


@dataclass(frozen=True)
class ThrottleRules:
    max_failures_per_account: int
    max_failures_per_address: int
    window_seconds: float
    lockout_seconds: float


@dataclass
class _Counter:
    failures: list[float] = field(default_factory=list)  # monotonic times, within the window
    in_flight: int = 0  # attempts being checked now: each may still fail
    locked_until: float = 0.0


@dataclass(frozen=True)
class _Key:
    field: str  # the field a refusal names: "username" or "address"
    value: str
    limit: int


def address_key(host: str | None) -> str:
    """An IPv6 host usually owns a whole /64, so that is what counts as one address."""
    if host is None:
        return ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class LoginThrottle:
    """Thread-safe; `clock` is injectable so tests move time without waiting."""

    def __init__(self, rules: ThrottleRules, clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = rules
        self.clock = clock
        self._lock = threading.Lock()
        self._counters: OrderedDict[tuple[str, str], _Counter] = OrderedDict()

    @contextmanager
    def attempt(self, username: str, host: str | None) -> Iterator[None]:
        """Refuses (TooManyAttempts) while the user name or the address is locked out or has
        as many attempts failed and in flight as it may; else runs the block. An Unauthorized
        from the block counts as a failure; success clears the user name's failures."""
        keys = (
            _Key("username", username, self.rules.max_failures_per_account),
            _Key("address", address_key(host), self.rules.max_failures_per_address),
        )
        self._reserve(keys)
        try:
            yield
        except Unauthorized:
            self._settle(keys, failed=True)
            raise
        except BaseException:
            self._settle(keys, failed=False)
            raise
        self._settle(keys, failed=False)
        with self._lock:
            self._counters.pop(("username", username), None)

    def _reserve(self, keys: tuple[_Key, ...]) -> None:
        with self._lock:
            now = self.clock()
            counters = [self._counter(key, now) for key in keys]
            for key, counter in zip(keys, counters, strict=True):
                if counter.locked_until > now:
                    raise self._refusal(key, counter.locked_until - now)
                if len(counter.failures) + counter.in_flight >= key.limit:
                    # Only attempts still being checked fill it: they settle within a second.
                    raise self._refusal(key, 1)
            for counter in counters:
                counter.in_flight += 1

    def _settle(self, keys: tuple[_Key, ...], *, failed: bool) -> None:
        with self._lock:
            now = self.clock()
            for key in keys:
                counter = self._counter(key, now)
                counter.in_flight = max(counter.in_flight - 1, 0)
                if not failed:
                    continue
                counter.failures.append(now)
                if len(counter.failures) >= key.limit:
                    counter.locked_until = now + self.rules.lockout_seconds
                    counter.failures.clear()

    def _counter(self, key: _Key, now: float) -> _Counter:
        """The key's counter, its failures past the window dropped; marked recently used."""
        counter = self._counters.setdefault((key.field, key.value), _Counter())
        self._counters.move_to_end((key.field, key.value))
        horizon = now - self.rules.window_seconds
        counter.failures = [at for at in counter.failures if at > horizon]
        while len(self._counters) > MAX_COUNTERS:
            self._counters.popitem(last=False)
        return counter

    @staticmethod
    def _refusal(key: _Key, wait_seconds: float) -> TooManyAttempts:
        retry_after = max(math.ceil(wait_seconds), 1)
        subject = "for this user name" if key.field == "username" else "from this address"
        return TooManyAttempts(
            key.field,
            f"too many failed log-ins {subject}; try again in {retry_after} s",
            retry_after,
        )

"""The Redis budget store (private: use ``crmload.budgets.RedisStore``). Needs ``crmload[redis]``.

Every operation is one Lua script, so it is atomic in Redis and reads one clock (Redis ``TIME``), whatever the
hosts' clocks say. State per budget key, in two keys that share a hash tag (one cluster slot):

- ``crmload:budget:{DIGEST}`` (hash): ``rate`` (0 = unlimited), ``tat`` (GCRA theoretical arrival time),
  ``nb`` (no slot before: the Retry-After pause), ``expect`` / ``expect_until`` (participants a rejoining
  process saw before Redis went away).
- ``crmload:budget:{DIGEST}:members`` (sorted set): participant -> last acquire (Redis time), the heartbeat.

**Fallback.** When a script fails (Redis down, unreachable, restarting) the budget switches to a local
``TokenBucket`` at 0.9 x ``rate / participants`` (participants as last seen, or the ``participants`` hint of
a store that never reached Redis), logs one WARNING, and keeps probing. Its first local slot waits for the
heartbeat window to pass, so the processes still on Redis have stopped counting this one as present before it
spends its share. While anyone's heartbeat is stale, the Redis bucket runs at ``rate x present /
participants``; one that comes back passes the count it saw before, so the first one back does not take the
whole rate while the rest still spend their local shares. Rejoining logs INFO and replays a pause or a rate
change made meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from crmload._bucket import Clock, Sleep, TokenBucket
from crmload.budgets import Budget, BudgetKey, redact_url
from crmload.errors import ConfigError

__all__ = ["RedisBudget", "RedisBudgetStore"]

log = logging.getLogger("crmload.budgets")

_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: state, members. ARGV: init_rate (0 = unlimited), burst, member, fresh_min_s, hint, ttl_ms, live_s.
_ACQUIRE = (
    _CLOCK
    + """
local rate = tonumber(redis.call('HGET', KEYS[1], 'rate'))
if rate == nil then
  rate = tonumber(ARGV[1])
  redis.call('HSET', KEYS[1], 'rate', ARGV[1])
end
local burst = tonumber(ARGV[2])
local live = tonumber(ARGV[7])
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - live)
local n = redis.call('ZCARD', KEYS[2])
local expect = tonumber(redis.call('HGET', KEYS[1], 'expect') or '0')
local expect_until = tonumber(redis.call('HGET', KEYS[1], 'expect_until') or '0')
if now >= expect_until then expect = 0 end
local hint = tonumber(ARGV[5])
if hint > 0 then
  if hint > expect then expect = hint end
  expect_until = now + live
  redis.call('HSET', KEYS[1], 'expect', expect, 'expect_until', string.format('%.6f', expect_until))
end
local total = math.max(n, expect, 1)
local fresh_s = tonumber(ARGV[4])
if rate > 0 then fresh_s = math.max(fresh_s, 4 * total / rate) end
local present = redis.call('ZCOUNT', KEYS[2], now - fresh_s, '+inf')
local share = math.min(1, present / total)
local slot = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'nb') or '0'))
if rate > 0 then
  local interval = 1 / (rate * share)
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
  slot = math.max(slot, tat - (burst - 1) * interval)
  redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', math.max(slot, tat) + interval))
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {math.floor((slot - now) * 1000000), tostring(rate), total, math.floor(fresh_s * 1000)}
"""
)

# KEYS: state. ARGV: rate, ttl_ms.
_SET_RATE = """
redis.call('HSET', KEYS[1], 'rate', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: state. ARGV: seconds, ttl_ms. Returns the microseconds the pause was extended by.
_PAUSE = (
    _CLOCK
    + """
local nb = tonumber(redis.call('HGET', KEYS[1], 'nb') or '0')
local untl = now + tonumber(ARGV[1])
if untl <= nb then return 0 end
redis.call('HSET', KEYS[1], 'nb', string.format('%.6f', untl))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return math.floor((untl - math.max(nb, now)) * 1000000)
"""
)

# KEYS: state. Returns the microseconds left of the pause (0: none).
_PEEK = (
    _CLOCK
    + """
local nb = tonumber(redis.call('HGET', KEYS[1], 'nb') or '0')
return math.floor(math.max(0, nb - now) * 1000000)
"""
)

# KEYS: state, members. ARGV: live_s. Returns rate, pause left (us), participants, expected.
_READ = (
    _CLOCK
    + """
local rate = redis.call('HGET', KEYS[1], 'rate') or ''
local nb = tonumber(redis.call('HGET', KEYS[1], 'nb') or '0')
local n = redis.call('ZCOUNT', KEYS[2], now - tonumber(ARGV[1]), '+inf')
local expect = tonumber(redis.call('HGET', KEYS[1], 'expect') or '0')
if now >= tonumber(redis.call('HGET', KEYS[1], 'expect_until') or '0') then expect = 0 end
return {rate, math.floor(math.max(0, nb - now) * 1000000), n, expect}
"""
)

#: The fallback runs each process at this fraction of its share: N schedules on N clocks reach the server with
#: their own jitter, so a window can catch one call more from each; the headroom keeps the sum under the rate.
FALLBACK_HEADROOM = 0.9

#: Our own options in the URL's query, removed before redis-py sees it.
_OWN_OPTIONS = ("participants",)


class RedisBudgetStore:
    """Budgets kept in Redis and shared by every process that opens the same key.

    Args:
        url: ``redis://[[user]:password@]host:port/db`` (or ``rediss://``, ``unix://``). ``?participants=N``
            says how many processes to expect if Redis cannot be reached from the start (default 1).
        socket_timeout_s: how long one script may take before the budget falls back (and connect timeout).
        probe_interval_s: while in fallback, how often one call tries Redis again.
        live_s: a participant whose heartbeat is older than this has left (its share is freed).
        fresh_min_s: the shortest heartbeat window in which a participant counts as present.
        ttl_s: how long an idle budget's state is kept (longer than any Retry-After pause honoured).
        recheck_s: a slot booked further ahead than this is checked against the shared pause after the wait.
        client: a ready ``redis.Redis`` (tests); the URL is then only named, never connected.
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        socket_timeout_s: float = 0.5,
        probe_interval_s: float = 0.5,
        live_s: float = 10.0,
        fresh_min_s: float = 1.0,
        ttl_s: float = 900.0,
        recheck_s: float = 0.01,
        client: Any = None,
    ) -> None:
        parts = urlsplit(url)
        own = {k: v for k, v in parse_qsl(parts.query) if k in _OWN_OPTIONS}
        rest = [(k, v) for k, v in parse_qsl(parts.query) if k not in _OWN_OPTIONS]
        try:
            self.participants = max(1, int(own.get("participants", "1")))
        except ValueError:
            raise ConfigError(f"budget store {redact_url(url)!r}: participants must be an integer") from None
        self._url = url
        self.socket_timeout_s = socket_timeout_s
        self.probe_interval_s = probe_interval_s
        self.live_s = live_s
        self.fresh_min_s = fresh_min_s
        self.recheck_s = recheck_s
        self.ttl_ms = int(ttl_s * 1000)
        if client is None:
            clean = urlunsplit(parts._replace(query=urlencode(rest)))
            try:
                client = redis.Redis.from_url(
                    clean,
                    socket_timeout=socket_timeout_s,
                    socket_connect_timeout=socket_timeout_s,
                    retry=Retry(
                        NoBackoff(), 0
                    ),  # the budget falls back itself; a retry would only stall calls
                    health_check_interval=0,
                )
            except ValueError as exc:
                raise ConfigError(f"budget store {redact_url(url)!r}: {exc}") from None
        self.client = client
        self.acquire_script = client.register_script(_ACQUIRE)
        self.set_rate_script = client.register_script(_SET_RATE)
        self.pause_script = client.register_script(_PAUSE)
        self.read_script = client.register_script(_READ)
        self.peek_script = client.register_script(_PEEK)

    def open(
        self,
        key: BudgetKey,
        *,
        rate: float | None,
        burst: int,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> Budget | None:
        """The shared budget for ``key``; it sets the shared rate to ``rate`` (the newest process's wins)."""
        return RedisBudget(self, key, rate=rate, burst=burst, clock=clock, sleep=sleep)

    def describe(self) -> str:
        return f"redis {redact_url(self._url)}"

    def __repr__(self) -> str:
        return f"RedisStore({redact_url(self._url)!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class RedisBudget:
    """One key's budget in Redis, with a conservative local fallback while Redis cannot be reached."""

    def __init__(
        self,
        store: RedisBudgetStore,
        key: BudgetKey,
        *,
        rate: float | None,
        burst: int,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self._store = store
        self._keys = [f"crmload:budget:{{{key.digest}}}", f"crmload:budget:{{{key.digest}}}:members"]
        self._member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._participants = store.participants
        self._fresh_s = store.fresh_min_s
        self._fallback: TokenBucket | None = None
        self._next_probe = -math.inf
        self._last_slot = -math.inf
        self._paused_until = -math.inf  # local clock: every pause this process has asked for
        self._rejoin_hint = 0
        self._rate_pending = False
        self._counts = {"fallbacks": 0, "rejoins": 0, "errors": 0}
        if rate is not None:
            self.set_rate(rate)

    # --- the Budget protocol -----------------------------------------------------------------------------

    @property
    def rate(self) -> float:
        return math.inf if self._rate is None else self._rate

    @property
    def burst(self) -> int:
        return self._burst

    #: reserve() sleeps until the slot itself (the limiter must not sleep again): a slot booked ahead is
    #: checked against the shared pause after the sleep, so no call leaves during another process's pause.
    waits_in_reserve = True

    def reserve(self) -> tuple[float, float]:
        start = self._clock()
        waited = 0.0
        for attempt in range(2):
            now, slot, shared = self._book()
            wait = slot - now
            if wait > 0:
                self._sleep(wait)
                waited += wait
            if not shared or wait <= self._store.recheck_s or attempt:
                break
            # Booked ahead: another process may have met a Retry-After while this one slept.
            try:
                left = self._store.peek_script(keys=self._keys[:1]) / 1e6
            except redis.RedisError as exc:
                self._enter_fallback(exc)
                continue  # book again, from the local share
            if left <= 0:
                break
            self._sleep(left)  # the slot fell inside the pause: wait it out, then book a fresh one
            waited += left
        return start, start + waited

    def _book(self) -> tuple[float, float, bool]:
        fallback = self._fallback
        if fallback is None:
            return self._reserve_shared()
        # One thread at a time probes Redis, at most once per probe interval; the others use the local share.
        if self._clock() < self._next_probe or not self._probe_lock.acquire(blocking=False):
            return (*fallback.reserve(), False)
        try:
            self._next_probe = self._clock() + self._store.probe_interval_s
            return self._reserve_shared()
        finally:
            self._probe_lock.release()

    def set_rate(self, rate: float) -> None:
        self._rate = rate
        if self._fallback is None:
            try:
                self._store.set_rate_script(keys=self._keys[:1], args=[repr(float(rate)), self._store.ttl_ms])
                return
            except redis.RedisError as exc:
                self._enter_fallback(exc)
        with self._lock:
            self._rate_pending = True
            if self._fallback is not None:
                self._fallback.set_rate(FALLBACK_HEADROOM * rate / self._participants)

    def pause_until(self, instant: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, instant)
        if self._fallback is None:
            try:
                seconds = instant - self._clock()
                if seconds > 0:
                    self._store.pause_script(keys=self._keys[:1], args=[repr(seconds), self._store.ttl_ms])
                return
            except redis.RedisError as exc:
                self._enter_fallback(exc)
        fallback = self._fallback
        if fallback is not None:
            fallback.pause_until(instant)

    # --- inspection ----------------------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        """The shared state now (one round trip): rate, pause left, participants present, expected."""
        rate, pause_us, present, expect = self._store.read_script(keys=self._keys, args=[self._store.live_s])
        text = rate.decode() if isinstance(rate, bytes) else str(rate)
        value = float(text) if text else None
        return {
            "rate": None if value == 0 else value,
            "paused_s": int(pause_us) / 1e6,
            "participants": int(present),
            "expected": int(expect),
        }

    def shared_stats(self) -> dict[str, Any]:
        """Counters for the run summary (no round trip)."""
        with self._lock:
            return {
                "budget_shared": True,
                "budget_participants": self._participants,
                "budget_fallbacks": self._counts["fallbacks"],
                "budget_rejoins": self._counts["rejoins"],
                "budget_store_errors": self._counts["errors"],
                "budget_in_fallback": self._fallback is not None,
            }

    def close(self) -> None:
        """Leave the budget: the others stop counting this process at once instead of after ``live_s``."""
        with contextlib.suppress(redis.RedisError):  # else it ages out of the heartbeat set
            self._store.client.zrem(self._keys[1], self._member)

    # --- internals -----------------------------------------------------------------------------------------

    def _reserve_shared(self) -> tuple[float, float, bool]:
        hint = self._rejoin_hint
        init = 0.0 if self._rate is None else self._rate
        try:
            wait_us, rate, total, fresh_ms = self._store.acquire_script(
                keys=self._keys,
                args=[
                    repr(init),
                    self._burst,
                    self._member,
                    repr(self._store.fresh_min_s),
                    hint,
                    self._store.ttl_ms,
                    repr(self._store.live_s),
                ],
            )
        except redis.RedisError as exc:
            fallback = self._enter_fallback(exc)
            return (*fallback.reserve(), False)
        now = self._clock()
        slot = now + int(wait_us) / 1e6
        shared_rate = float(rate.decode() if isinstance(rate, bytes) else rate)
        with self._lock:
            if not self._rate_pending:
                self._rate = None if shared_rate == 0 else shared_rate
            self._participants = int(total)
            self._fresh_s = int(fresh_ms) / 1000
            self._last_slot = max(self._last_slot, slot)
            rejoined = self._fallback is not None
            self._fallback = None
            self._rejoin_hint = 0
            if rejoined:
                self._counts["rejoins"] += 1
        if rejoined:
            log.info(
                "budget store %s is back: sharing the budget again (%d participants)",
                self._store.describe(),
                int(total),
            )
            self._replay()
        return now, slot, True

    def _replay(self) -> None:
        """After a rejoin, send what changed while Redis was away: a newer rate, a pause still running."""
        if self._rate_pending and self._rate is not None:
            self._rate_pending = False
            self.set_rate(self._rate)
        if self._paused_until > self._clock():
            self.pause_until(self._paused_until)

    def _enter_fallback(self, exc: Exception) -> TokenBucket:
        with self._lock:
            self._counts["errors"] += 1
            if self._fallback is not None:
                log.debug("budget store %s still unreachable: %s", self._store.describe(), exc)
                return self._fallback
            now = self._clock()
            n = max(1, self._participants)
            share = None if self._rate is None else FALLBACK_HEADROOM * self._rate / n
            fallback = TokenBucket(share if share is not None else 1e12, 1, self._clock, self._sleep)
            # Spend nothing until the others' heartbeat window has passed (they then stop counting this
            # process as present and slow down), nor before the shared schedule would have given a next slot.
            start = now
            if share is not None:
                start = max(now + self._fresh_s, self._last_slot + 1 / share)
            fallback.pause_until(max(start, self._paused_until))
            self._fallback = fallback
            self._rejoin_hint = n
            self._next_probe = now + self._store.probe_interval_s
            self._counts["fallbacks"] += 1
        log.warning(
            "budget store %s unreachable (%s): using a local share of the budget, %s over %d participants,"
            " until it is back",
            self._store.describe(),
            type(exc).__name__,
            "no rate limit" if share is None else f"{share:.4g}/s",
            n,
        )
        return fallback

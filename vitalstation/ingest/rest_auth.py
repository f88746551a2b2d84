"""Who is calling the REST receiver: API keys (cached), per-key rate limits, the client address.

The keys themselves live in the store (``storage.keys``), which this layer may not import: the
receiver is handed a :class:`KeyDirectory` (the store's ``KeyStore`` satisfies it) and only
relies on the shapes below.

Key cache: a verified key (or a refused one) is remembered for ``ttl_s`` seconds (default 5),
keyed by a keyed BLAKE2b digest (a MAC) of the presented key under a random key drawn by each
cache (never the key itself, nor an unkeyed digest of it; in memory only, gone with the
process), so that a busy device costs one database query per TTL, not per request.
Consequence, stated: **a revoked key, a key of a device just retired, or a device just
(un)assigned takes effect within the TTL** on a running station; an expiry takes effect at
once (checked on every request against the cached expiry).
"""

from __future__ import annotations

import ipaddress
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from hashlib import blake2b
from typing import Protocol

from vitalstation.domain.clock import Clock, utc_now

DEFAULT_KEY_CACHE_TTL_S = 5.0
# Verified and refused keys remembered at most; past it the cache is emptied and refilled.
KEY_CACHE_ENTRIES = 10_000

_PREFIX_RE = re.compile(r"^vs_[A-Za-z0-9]{8}")


class KeyGrant(Protocol):
    """What a verified key allows (``storage.keys.KeyGrant``)."""

    @property
    def prefix(self) -> str: ...
    @property
    def device_id(self) -> str: ...
    @property
    def device_status(self) -> str: ...
    @property
    def assigned(self) -> bool: ...
    @property
    def can_write_vitals(self) -> bool: ...
    @property
    def expires_at(self) -> datetime | None: ...


class DeviceStatus(Protocol):
    """A device's self-check (``storage.keys.DeviceStatusInfo``)."""

    @property
    def device_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def device_type(self) -> str: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def patient_assigned(self) -> bool: ...
    @property
    def patient_id(self) -> str | None: ...
    @property
    def last_reading(self) -> datetime | None: ...


class KeyDirectory(Protocol):
    """Key verification and device status, implemented by ``storage.keys.KeyStore``."""

    def verify(self, key: str, *, now: datetime) -> KeyGrant | None:
        """The grant of a valid key; None for any invalid one (same cost either way)."""
        ...

    def device_status(self, device_id: str, *, now: datetime) -> DeviceStatus | None:
        """The device's status, or None if it is not registered."""
        ...


def presented_prefix(key: str) -> str | None:
    """The public prefix of what a client presented, for the activity log (never the secret)."""
    match = _PREFIX_RE.match(key)
    return match.group(0) if match else None


class KeyCache:
    """:meth:`KeyDirectory.verify` remembered for ``ttl_s`` seconds. Thread-safe."""

    def __init__(
        self,
        directory: KeyDirectory,
        *,
        ttl_s: float = DEFAULT_KEY_CACHE_TTL_S,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = KEY_CACHE_ENTRIES,
    ) -> None:
        self._directory = directory
        self._ttl_s = ttl_s
        self._clock = clock
        self._monotonic = monotonic
        self._max_entries = max_entries
        self._entries: dict[bytes, tuple[float, KeyGrant | None]] = {}
        self._cache_key = secrets.token_bytes(32)  # this cache's own: never stored anywhere
        self._lock = threading.Lock()
        self.lookups = 0  # database verifications made (cache misses)

    def verify(self, key: str) -> KeyGrant | None:
        """The key's grant, from the cache when fresh; raises what the directory raises."""
        digest = self._digest(key)
        now_s = self._monotonic()
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > now_s:
            grant = entry[1]
        else:
            grant = self._directory.verify(key, now=self._clock())
            with self._lock:
                self.lookups += 1
                if len(self._entries) >= self._max_entries:
                    self._entries = {d: e for d, e in self._entries.items() if e[0] > now_s}
                    if len(self._entries) >= self._max_entries:
                        self._entries = {}
                self._entries[digest] = (now_s + self._ttl_s, grant)
        if grant is not None and grant.expires_at is not None and grant.expires_at <= self._clock():
            return None
        return grant

    def cached(self, key: str) -> tuple[bool, KeyGrant | None]:
        """``(True, grant)`` when the cache answers ``key`` (as :meth:`verify` would), else
        ``(False, None)``: the caller then runs :meth:`verify` where a query may block.

        One keyed hash per request (asking whether the cache knows the key, then verifying it,
        hashed it twice: ~10 µs of a request's ~110 µs on the receiver's thread).
        """
        entry = self._entries.get(self._digest(key))
        if entry is None or entry[0] <= self._monotonic():
            return False, None
        grant = entry[1]
        if grant is not None and grant.expires_at is not None and grant.expires_at <= self._clock():
            return True, None
        return True, grant

    def _digest(self, key: str) -> bytes:
        # Keyed BLAKE2b (RFC 7693's MAC mode) rather than HMAC-SHA256: OpenSSL's HMAC releases
        # the GIL for every call, so each request handed the GIL to the pipeline thread and
        # waited up to a switch interval for it back; hashlib's BLAKE2 keeps it for short input.
        return blake2b(key.encode("utf-8", "surrogatepass"), key=self._cache_key,
                       digest_size=32).digest()

    def clear(self) -> None:
        """Forget every cached verification (the next request of each key asks the store)."""
        with self._lock:
            self._entries = {}


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to ``per_minute``.

    ``per_minute`` 0 means no limit. In memory, per station: a key used against two stations
    sharing one database gets the limit at each.
    """

    def __init__(
        self, per_minute: int, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> int | None:
        """None when ``key`` may make a request now (and it is counted), else the seconds to
        wait (Retry-After, at least 1)."""
        if self.per_minute <= 0:
            return None
        now = self._monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self._rate))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.5``, ``10.0.0.0/24``, ``::1`` → networks (settings checked them already)."""
    return tuple(ipaddress.ip_network(text.strip(), strict=False) for text in texts)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddress:
    """The client's address: the peer, or ``X-Forwarded-For`` when the peer is a trusted proxy.

    The seed took the first X-Forwarded-For entry from anybody, so any client could write any
    address into the audit trail. Here the header is read only when the connection comes from
    a configured proxy, and then from the right: the first address that is not itself a
    trusted proxy is the client.
    """

    def __init__(self, trusted: Iterable[str]) -> None:
        self._trusted = parse_networks(trusted)
        # Whether any proxy is trusted: when none is, the client is the peer, whatever the
        # request's X-Forwarded-For says (the receiver then does not even read the header).
        self.trusted = bool(self._trusted)

    def _is_trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == net.version and address in net for net in self._trusted)

    def resolve(self, peer: str, forwarded_for: list[str] | None) -> str:
        """The client address to log for a connection from ``peer``."""
        if not self._trusted or not forwarded_for:
            return peer
        address = _address(peer)
        if address is None or not self._is_trusted(address):
            return peer
        hops = [hop for header in forwarded_for for hop in header.split(",")]
        client = str(address)
        for hop in reversed(hops):
            parsed = _address(hop)
            if parsed is None:
                break  # garbage from beyond the last trusted proxy: stop believing the header
            client = str(parsed)
            if not self._is_trusted(parsed):
                break
        return client

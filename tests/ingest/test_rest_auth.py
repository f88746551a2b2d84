"""The REST receiver's key cache, rate limiter and client address, without a network."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vitalstation.domain.clock import FakeClock
from vitalstation.ingest.rest_auth import ClientAddress, KeyCache, RateLimiter, presented_prefix

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Grant:
    prefix: str = "vs_AAAAAAAA"
    device_id: str = "DEV001"
    device_status: str = "active"
    assigned: bool = True
    can_write_vitals: bool = True
    expires_at: datetime | None = None


class Directory:
    def __init__(self, grants: dict[str, Grant]) -> None:
        self.grants = grants
        self.calls = 0

    def verify(self, key: str, *, now: datetime):
        self.calls += 1
        return self.grants.get(key)

    def device_status(self, device_id: str, *, now: datetime):
        return None


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_verified_and_refused_keys_are_cached_for_the_ttl() -> None:
    directory = Directory({"good": Grant()})
    ticker = Ticker()
    cache = KeyCache(directory, ttl_s=5.0, monotonic=ticker, clock=FakeClock(T0))
    assert cache.verify("good") == Grant()
    assert cache.verify("bad") is None
    for _ in range(10):
        cache.verify("good")
        cache.verify("bad")
    assert directory.calls == 2
    del directory.grants["good"]  # revoked in the database
    ticker.now += 4.9
    assert cache.verify("good") == Grant()  # still within the TTL
    ticker.now += 0.2
    assert cache.verify("good") is None  # the revocation is seen
    assert directory.calls == 3


def test_an_expiry_is_applied_at_once_even_from_the_cache() -> None:
    clock = FakeClock(T0)
    directory = Directory({"k": Grant(expires_at=T0 + timedelta(seconds=1))})
    cache = KeyCache(directory, ttl_s=60.0, clock=clock)
    assert cache.verify("k") is not None
    clock.advance(1)
    assert cache.verify("k") is None
    assert directory.calls == 1


def test_cached_answers_what_verify_would_without_the_directory() -> None:
    clock = FakeClock(T0)
    ticker = Ticker()
    directory = Directory({"k": Grant(expires_at=T0 + timedelta(seconds=10))})
    cache = KeyCache(directory, ttl_s=5.0, clock=clock, monotonic=ticker)
    assert cache.cached("k") == (False, None) and cache.cached("bad") == (False, None)
    cache.verify("k")
    cache.verify("bad")
    assert cache.cached("k") == (True, directory.grants["k"])
    assert cache.cached("bad") == (True, None)  # a refusal is cached too
    clock.advance(10)
    assert cache.cached("k") == (True, None)  # expired: refused from the cache
    ticker.now += 5.0
    assert cache.cached("bad") == (False, None)  # past the TTL: the directory is asked again
    assert directory.calls == 2


def test_the_cache_is_bounded() -> None:
    directory = Directory({})
    cache = KeyCache(directory, ttl_s=60.0, max_entries=10)
    for n in range(100):
        cache.verify(f"random-{n}")
    assert len(cache._entries) <= 10


def test_the_cache_is_keyed_by_a_keyed_digest_of_its_own_never_the_key_or_its_sha256(
) -> None:
    import hashlib

    key = "vs_AAAAAAAA_" + "k" * 43
    first, second = KeyCache(Directory({key: Grant()})), KeyCache(Directory({key: Grant()}))
    assert first.verify(key) is not None and second.verify(key) is not None
    assert first.cached(key) == (True, Grant()) and second.cached(key) == (True, Grant())
    (a,), (b,) = first._entries, second._entries
    assert a != b  # each cache draws its own key: nothing to compare across processes
    assert a != hashlib.sha256(key.encode()).digest() and key.encode() not in (a, b)
    assert len(a) == 32


def test_rate_limit_is_a_token_bucket_per_key() -> None:
    ticker = Ticker()
    limiter = RateLimiter(60, monotonic=ticker)  # one a second, bursts of 60
    assert [limiter.check("a") for _ in range(60)] == [None] * 60
    assert limiter.check("a") == 1
    assert limiter.check("b") is None
    ticker.now += 1.0
    assert limiter.check("a") is None
    assert limiter.check("a") == 1
    slow = RateLimiter(2, monotonic=ticker)
    assert slow.check("a") is None and slow.check("a") is None
    assert slow.check("a") == 30
    assert RateLimiter(0).check("a") is None  # 0: no limit


def test_forwarded_for_only_from_trusted_proxies() -> None:
    xff = ["198.51.100.9, 203.0.113.7"]
    assert ClientAddress([]).resolve("10.0.0.5", xff) == "10.0.0.5"
    proxies = ClientAddress(["10.0.0.0/24", "::1"])
    assert proxies.resolve("10.0.0.5", xff) == "203.0.113.7"  # the hop the proxy saw
    assert proxies.resolve("10.0.0.5", ["203.0.113.7, 10.0.0.9"]) == "203.0.113.7"
    assert proxies.resolve("10.0.1.5", xff) == "10.0.1.5"  # not a trusted proxy
    assert proxies.resolve("::1", ["[2001:db8::1]:443"]) == "2001:db8::1"
    assert proxies.resolve("::ffff:10.0.0.5", ["192.0.2.1"]) == "192.0.2.1"
    assert proxies.resolve("10.0.0.5", ["not-an-ip"]) == "10.0.0.5"
    assert proxies.resolve("10.0.0.5", None) == "10.0.0.5"


def test_only_the_public_prefix_of_a_presented_key_is_kept() -> None:
    assert presented_prefix("vs_AbCd1234_secretsecret") == "vs_AbCd1234"
    assert presented_prefix("vs_AbC") is None
    assert presented_prefix("secretsecretsecret") is None

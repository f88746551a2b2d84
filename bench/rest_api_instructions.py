"""The REST endpoints' instructions per request, on one thread, with requests that repeat exactly.

``bench/rest_cpu.py --part api`` times ``RestApi.handle`` against the real pipeline; on a busy
2-core machine its figure moves by a third from run to run. This one counts instructions with
valgrind's callgrind instead: ``RestApi.handle`` for fixed requests (the bodies
``bench/rest.py`` sends: single two-vital readings, or batches of 500 one-vital readings), 32 in
flight on one event loop, with a key directory that answers from memory (every key cached
after the first request) and a pipeline stub that stores nothing and resolves each submission
at once (one ``ReadingResult`` per reading, as the store makes them). So it counts the
receiver's own work per request: headers, key, rate, body decoding and parsing, the hand-off,
the answer, the activity row; not HTTP (``bench/rest_cpu.py --part http``) and not the
pipeline thread (``bench/rest_pipeline.py``). Only the requests' handling is counted (the
requests are built first, outside the counted call); the figure is the difference between
``--small`` and ``--large`` requests. Compare two versions with ``--tree``.

    python bench/rest_api_instructions.py                      # single readings
    python bench/rest_api_instructions.py --shape batch
    python bench/rest_api_instructions.py --tree /tmp/old-checkout
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from alarms_instructions import callgrind_instructions  # noqa: E402 - a sibling script

_CHILD = """
import asyncio, json, operator, sys, threading
from datetime import UTC, datetime, timedelta
shape, count = sys.argv[1], int(sys.argv[2])
from vitalstation.ingest.rest import _Headers
from vitalstation.ingest.rest_api import RestApi
from vitalstation.ingest.rest_auth import ClientAddress, KeyCache, RateLimiter
from vitalstation.pipeline.types import Outcome, ReadingResult
from vitalstation.storage.keys import KeyGrant

base = datetime(2026, 11, 1, tzinfo=UTC)
def stamp(ms):
    at = base + timedelta(milliseconds=ms)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
grants = {f"vs_AAAA{i:04d}_" + "A" * 43: KeyGrant(f"vs_AAAA{i:04d}", f"BENCH_{i:03d}", "active",
          True, True, False, None) for i in range(64)}
class Keys:
    def verify(self, key, *, now): return grants.get(key)
    def device_status(self, device_id, *, now): return None
class Pipe:
    record = 0
    def submit(self, readings, on_done=None, timeout=0.0):
        results = []
        for reading in readings:
            Pipe.record += 1
            results.append(ReadingResult(
                Outcome.STORED, record_ids={m.kind: Pipe.record for m in reading.measurements},
                new_kinds=reading.kinds()))
        on_done(results)
rows, lock = [], threading.Lock()
def log(entry):
    with lock:
        rows.append(entry)
api = RestApi(Pipe(), KeyCache(Keys(), ttl_s=1e9), Keys(), limiter=RateLimiter(0),
              addresses=ClientAddress(()), activity=log, max_body_bytes=1 << 22,
              max_batch_readings=1000)
keys = list(grants.items())
requests = []
for n in range(count):
    key, grant = keys[n % len(keys)]
    if shape == "single":
        body = {"device_id": grant.device_id, "timestamp": stamp(n), "heart_rate": 60 + n % 40,
                "oxygen_saturation": 90 + n % 10}
        path = "/api/iot/vitals/"
    else:
        body = {"device_id": grant.device_id, "readings": [
            {"timestamp": stamp(n * 500 + i), "heart_rate": 60 + i % 40} for i in range(500)]}
        path = "/api/iot/vitals/batch/"
    raw = json.dumps(body).encode()
    requests.append((path, _Headers({
        "host": ["127.0.0.1"], "authorization": [f"Bearer {key}"],
        "content-type": ["application/json"], "content-length": [str(len(raw))]}), raw))
class Body:
    __slots__ = ("raw",)
    def __init__(self, raw): self.raw = raw
    async def read(self, length): return self.raw
async def run():
    waiting = list(reversed(requests))
    async def worker():
        while waiting:
            path, headers, raw = waiting.pop()
            response = await api.handle("POST", path, headers, "127.0.0.1", Body(raw))
            assert response.status == 200, response.body
    await asyncio.gather(*(worker() for _ in range(32)))
for key in grants:
    api._keys.verify(key)
loop = asyncio.new_event_loop()
operator.call(loop.run_until_complete, run())
assert len(rows) == count
"""


def count(tree: Path, shape: str, requests: int) -> int:
    """Instructions callgrind counts inside ``operator.call`` (the requests' handling)."""
    return callgrind_instructions(
        _CHILD, [shape, str(requests)], {"PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"},
        f"{shape}, {requests}",
        valgrind_options=("--collect-atstart=no", "--toggle-collect=_operator_call"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("single", "batch"), default="single")
    parser.add_argument("--small", type=int, default=0, help="default: 500 single, 10 batches")
    parser.add_argument("--large", type=int, default=0, help="default: 1,500 single, 30 batches")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout to measure (default: this one)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    small = args.small or (500 if args.shape == "single" else 10)
    large = args.large or (1500 if args.shape == "single" else 30)
    tree = args.tree.resolve()
    per = (count(tree, args.shape, large) - count(tree, args.shape, small)) / (large - small)
    unit = "request" if args.shape == "single" else "batch of 500 readings"
    print(f"{tree}: RestApi.handle, {args.shape}: {per:,.0f} instructions per {unit}"
          + (f" ({per / 500:,.0f} per reading)" if args.shape == "batch" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

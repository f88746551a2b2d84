"""CPU time per request of the REST receiver, by thread: the figure machine load changes least.

Wall-clock rates on a shared 2-core machine move by ±20 % run to run; the server's own CPU per
request does not. This starts the receiver in this process (as ``bench/rest.py`` does), loads it
with ``wrk`` (single readings, 32 keep-alive connections) or with Python clients in another
process (batches), and reads each server thread's CPU clock before and after:

    python bench/rest_cpu.py                     # single readings, alarm engine subscribed
    python bench/rest_cpu.py --no-alarms         # the same without the alarm engine
    python bench/rest_cpu.py --batch 500         # batches of 500 readings per POST
    python bench/rest_cpu.py --profile pipeline  # CPU profile of the pipeline thread (top 40)

The receiver thread's CPU splits into the HTTP layer (``ingest/rest.py``: the event loop,
sockets, framing, answers) and the endpoints (``ingest/rest_api.py``: key, rate, parsing,
hand-off to the pipeline, activity row). Each can be measured alone:

    python bench/rest_cpu.py --part http   # the HTTP server, wrk, an endpoint that does nothing
    python bench/rest_cpu.py --part api    # RestApi.handle for the same requests, no HTTP
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rest  # noqa: E402 - the sibling bench script

_PROFILES: dict[str, cProfile.Profile] = {}


def thread_cpu() -> dict[str, float]:
    """CPU seconds of every live thread of this process, by thread name."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            out[thread.name] = out.get(thread.name, 0.0) + time.clock_gettime(clock)
        except OSError:
            continue
    return out


def thread_user_sys() -> dict[str, tuple[float, float]]:
    """User and system CPU seconds of every live thread, by name (/proc; clock ticks)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[float, float]] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        user, system = out.get(thread.name, (0.0, 0.0))
        out[thread.name] = (user + int(fields[11]) / tick, system + int(fields[12]) / tick)
    return out


def profile_thread(name: str) -> None:
    """Wrap the run() of threads named ``name`` in a cProfile."""
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        if self.name == name:  # the last such thread is the one measured
            profile = _PROFILES[name] = cProfile.Profile(time.thread_time)  # CPU, not wall
            profile.enable()
            try:
                original(self)
            finally:
                profile.disable()
        else:
            original(self)

    threading.Thread.run = run  # type: ignore[method-assign]


class StubApi:
    """Behind the HTTP layer, none of the station's work: reads the body, waits one loop turn
    on a future (as a request waits for its commit), answers 200."""

    async def handle(self, method, target, headers, peer, body):
        from vitalstation.ingest.rest_api import Response

        length = int(headers.get("content-length") or 0)
        raw = await body.read(length) if length else b""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(future.set_result, None)
        await future
        return Response(200, b'{"success":true,"bytes":%d}' % len(raw))


def http_part(args: argparse.Namespace, base: int) -> int:
    """The receiver's HTTP server alone (StubApi behind it), loaded by wrk."""
    from vitalstation.ingest import rest as receiver

    server = receiver._Server(("127.0.0.1", 0), StubApi(), None, 512, 30.0)
    server.start()
    devices = [(f"BENCH_{i:03d}", "vs_AAAAAAAA_" + "A" * 43) for i in range(rest.DEVICES)]
    cpu_before = thread_cpu()
    result = rest.run_wrk(server.server_address[1], devices, args.seconds, args.connections, base)
    spent = thread_cpu()["vitalstation-rest"] - cpu_before["vitalstation-rest"]
    server.stop(time.monotonic() + 5)
    requests = result["requests"] - result["non2xx"]
    print(f"HTTP layer alone (endpoint does nothing): {requests:,.0f} requests, "
          f"{result['rate']:,.0f}/s; receiver thread {spent / max(1, requests) * 1e6:.1f} µs "
          "per request")
    return 0


class _Body:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    async def read(self, length: int) -> bytes:
        return self.raw


def api_part(args: argparse.Namespace, base: int) -> int:
    """RestApi.handle alone: single readings, 32 at a time as tasks on this thread's loop,
    committed by the real pipeline; this thread's CPU per request (tasks' steps included, the
    making of each request's body and headers not)."""
    from vitalstation.ingest.rest import _Headers

    async def load(api, devices) -> tuple[float, int]:
        deadline = time.monotonic() + args.seconds
        done = 0
        making = 0.0

        async def worker(index: int) -> None:
            nonlocal done, making
            n = 0
            while time.monotonic() < deadline:
                n += 1
                began = time.thread_time()
                device, key = devices[(index + n * 7) % len(devices)]
                raw = json.dumps({
                    "device_id": device, "timestamp": rest.stamp(base, index * 10**6 + n),
                    "heart_rate": 60 + n % 40, "oxygen_saturation": 90 + n % 10,
                }, separators=(",", ":")).encode()
                headers = _Headers({
                    "host": ["127.0.0.1"], "authorization": [f"Bearer {key}"],
                    "content-type": ["application/json"], "content-length": [str(len(raw))],
                })
                making += time.thread_time() - began
                response = await api.handle("POST", "/api/iot/vitals/", headers, "127.0.0.1",
                                            _Body(raw))
                assert response.status == 200, response.body
                done += 1

        started = time.thread_time()
        await asyncio.gather(*(worker(i) for i in range(args.connections)))
        return time.thread_time() - started - making, done

    with tempfile.TemporaryDirectory(prefix="vs-bench-restapi-") as tmp:
        store, pipeline, keys, rest_input, devices = rest.open_station(
            Path(tmp), "station.db", alarms=not args.no_alarms)
        if args.no_store:
            rest.close_station(store, pipeline, rest_input)
            pipeline, rest_input = rest.start_null_station(keys)
        spent, requests = asyncio.run(load(rest_input.api, devices))
        if args.no_store:
            rest_input.stop(10)
            pipeline.stop(10)
        else:
            rest.close_station(store, pipeline, rest_input)
    print(f"endpoints alone (RestApi.handle, no HTTP, store "
          f"{'no-op' if args.no_store else 'sqlite'}): {requests:,} requests; "
          f"{spent / max(1, requests) * 1e6:.1f} µs of this thread's CPU per request")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=0, help="readings per batch POST (0: single)")
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--no-alarms", action="store_true")
    parser.add_argument("--no-store", action="store_true", help="the no-op writer")
    parser.add_argument("--switch-interval", type=float, default=0.0, help="seconds (0: default)")
    parser.add_argument("--profile", choices=["pipeline", "rest", ""], default="")
    parser.add_argument("--profile-out", default="", help="also save the profile (pstats) here")
    parser.add_argument("--part", choices=["station", "http", "api"], default="station",
                        help="the whole receiver, or its HTTP layer or its endpoints alone")
    args = parser.parse_args(argv)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.profile:
        profile_thread({"pipeline": "vitalstation-pipeline", "rest": "vitalstation-rest"}[
            args.profile])
    base = int((datetime.now(UTC) - timedelta(days=20)).timestamp())
    if args.part == "http":
        return http_part(args, base)
    if args.part == "api":
        return api_part(args, base)
    with tempfile.TemporaryDirectory(prefix="vs-bench-restcpu-") as tmp:
        store, pipeline, keys, rest_input, devices = rest.open_station(
            Path(tmp), "station.db", alarms=not args.no_alarms)
        if args.no_store:
            rest.close_station(store, pipeline, rest_input)
            pipeline, rest_input = rest.start_null_station(keys)
        load_before = os.getloadavg()[0]
        cpu_before = thread_cpu()
        split_before = thread_user_sys()
        process_before = time.process_time()
        if args.batch:
            result = rest.run_python(rest_input.port, devices, args.seconds,
                                     args.batch_connections, base, batch=args.batch)
            units = result["readings"]
        else:
            result = rest.run_wrk(rest_input.port, devices, args.seconds, args.connections, base)
            units = result["requests"] - result["non2xx"]
        process_cpu = time.process_time() - process_before
        cpu_after = thread_cpu()
        split_after = thread_user_sys()
        stats = pipeline.stats()
        if args.no_store:
            rest_input.stop(10)
            pipeline.stop(10)
        else:
            rest.close_station(store, pipeline, rest_input)
    unit = "reading" if args.batch else "request"
    print(f"load average {load_before:.2f} → {os.getloadavg()[0]:.2f}; "
          f"{'batch ' + str(args.batch) if args.batch else 'single readings'}, "
          f"alarms {'off' if args.no_alarms else 'on'}, "
          f"store {'no-op' if args.no_store else 'sqlite'}, "
          f"switch interval {sys.getswitchinterval() * 1e3:g} ms")
    rate = result["readings_rate"] if args.batch else result["rate"]
    print(f"{units:,.0f} {unit}s ok, {result['non2xx']:.0f} not 200; {rate:,.0f} {unit}s/s "
          f"(p99 {result['p99_ms']:.1f} ms); mean batch "
          f"{stats.submitted / max(1, stats.batches):.1f} readings")
    print(f"process CPU: {process_cpu / max(1, units) * 1e6:.1f} µs per {unit}")
    for name in sorted(cpu_after):
        spent = cpu_after[name] - cpu_before.get(name, 0.0)
        if spent > 0.01:
            user, system = (after - split_before.get(name, (0.0, 0.0))[i] for i, after in
                            enumerate(split_after.get(name, (0.0, 0.0))))
            per = 1e6 / max(1, units)
            print(f"  {name:32s} {spent * per:8.1f} µs per {unit} "
                  f"(user {user * per:6.1f}, system {system * per:6.1f})")
    for name, profile in _PROFILES.items():
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats("tottime").print_stats(40)
        if args.profile_out:
            stats.dump_stats(args.profile_out)
        print(f"--- cProfile of {name} (tottime) ---")
        print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())

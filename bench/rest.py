"""The REST receiver under load, against a bare JSON handler, in the same run.

1. Bare: an aiohttp server (the issue's baseline; ``pip install -e .[bench]``) whose handler
   only reads the body and parses the JSON: what a Python HTTP server does at all on this
   machine, in this process, before any of the station's work.
2. Station: the same single-reading POSTs (``/api/iot/vitals/``, Bearer key, 2 vitals each,
   every reading new) through the receiver: key check, rate limiter, strict parsing, the
   pipeline, a committed SQLite transaction, the activity log. 32 keep-alive connections.
   Then the same with the database replaced by a no-op writer, to show what the storage costs.
3. Batch: ``/api/iot/vitals/batch/`` with 500 readings per POST: readings stored per second.
4. Key verification: the receiver's cost per request (cached SHA-256 check, and the database
   lookup a cache miss costs) against the seed's PBKDF2-SHA256 with 600,000 iterations.

The load comes from ``wrk`` when installed (``apt-get install wrk``), else from a Python
load generator (http.client in threads) in another process, which reads 0.6–0.7× what wrk
reads (PLATFORM.md). The server runs in this process, as in the station.

    python bench/rest.py                    # ~50 s
    python bench/rest.py --seconds 20 --loadgen python
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from station_parts import with_alarms  # noqa: E402 - a sibling script, not a package

DEVICES = 64
ADMIN = "bench"
START = datetime(2026, 1, 1, tzinfo=UTC)


# --- load generators ---------------------------------------------------------------------------

WRK_SCRIPT = """
local devices = %(devices)s
local base = %(base)d
local created = 0
function setup(thread)
  thread:set("tid", created)
  created = created + 1
end
local n = 0
function request()
  n = n + 1
  local d = devices[(n %% #devices) + 1]
  local ms = tid * 100000000 + n
  local ts = os.date("!%%Y-%%m-%%dT%%H:%%M:%%S", base + math.floor(ms / 1000))
    .. string.format(".%%03dZ", ms %% 1000)
  local body = '{"device_id":"' .. d[1] .. '","timestamp":"' .. ts
    .. '","heart_rate":' .. (60 + n %% 40) .. ',"oxygen_saturation":' .. (90 + n %% 10) .. '}'
  return wrk.format("POST", "/api/iot/vitals/", {
    ["Authorization"] = "Bearer " .. d[2],
    ["Content-Type"] = "application/json",
  }, body)
end
"""


def run_wrk(port: int, devices: list[tuple[str, str]], seconds: float, connections: int,
            base: int) -> dict[str, float]:
    table = "{" + ",".join(f'{{"{d}","{k}"}}' for d, k in devices) + "}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"devices": table, "base": base})
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script.name,
             f"http://127.0.0.1:{port}/api/iot/vitals/"],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    requests = float(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)] if p99 else 0
    return {
        "requests": requests, "rate": rate, "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "p99_ms": p99_ms, "socket_errors": errors.group(1) if errors else "",
    }


def loadgen_main(config: dict) -> None:
    """Child process: keep-alive connections in threads posting until the deadline."""
    deadline = time.monotonic() + config["seconds"]
    devices = config["devices"]
    counts = {"ok": 0, "other": 0, "readings": 0}
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", config["port"], timeout=60)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            device, key = devices[(index + n * 7) % len(devices)]
            if config["batch"]:
                data = batch_body(device, config["base"],
                                  index * 10_000_000 + n * config["batch"], config["batch"])
                path = "/api/iot/vitals/batch/"
            else:
                data = json.dumps({
                    "device_id": device, "timestamp": stamp(config["base"], index * 10**8 + n),
                    "heart_rate": 60 + n % 40, "oxygen_saturation": 90 + n % 10,
                }).encode()
                path = "/api/iot/vitals/"
            started = time.perf_counter()
            conn.request("POST", path, data, {"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
            response = conn.getresponse()
            answer = response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status == 200:
                    counts["ok"] += 1
                    counts["readings"] += json.loads(answer).get("processed", 1)
                else:
                    counts["other"] += 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(config["connections"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(json.dumps({
        "requests": counts["ok"] + counts["other"], "rate": (counts["ok"] + counts["other"])
        / elapsed, "non2xx": counts["other"], "readings": counts["readings"],
        "readings_rate": counts["readings"] / elapsed,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
        "socket_errors": "",
    }))


def stamp(base: int, ms: int) -> str:
    at = datetime.fromtimestamp(base, UTC) + timedelta(milliseconds=ms)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def batch_body(device: str, base: int, first: int, count: int) -> bytes:
    """``json.dumps({"device_id": device, "readings": [{"timestamp": stamp(base, first + i),
    "heart_rate": 60 + i % 40} for i in range(count)]})``, the same bytes, built from text.

    The load generator shares the server's two cores: made with ``stamp`` and ``json.dumps``,
    a body of 500 readings took 2-4 ms of CPU, a sixth of a core at the batch bench's rate,
    taken from the server it measures. Here each second's text is made once.
    """
    seconds: dict[int, str] = {}
    parts = []
    for i in range(count):
        whole, ms = divmod(first + i, 1000)
        second = seconds.get(whole)
        if second is None:
            second = seconds[whole] = stamp(base, whole * 1000)[:-5]
        parts.append(f'{{"timestamp": "{second}.{ms:03d}Z", "heart_rate": {60 + i % 40}}}')
    return f'{{"device_id": "{device}", "readings": [{", ".join(parts)}]}}'.encode()


def run_python(port: int, devices: list[tuple[str, str]], seconds: float, connections: int,
               base: int, batch: int = 0) -> dict[str, float]:
    config = {"port": port, "devices": devices, "seconds": seconds, "connections": connections,
              "base": base, "batch": batch}
    out = subprocess.run(
        [sys.executable, __file__, "_loadgen", json.dumps(config)],
        capture_output=True, text=True, timeout=seconds + 120, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- servers -----------------------------------------------------------------------------------


class BareServer:
    """aiohttp on its own loop and thread: reads the body, parses the JSON, answers a small JSON.

    Nothing else (no key, no storage): the ceiling the station's receiver is compared with.
    """

    def __init__(self) -> None:
        import asyncio

        from aiohttp import web

        async def vitals(request: web.Request) -> web.Response:
            obj = json.loads(await request.read())
            return web.json_response({"success": True, "device_id": obj.get("device_id")})

        app = web.Application()
        app.router.add_post("/api/iot/vitals/", vitals)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.server_address = site._server.sockets[0].getsockname()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def start_bare() -> BareServer:
    return BareServer()


def register_bench_ward(store) -> list[str]:
    """DEVICES beds, each with its patient admitted and its device (BENCH_000…) assigned."""
    devices = []
    for i in range(DEVICES):
        device = f"BENCH_{i:03d}"
        store.registry.add_patient(f"P{i}", f"Patient {i}", actor=ADMIN, at=START)
        store.registry.add_bed(f"{i}", "BENCH", actor=ADMIN, at=START)
        store.registry.admit(f"P{i}", f"{i}", actor=ADMIN, at=START)
        store.registry.add_device(device, actor=ADMIN, at=START)
        store.registry.assign_device(device, bed_label=f"{i}", actor=ADMIN, at=START)
        devices.append(device)
    return devices


def open_station(folder: Path, name: str, *, alarms: bool = True):
    from vitalstation.app.memory import freeze_long_lived_objects
    from vitalstation.ingest.rest import RestConfig, RestInput
    from vitalstation.pipeline.core import Pipeline
    from vitalstation.storage.keys import KeyStore
    from vitalstation.storage.store import Store

    store = Store.open(f"sqlite:///{folder / name}", background_checkpoints=True)  # as the station
    keys = KeyStore(store.engine)
    devices = [(device, keys.create(device, name="bench", actor=ADMIN, at=START).key)
               for device in register_bench_ward(store)]
    pipeline = Pipeline(store.writer)
    # As the runtime runs it (``alarms=False`` measures the station without the engine).
    store.bench_alarms = with_alarms(pipeline, store) if alarms else None
    pipeline.start()
    rest = RestInput(RestConfig(port=0, rate_limit=0, max_batch_readings=1000), pipeline, keys)
    rest.start()
    freeze_long_lived_objects()  # as serve and the window do once the station is up
    return store, pipeline, keys, rest, devices


class NullStore:
    """A writer that stores nothing: what the receiver costs without the database."""

    def write_readings(self, readings, now):
        from vitalstation.pipeline.types import Outcome, ReadingResult

        return [ReadingResult(Outcome.STORED, record_ids={m.kind: 1 for m in r.measurements})
                for r in readings]

    def write_dead_letter(self, *args) -> None:
        pass

    def write_activity(self, entries, purge) -> None:
        pass


def start_null_station(keys):
    from vitalstation.app.memory import freeze_long_lived_objects
    from vitalstation.ingest.rest import RestConfig, RestInput
    from vitalstation.pipeline.core import Pipeline

    pipeline = Pipeline(NullStore())
    pipeline.start()
    rest = RestInput(RestConfig(port=0, rate_limit=0), pipeline, keys)
    rest.start()
    freeze_long_lived_objects()
    return pipeline, rest


def close_station(store, pipeline, rest) -> None:
    rest.stop(10)
    pipeline.stop(60)
    if store.bench_alarms is not None:
        store.bench_alarms.stop()
    store.close()
    gc.unfreeze()  # the next station is frozen anew


def stored_readings(store, device_prefix: str = "BENCH_") -> int:
    from sqlalchemy import func, select

    from vitalstation.storage.schema import raw_payloads, vital_signs

    with store.engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(vital_signs)).scalar_one()
        payloads = connection.execute(select(func.count()).select_from(raw_payloads)).scalar_one()
    return int(rows), int(payloads)


# --- key verification --------------------------------------------------------------------------


def key_costs(keys, devices: list[tuple[str, str]]) -> dict[str, float]:
    from vitalstation.ingest.rest_auth import KeyCache

    cache = KeyCache(keys, ttl_s=3600)
    key = devices[0][1]
    cache.verify(key)
    calls = 200_000
    started = time.perf_counter()
    for _ in range(calls):
        cache.verify(key)
    cached_us = (time.perf_counter() - started) / calls * 1e6

    now = datetime.now(UTC)
    calls_db = 2_000
    started = time.perf_counter()
    for i in range(calls_db):
        keys.verify(devices[i % len(devices)][1], now=now)
    db_us = (time.perf_counter() - started) / calls_db * 1e6

    salt = secrets.token_bytes(16)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        hashlib.pbkdf2_hmac("sha256", key.encode(), salt, 600_000)
        runs.append(time.perf_counter() - started)
    pbkdf2_us = statistics.median(runs) * 1e6
    return {"cached_us": cached_us, "db_us": db_us, "pbkdf2_us": pbkdf2_us}


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per load run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=500, help="readings per batch POST")
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk"))
    load_before = os.getloadavg()[0]
    loadgen = "wrk" if use_wrk else "python (http.client threads, another process)"
    base = int((datetime.now(UTC) - timedelta(days=20)).timestamp())

    def single(port: int, devices: list[tuple[str, str]], base_s: int) -> dict[str, float]:
        if use_wrk:
            return run_wrk(port, devices, args.seconds, args.connections, base_s)
        return run_python(port, devices, args.seconds, args.connections, base_s)

    with tempfile.TemporaryDirectory(prefix="vs-bench-rest-") as tmp:
        folder = Path(tmp)
        store, pipeline, keys, rest, devices = open_station(folder, "station.db")
        bare_server = start_bare()
        bare = single(bare_server.server_address[1], devices, base)
        bare_server.shutdown()

        null_pipeline, null_rest = start_null_station(keys)
        no_store = single(null_rest.port, devices, base)
        null_rest.stop(10)
        null_pipeline.stop(10)

        os.sync()  # no earlier writes being flushed by the kernel during a timed run
        station = single(rest.port, devices, base)
        rest.flush_activity()
        time.sleep(1.0)
        rows, payloads = stored_readings(store)
        stats = pipeline.stats()
        costs = key_costs(keys, devices)
        close_station(store, pipeline, rest)

        store, pipeline, keys, rest, devices = open_station(folder, "batch.db")
        for done in folder.glob("station.db*"):  # the single run's: not written back now
            done.unlink()
        os.sync()
        batch = run_python(rest.port, devices, args.seconds, args.batch_connections,
                           base - 86400 * 3, batch=args.batch)
        batch_rows, _ = stored_readings(store)
        close_station(store, pipeline, rest)

    figures = {
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        "loadgen": loadgen, "connections": args.connections, "seconds": args.seconds,
        "bare_req_per_s": bare["rate"], "bare_p99_ms": bare["p99_ms"],
        "station_req_per_s": station["rate"], "station_p99_ms": station["p99_ms"],
        "station_non2xx": station["non2xx"], "station_requests": station["requests"],
        "station_socket_errors": station["socket_errors"],
        "station_rows_stored": rows, "station_payloads_stored": payloads,
        "station_mean_batch": stats.stored / max(1, stats.batches),
        "ratio_station_bare": station["rate"] / bare["rate"],
        "no_store_req_per_s": no_store["rate"],
        "ratio_no_store_bare": no_store["rate"] / bare["rate"],
        "batch_size": args.batch, "batch_req_per_s": batch["rate"],
        "batch_readings_per_s": batch["readings_rate"], "batch_rows_stored": batch_rows,
        "batch_non2xx": batch["non2xx"],
        "key_cached_us": costs["cached_us"], "key_db_us": costs["db_us"],
        "pbkdf2_600k_us": costs["pbkdf2_us"],
        "key_cached_vs_pbkdf2": costs["pbkdf2_us"] / costs["cached_us"],
        "key_db_vs_pbkdf2": costs["pbkdf2_us"] / costs["db_us"],
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    ok = station["non2xx"] == 0 and batch["non2xx"] == 0
    print(f"machine:                     {os.cpu_count()} CPUs, load average "
          f"{figures['load_average'][0]} before, {figures['load_average'][1]} after "
          "(other work on the machine lowers every figure; compare the ratios)")
    print(f"load generator:              {loadgen}, {args.connections} keep-alive connections, "
          f"{args.seconds:g} s per run")
    print(f"bare aiohttp JSON handler:   {bare['rate']:,.0f} req/s (p99 {bare['p99_ms']:.1f} ms)")
    print(f"station, single readings:    {station['rate']:,.0f} req/s "
          f"(p99 {station['p99_ms']:.1f} ms; target >= 3,000)")
    print(f"  ratio station / bare:      {figures['ratio_station_bare']:.2f}  (target >= 0.30)")
    print(f"  answers not 200:           {station['non2xx']:.0f} of {station['requests']:,.0f}"
          + (f"; socket errors: {station['socket_errors']}" if station["socket_errors"] else ""))
    print(f"  rows stored:               {rows:,} ({payloads:,} raw payloads; 2 vitals/reading)")
    print(f"  readings per commit:       {figures['station_mean_batch']:.1f} (mean; the single "
          "writer batches concurrent requests)")
    print(f"same, database replaced by a no-op writer: {no_store['rate']:,.0f} req/s "
          f"({figures['ratio_no_store_bare']:.2f} of bare: HTTP, keys, parsing, pipeline hand-off)")
    print(f"batch of {args.batch} readings:      {batch['readings_rate']:,.0f} readings/s stored "
          f"({batch['rate']:.1f} req/s, {args.batch_connections} connections; target >= 30,000)")
    print(f"  rows stored:               {batch_rows:,}; answers not 200: {batch['non2xx']:.0f}")
    print(f"key check, cached:           {costs['cached_us']:.2f} us per request")
    print(f"key check, database lookup:  {costs['db_us']:.0f} us (a cache miss, once per TTL)")
    print(f"seed PBKDF2-SHA256 600k:     {costs['pbkdf2_us'] / 1000:,.0f} ms per request")
    print(f"  PBKDF2 / cached check:     {figures['key_cached_vs_pbkdf2']:,.0f}x cheaper "
          "(target >= 1,000x)")
    print(f"  PBKDF2 / database lookup:  {figures['key_db_vs_pbkdf2']:,.0f}x cheaper")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_loadgen":
        loadgen_main(json.loads(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())

"""The whole benchmark set in one run, with one summary table (issue 10).

Runs every bench, each in its own process (one bench's threads and memory must not weigh on
the next) with ``--json``, and gathers their figures, each beside the baseline the bench
measured **in the same run** and the issue's target, into one table, printed and written as
Markdown to ``--out``:

* end-to-end latency per input (``bench/e2e.py``): MQTT publish, REST POST, file drop and
  Kinesis put → stored → alarm event → window updated, the real window offscreen in the same
  process as the station; baselines a bare paho subscriber, a bare aiohttp handler, the
  InHealth seed's one-minute cron, the bedside seed's 200 ms polling consumer;
* sustained throughput per input: ``bench/mqtt.py`` (bare paho subscriber), ``bench/rest.py``
  (bare aiohttp handler; the seed's PBKDF2 key check), ``bench/filedrop.py`` (the seed's cron),
  ``bench/kinesis.py`` (the seed's consumer: 200 ms polls, one record per batch), and the
  pipeline under them, ``bench/pipeline.py`` (raw batched inserts) and ``bench/alarms.py``
  (the pipeline without the alarm engine);
* the window's frame time under load (``bench/gui.py``: the naive window, same run);
* memory over a soak (``bench/gui.py --soak-minutes``: the window live, 32 beds);
* start-up time (``bench/startup.py``: process start → window shown, → ``serve`` accepting;
  the interpreter, a bare QMainWindow, a bare aiohttp server).

    python bench/run_all.py --quick --out /tmp/bench.md     # a few minutes
    python bench/run_all.py --out bench-results.md          # full: ~75 min with the 60-min soak
    python bench/run_all.py --soak-minutes 10 --only soak startup

The machine's load changes absolute figures from run to run: read each row against its
baseline. A bench that fails is shown as such, with the end of its output, and the others go on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Bench:
    """One bench: its command line (quick and full) and how its figures become rows."""

    name: str
    script: str
    quick: tuple[str, ...]
    full: tuple[str, ...]
    rows: Callable[[dict[str, Any]], list[tuple[str, ...]]]


def _ms(summary: dict[str, float] | None) -> str:
    return "–" if not summary else f"p50 {summary['p50']:,.1f} / p99 {summary['p99']:,.1f} ms"


def _rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}"


def _check(ok: bool | None) -> str:
    return "" if ok is None else ("✓" if ok else "✗")


# A row: measure, station, same-run baseline, station / baseline, target, met.


def e2e_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    names = {"mqtt": "MQTT publish", "rest": "REST POST", "file": "file drop",
             "kinesis": "Kinesis put"}
    baselines = {"mqtt": "bare paho subscriber", "rest": "bare aiohttp handler (answer)",
                 "kinesis": "seed consumer (200 ms polls)"}
    rows = []
    for key, label in names.items():
        if key not in r:
            continue
        legs = r[key]
        base = legs["baseline"]
        stored = legs["stored"]
        if key == "file":
            base_text, ratio = "seed cron: 30,000 mean / 60,000 worst ms", (
                f"{stored['p50'] / 30_000:.4f} (p50 / cron mean)" if stored else "")
        else:
            base_text = f"{baselines[key]}: {_ms(base)}"
            ratio = f"{stored['p50'] / base['p50']:.1f}× (p50)" if stored and base else ""
        target, ok = "", None
        if key == "mqtt" and stored:
            target, ok = "p99 ≤ 20 ms (issue 4, at 1,000/s)", stored["p99"] <= 20
        if key == "file" and stored:
            target, ok = "p99 ≤ 1 s", stored["p99"] <= 1000
        rows.append((f"{label} → stored", _ms(stored), base_text, ratio, target, _check(ok)))
        rows.append((f"{label} → alarm event", _ms(legs["alarm"]), "", "", "", ""))
        rows.append((f"{label} → window updated (in process)", _ms(legs["window"]), "", "", "",
                     ""))
        if legs.get("answered"):
            rows.append((f"{label} → 200 answered", _ms(legs["answered"]), "", "", "", ""))
        if legs.get("incomplete"):
            rows.append((f"{label}: probes with a leg missing", str(legs["incomplete"]), "", "",
                         "0", "✗"))
    return rows


def mqtt_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    lat = r["latency"]
    return [
        (f"MQTT QoS 1 backlog of {r['messages']:,}", _rate(r["station_per_s"], " readings/s"),
         f"bare paho subscriber: {_rate(r['bare_per_s'], ' msg/s')}",
         f"{r['station_over_bare']:.2f}", "≥ 5,000/s and ≥ 0.60",
         _check(r["station_per_s"] >= 5000 and r["station_over_bare"] >= 0.60)),
        (f"MQTT publish → stored at {lat['rate']:,.0f} msg/s",
         f"p50 {lat['p50_ms']:.1f} / p99 {lat['p99_ms']:.1f} ms", "", "", "p99 ≤ 20 ms",
         _check(lat["p99_ms"] <= 20)),
        ("MQTT embedded broker, live publisher", _rate(r["embedded_per_s"], " readings/s"),
         f"Mosquitto: {_rate(r['mosquitto_live_per_s'], ' readings/s')}",
         f"{r['embedded_over_mosquitto']:.2f}", "", ""),
    ]


def rest_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        ("REST single readings (32 connections)", _rate(r["station_req_per_s"], " req/s")
         + f", p99 {r['station_p99_ms']:.0f} ms",
         f"bare aiohttp: {_rate(r['bare_req_per_s'], ' req/s')}",
         f"{r['ratio_station_bare']:.2f}", "≥ 3,000/s and ≥ 0.30",
         _check(r["station_req_per_s"] >= 3000 and r["ratio_station_bare"] >= 0.30)),
        (f"REST batch of {r['batch_size']}", _rate(r["batch_readings_per_s"], " readings/s"),
         "", "", "≥ 30,000/s", _check(r["batch_readings_per_s"] >= 30000)),
        ("REST key check (cached)", f"{r['key_cached_us']:.2f} µs",
         f"seed PBKDF2-SHA256 600k: {r['pbkdf2_600k_us'] / 1000:,.0f} ms",
         f"{r['key_cached_vs_pbkdf2']:,.0f}× cheaper", "≥ 1,000× cheaper",
         _check(r["key_cached_vs_pbkdf2"] >= 1000)),
    ]


def filedrop_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    lat, burst = r["latency_ms"], r["burst"]
    return [
        (f"file drop → stored ({lat['files']} files)",
         f"p50 {lat['p50']:.0f} / p99 {lat['p99']:.0f} ms",
         "seed cron: 30,000 mean / 60,000 worst ms", f"{lat['p99'] / 60_000:.4f} (p99/worst)",
         "p99 ≤ 1 s", _check(lat["p99"] <= 1000)),
        (f"file drop burst of {burst['files']:,}", _rate(burst["files_per_s"], " files/s"),
         "", "", "≥ 500/s", _check(burst["files_per_s"] >= 500)),
    ]


def kinesis_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (f"Kinesis burst ({r['burst_s']:g} s, {r['shards']} shards)",
         _rate(r["station_records_per_s_during_burst"], " records/s")
         + f", lag at end {r['station_backlog_at_end_records']:,} records",
         f"seed consumer: {r['seed_records_per_s']:,.1f} records/s",
         f"{r['station_records_per_s_during_burst'] / max(r['seed_records_per_s'], 1e-9):,.0f}×",
         f"no backlog at the end of the burst (moto took {_rate(r['moto_put_records_per_s'])}; "
         "no issue target)", _check(r["station_backlog_at_end_records"] == 0)),
        ("Kinesis replay from TRIM_HORIZON", _rate(r["replay_records_per_s"], " records/s"),
         "", "", "", ""),
    ]


def pipeline_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    return [(f"pipeline → SQLite ({r['readings']:,} readings)",
             _rate(r["readings_per_s"], " readings/s"),
             f"raw Core executemany: {_rate(r['raw_rows_per_s'], ' rows/s')}",
             f"{r['ratio']:.2f}", "≥ 0.50", _check(r["ratio"] >= 0.50))]


def alarms_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    s2e = r["paced"]["stored_to_event_ms"]
    return [
        ("pipeline with the alarm engine", _rate(r["with_alarms"]["readings_per_s"],
                                                 " readings/s"),
         f"without: {_rate(r['bare']['readings_per_s'], ' readings/s')}",
         f"overhead {r['overhead'] * 100:.0f} %", "≤ 25 %", _check(r["overhead"] <= 0.25)),
        (f"stored → alarm event at {r['paced']['rate']:,}/s",
         f"p50 {s2e.get('p50', float('nan')):.1f} / p99 {s2e.get('p99', float('nan')):.1f} ms",
         "", "", "p99 ≤ 10 ms", _check(s2e.get("p99", float("inf")) <= 10)),
    ]


def gui_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    w, n = r["window"], r["naive"]
    target = 33 if r["beds"] <= 64 else 66
    return [
        (f"window frame, {r['beds']} beds at {r['rate']:,}/s",
         f"p50 {w['frame_p50_ms']:.1f} / p95 {w['frame_p95_ms']:.1f} ms",
         f"naive window: p50 {n['frame_p50_ms']:.1f} / p95 {n['frame_p95_ms']:.1f} ms",
         f"{w['frame_p95_ms'] / n['frame_p95_ms']:.2f} (p95)", f"p95 ≤ {target} ms",
         _check(w["frame_p95_ms"] <= target)),
        (f"window event-loop lateness, {r['beds']} beds", f"p99 {w['lateness_p99_ms']:.0f} ms",
         f"naive window: p99 {n['lateness_p99_ms']:.0f} ms", "", "p99 ≤ 50 ms",
         _check(w["lateness_p99_ms"] <= 50)),
    ]


def soak_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    first = r["rss_mb"][0][1]
    # The reference is the value after 5 minutes; a shorter soak uses the 1-minute
    # sample (the first, at 0 min, is taken before the window has loaded its ward).
    at_one = next((rss for t, rss in r["rss_mb"] if t >= 1), r["rss_end_mb"])
    reference = r["rss_at_5_min_mb"] if r["minutes"] >= 5 else at_one
    growth = (r["rss_end_mb"] - reference) / reference * 100
    since = "since 5 min" if r["minutes"] >= 5 else "since 1 min"
    return [(f"memory over a {r['minutes']:g}-min soak ({r['beds']} beds, window live)",
             f"RSS {r['rss_end_mb']:.1f} MiB at the end, {growth:+.2f} % {since}",
             f"start: {first:.1f} MiB", "", "within 5 % of 5 min (1 h)",
             _check(abs(growth) <= 5) if r["minutes"] >= 5 else "")]


def startup_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    s, w = r["serve"], r["window"]
    bare_http = r["baseline_bare_aiohttp_accepting_s"]
    return [
        ("start-up: process → `serve` accepting", f"{s['accepting_s']:.2f} s (ready line "
         f"{s['ready_line_s']:.2f} s)", f"bare aiohttp: {bare_http:.2f} s",
         f"{s['accepting_s'] / bare_http:.1f}×", "", ""),
        ("start-up: process → window shown", f"{w['shown_s']:.2f} s (station running "
         f"{w['running_s']:.2f} s)", f"bare QMainWindow: {r['baseline_bare_qt_shown_s']:.2f} s",
         f"{w['shown_s'] / r['baseline_bare_qt_shown_s']:.1f}×", "< 3 s (issue 9)",
         _check(w["shown_s"] < 3)),
    ]


def benches(soak_minutes: float) -> list[Bench]:
    return [
        Bench("e2e", "e2e.py", ("--probes", "10"), ("--probes", "40"), e2e_rows),
        Bench("mqtt", "mqtt.py", ("--quick",), (), mqtt_rows),
        Bench("rest", "rest.py", ("--seconds", "4"), (), rest_rows),
        Bench("filedrop", "filedrop.py", ("--latency-files", "100", "--burst-files", "500"), (),
              filedrop_rows),
        Bench("kinesis", "kinesis.py", ("--seconds", "5"), (), kinesis_rows),
        Bench("pipeline", "pipeline.py", ("--readings", "30000"), (), pipeline_rows),
        Bench("alarms", "alarms.py", ("--quick",), (), alarms_rows),
        Bench("gui", "gui.py", ("--beds", "64", "--rates", "5000", "--seconds", "3"),
              ("--beds", "64", "128", "--rates", "5000", "--seconds", "6"), gui_rows),
        Bench("soak", "gui.py", ("--soak-minutes", "2", "--beds", "32", "--rates", "32"),
              ("--soak-minutes", f"{soak_minutes:g}", "--beds", "32", "--rates", "32"),
              soak_rows),
        Bench("startup", "startup.py", ("--runs", "2"), ("--runs", "5"), startup_rows),
    ]


def run_bench(bench: Bench, quick: bool) -> tuple[list[dict[str, Any]], str, float]:
    """Run one bench; its JSON objects, the tail of its output if it gave none, seconds."""
    command = [sys.executable, str(BENCH / bench.script),
               *(bench.quick if quick else bench.full), "--json"]
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    print(f"== {bench.name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    objects = []
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    tail = "" if objects else (done.stdout + done.stderr)[-1500:]
    print(f"   {took:.0f} s, exit {done.returncode}", file=sys.stderr, flush=True)
    return objects, tail, took


def table(rows: list[tuple[str, ...]]) -> str:
    head = ("measure", "station", "same-run baseline", "station / baseline", "target", "met")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short form (a few minutes)")
    parser.add_argument("--soak-minutes", type=float, default=60.0,
                        help="memory soak of the full form (default 60)")
    parser.add_argument("--only", nargs="+", help="these benches only (names as in the table)")
    parser.add_argument("--out", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args(argv)
    chosen = [b for b in benches(args.soak_minutes) if not args.only or b.name in args.only]
    began = datetime.now(UTC)
    load = os.getloadavg()[0]
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []
    took: dict[str, float] = {}
    for bench in chosen:
        objects, tail, took[bench.name] = run_bench(bench, args.quick)
        if not objects:
            rows.append((f"{bench.name}: no figures", "failed", "", "", "", "✗"))
            failures.append(f"### {bench.name}\n\n```\n{tail}\n```")
            continue
        for figures in objects:
            try:
                rows.extend(bench.rows(figures))
            except (KeyError, TypeError, ZeroDivisionError) as exc:
                rows.append((f"{bench.name}: figures unreadable ({exc!r})", "failed", "", "", "",
                             "✗"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    form = "quick" if args.quick else f"full (soak {args.soak_minutes:g} min)"
    header = (f"Benchmarks, {form} form: {began:%Y-%m-%d %H:%M} UTC, commit {commit}, "
              f"{os.cpu_count()} CPUs, load average {load:.1f} before / "
              f"{os.getloadavg()[0]:.1f} after; "
              + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items()) + ".")
    report = "\n\n".join([header, table(rows), *failures]) + "\n"
    print(report)
    if args.out is not None:
        args.out.write_text(report, encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

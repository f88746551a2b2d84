"""The full form of the fault-injection and hostile-input tests, with their figures.

Runs ``tests/faults``, ``tests/hostile`` and the in-process REST fuzz with
``VITALSTATION_FULL_PROOF=1`` (10 SIGKILLs per input, each input alone, and 10 with all four
inputs on PostgreSQL; an escalation chain SIGKILLed in both its stages; SQLite locked past
its busy timeout; 5,000 fuzz cases against ``vitalstation serve`` and 5,000 per backend in
process) and prints the lines the tests print (published / acknowledged / stored counts,
timings, answers), which docs/reliability.md publishes.

    .venv/bin/python bench/faults.py [--kills N] [--fuzz N] [--seed K] [pytest args...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/faults", "tests/hostile", "tests/ingest/test_rest_fuzz.py"]
# The lines the tests print with -s: counts and figures, nothing else.
FIGURES = re.compile(
    r"^(SIGKILL|escalation restart|mqtt:|kinesis:|REST answers|clock steps|full disk|"
    r"100 MB body|slow-loris|"
    r"burst of|fuzz x|  )"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs per input (default 10)")
    parser.add_argument("--fuzz", type=int, default=5000, help="fuzz cases (default 5000)")
    parser.add_argument("--seed", type=int, default=20261123, help="seed of the kill points")
    args, rest = parser.parse_known_args(argv)
    env = dict(os.environ, VITALSTATION_FULL_PROOF="1",
               VITALSTATION_FAULT_KILLS=str(args.kills),
               VITALSTATION_FUZZ_EXAMPLES=str(args.fuzz),
               VITALSTATION_FAULT_SEED=str(args.seed), QT_QPA_PLATFORM="offscreen")
    command = [sys.executable, "-m", "pytest", "-v", "-s", "-p", "no:cacheprovider",
               "--timeout", "1800", *TESTS, *rest]
    print("$ " + " ".join(f"{k}={env[k]}" for k in (
        "VITALSTATION_FULL_PROOF", "VITALSTATION_FAULT_KILLS", "VITALSTATION_FUZZ_EXAMPLES",
        "VITALSTATION_FAULT_SEED")) + " " + " ".join(command[2:]), flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        # With -v, a test's node id shares the line with the first thing it printed.
        if line.startswith("tests/"):
            node, _, line = line.partition(" ")
            print(f"\n{node}")
        line = re.sub(r" ?(PASSED|FAILED|SKIPPED|XFAIL|ERROR)( \(.*\))?$", "", line)
        if FIGURES.match(line):
            print(line)
        elif line.strip() in ("PASSED", "FAILED", "SKIPPED"):
            print(f"  -> {line.strip()}")
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:])
    print(f"wall time {time.monotonic() - started:.0f} s")
    if done.returncode != 0:
        print(done.stdout[-6000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())

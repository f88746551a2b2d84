"""`vitalstation serve`: starts fast, stops cleanly on SIGTERM/SIGINT; the runtime's order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.factories import make_reading
from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import load_settings
from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.pipeline.types import Outcome

# A sanity bound, not the start-up target: start-up time is measured in bench/ (timed tests
# flake on a loaded machine); this only catches a start that hangs or waits on a timeout.
START_BUDGET_S = 10.0


def _start_serve(home) -> tuple[subprocess.Popen[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITALSTATION_")}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "vitalstation", "--home", str(home), "serve"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "started in" in line:
            return process, time.monotonic() - started
        if process.poll() is not None:
            break
    process.kill()
    process.communicate()
    pytest.fail(f"serve did not start: {process.stderr.read()}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_starts_within_budget_and_stops_cleanly(tmp_path, signum) -> None:
    home = tmp_path / "home"
    first, _ = _start_serve(home)  # the first start creates and migrates the database
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=20)
    process, elapsed = _start_serve(home)
    try:
        assert elapsed < START_BUDGET_S, f"serve took {elapsed:.2f} s to start"
        process.send_signal(signum)
        _, rest = process.communicate(timeout=20)
    finally:
        if process.poll() is None:  # never leave a station running for the next test
            process.kill()
            process.communicate()
    assert process.returncode == 0, rest
    assert "stopped cleanly" in rest
    assert (home / "vitalstation.toml").exists()
    assert (home / "vitalstation.db").exists()
    log = (home / "logs" / "vitalstation.log").read_text()
    assert log.count("stopped cleanly") == 2  # both runs


class BurstInput:
    """Submits a burst of readings at start, as an input under load would."""

    name = "burst"

    def __init__(self, pipeline, count: int) -> None:
        self._pipeline = pipeline
        self._count = count
        self.tickets = []
        self.stopped = False

    def start(self) -> None:
        for i in range(self._count):
            self.tickets.append(self._pipeline.submit([make_reading("BURST", i)]))

    def stop(self, timeout: float) -> None:
        self.stopped = True

    def health(self) -> InputHealth:
        return InputHealth(self.name, InputState.UP)


class BrokenInput:
    name = "broken"

    def start(self) -> None:
        raise OSError("address already in use")

    def stop(self, timeout: float) -> None:  # pragma: no cover - never started
        raise AssertionError

    def health(self) -> InputHealth:  # pragma: no cover
        raise AssertionError


def test_runtime_stops_inputs_then_drains_then_closes(tmp_path, store_url) -> None:
    settings = load_settings(tmp_path, {"VITALSTATION_STORE__URL": store_url})
    inputs: list[BurstInput] = []

    def burst(settings, pipeline, store):
        inputs.append(BurstInput(pipeline, 500))
        return inputs[-1]

    runtime = Runtime(
        settings, input_factories=[burst, lambda *_: BrokenInput(), lambda *_: None]
    )
    runtime.start()
    health = runtime.health()
    assert [(i.name, i.state) for i in health.inputs] == [
        ("burst", InputState.UP), ("broken", InputState.DOWN)
    ]
    assert "address already in use" in health.inputs[1].detail
    assert runtime.stop() is True
    (burst_input,) = inputs
    assert burst_input.stopped
    results = [t.wait(0)[0] for t in burst_input.tickets]
    assert all(r.outcome is Outcome.STORED for r in results)


def test_serve_in_process_stops_on_event(tmp_path) -> None:
    from vitalstation.app.serve import serve

    settings = load_settings(tmp_path, {})
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    assert serve(settings, stop=stop) == 0


def test_a_factory_that_raises_takes_down_only_its_own_input(tmp_path) -> None:
    settings = load_settings(tmp_path, {})

    def make_broken(settings, pipeline, store):
        raise ValueError("stream name refused")

    inputs: list[BurstInput] = []

    def burst(settings, pipeline, store):
        inputs.append(BurstInput(pipeline, 3))
        return inputs[-1]

    runtime = Runtime(settings, input_factories=[make_broken, burst])
    runtime.start()
    try:
        health = {i.name: i for i in runtime.health().inputs}
        assert health["make_broken"].state is InputState.DOWN
        assert "stream name refused" in health["make_broken"].detail
        assert health["burst"].state is InputState.UP
    finally:
        assert runtime.stop()

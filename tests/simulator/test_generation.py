"""The models and scenarios, read straight from the generator (no transport, no sleeping)."""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from simulator import (
    ScenarioSpec,
    Simulation,
    SimulationConfig,
    SimulationConfigError,
    generate_messages,
)
from simulator.models import DEFECTS
from simulator.scenarios import SCENARIOS
from simulator.wire import Message, WireFormat
from tests.simulator.helpers import T0, RecordingTransport, assert_valid, news2, parse
from vitalstation.domain.errors import PayloadError
from vitalstation.domain.timestamps import parse_device_timestamp


def config(**kwargs) -> SimulationConfig:
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("start_time", T0)
    return SimulationConfig(**kwargs).resolved(T0)


def run(span: float, **kwargs) -> list[Message]:
    return list(generate_messages(config(duration=span, **kwargs)))


def scenarios(*texts: str) -> tuple[ScenarioSpec, ...]:
    return tuple(ScenarioSpec.parse(t) for t in texts)


def readings_of(message: Message) -> list[dict]:
    """The reading objects a valid payload carries, device_id added to batch items."""
    obj = json.loads(message.payload)
    if "readings" in obj:
        return [{"device_id": obj["device_id"], **r} for r in obj["readings"]]
    return [obj]


def ts(obj: dict) -> datetime:
    return parse_device_timestamp(obj["timestamp"])


def celsius(obj: dict) -> float:
    t = obj["temperature"]
    return (t - 32) * 5 / 9 if obj.get("temperature_unit", "F") == "F" else t


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["ward", "bedside-monitor"])
def test_same_seed_and_start_give_the_same_bytes(model: str) -> None:
    kwargs = dict(beds=3, model=model, scenarios=scenarios("malformed:2", "offline-backlog:3"))
    first = [m.payload for m in run(600, **kwargs)]
    again = [m.payload for m in run(600, **kwargs)]
    other_seed = [m.payload for m in run(600, seed=8, **kwargs)]
    later = [m.payload for m in generate_messages(
        SimulationConfig(duration=600, seed=7, start_time=T0 + timedelta(seconds=1), **kwargs)
        .resolved(T0))]
    assert first == again
    assert len(first) > 100
    assert first != other_seed
    assert first != later


def test_a_scenario_on_one_bed_leaves_the_others_alone() -> None:
    plain = [m.payload for m in run(600, beds=3) if m.device_id != "SIM-BSM-02"]
    with_scenario = [
        m.payload for m in run(600, beds=3, scenarios=scenarios("deteriorating:2"))
        if m.device_id != "SIM-BSM-02"
    ]
    assert plain == with_scenario


def test_the_paced_simulation_sends_the_generated_bytes_in_time() -> None:
    cfg = SimulationConfig(beds=2, model="bedside-monitor", seed=3, start_time=T0, duration=0.6,
                           rate_multiplier=200, scenarios=scenarios("malformed:1"))
    transport = RecordingTransport()
    stats = Simulation(cfg, transport).run()
    expected = [m.payload for m in generate_messages(cfg.resolved(T0))]
    assert [m.payload for m in transport.messages] == expected
    assert stats.ok and stats.totals.sent == len(expected)
    assert stats.totals.expected_refusals == sum(1 for m in transport.messages if m.expect_refusal)
    # Paced, not flat out: not before its 0.6 s (the upper bound only catches a runaway).
    assert 0.55 <= stats.elapsed_seconds < 5.0
    assert transport.closed.is_set()


def test_a_faster_clock_is_back_dated_so_nothing_is_stamped_in_the_future() -> None:
    now = T0
    resolved = SimulationConfig(duration=10, rate_multiplier=60, seed=1).resolved(now)
    assert resolved.start_time == now - timedelta(seconds=10 * 59)
    # Each reading leaves at real time now + send_offset / 60: never before it was measured.
    messages = list(generate_messages(resolved))
    assert all(m.measured_at <= now + timedelta(seconds=m.send_offset / 60) for m in messages)
    assert messages[-1].measured_at > now + timedelta(seconds=9)  # the last ones are "live"
    assert SimulationConfig(duration=10, seed=1).resolved(now).start_time == now
    with pytest.raises(SimulationConfigError, match="needs a duration"):
        SimulationConfig(rate_multiplier=60)
    with pytest.raises(SimulationConfigError, match="only 2 beds"):
        SimulationConfig(beds=2, scenarios=scenarios("bradycardia:3"))


def test_scenario_specs_parse_with_clear_errors() -> None:
    assert ScenarioSpec.parse("deteriorating:3") == ScenarioSpec("deteriorating", 3)
    assert ScenarioSpec.parse("Sensor-Off") == ScenarioSpec("sensor-off", None)
    for bad, words in (("sepsis", "unknown scenario"), ("stable:x", "bed number"),
                       ("stable:0", "from 1")):
        with pytest.raises(ValueError, match=words):
            ScenarioSpec.parse(bad)


# --- the bedside-monitor model is the seed publisher -----------------------------------------


def test_bedside_monitor_reproduces_the_seed_publisher() -> None:
    hours = 4
    messages = run(hours * 3600, beds=1, model="bedside-monitor")
    by_type: dict[str, list[dict]] = defaultdict(list)
    for message in messages:
        obj = json.loads(message.payload)
        assert list(obj) == ["deviceid", "timestamp", "datatype", "value"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", obj["timestamp"])
        by_type[obj["datatype"]].append((message.measured_at, obj))
    assert set(by_type) == {"HeartRate", "SPO2", "Temperature"}

    # (datatype, mean, sd, interval); int() truncates as the seed's did: means ~0.5 lower.
    for datatype, mean, sd, interval, mean_tol in (
        ("HeartRate", 85, 12, 1, 0.8), ("SPO2", 90, 3, 10, 0.8), ("Temperature", 99, 1.5, 15, 0.15),
    ):
        objs = [o for _, o in by_type[datatype]]
        values = [o["value"] for o in objs]
        assert len(values) == pytest.approx(hours * 3600 / interval, abs=1)
        assert abs(statistics.fmean(values) - mean) < mean_tol, datatype
        assert abs(statistics.stdev(values) - sd) < sd * 0.06, datatype
        times = [at for at, _ in by_type[datatype]]
        gaps = {round((b - a).total_seconds(), 6) for a, b in itertools.pairwise(times)}
        assert gaps == {interval}, datatype
    assert all(type(o["value"]) is int for _, o in by_type["HeartRate"])
    assert all(type(o["value"]) is int for _, o in by_type["SPO2"])
    assert all(type(o["value"]) is float and round(o["value"], 1) == o["value"]
               for _, o in by_type["Temperature"])
    first = by_type["HeartRate"][0]
    assert ts(first[1]) == first[0]  # the text says the time the message was measured
    assert all(re.search(rb'"value": \d+\.\d\}$', m.payload)
               for m in messages if b"Temperature" in m.payload)


def test_a_ward_bed_sends_at_once_then_on_a_cycle_of_its_own() -> None:
    """A monitor coming online sends its first reading at once (a demo's tiles are live in
    moments, not after up to a whole 5 s cycle); after it, beds keep out of step."""
    cycle = 5.0
    messages = run(60, beds=4, model="ward")
    by_bed: dict[str, list[float]] = defaultdict(list)
    for message in messages:
        if not by_bed[message.device_id] or message.send_offset > by_bed[message.device_id][-1]:
            by_bed[message.device_id].append(message.send_offset)
    assert len(by_bed) == 4
    assert all(offsets[0] == 0.0 for offsets in by_bed.values())
    for offsets in by_bed.values():
        gaps = [round(b - a, 3) for a, b in zip(offsets[1:], offsets[2:], strict=False)]
        assert set(gaps) == {cycle}, gaps  # its own steady cycle after the first
        assert cycle <= offsets[1] < 2 * cycle
    phases = {round(offsets[1] % cycle, 3) for offsets in by_bed.values()}
    assert len(phases) == 4  # not in step


# --- the ward model --------------------------------------------------------------------------


def test_the_ward_model_sends_every_inhealth_vital_with_drifting_physiology() -> None:
    messages = run(2 * 3600, beds=2, model="ward")
    fields: set[str] = set()
    series: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for message in messages:
        (obj,) = readings_of(message)
        fields |= set(obj)
        for key in ("heart_rate", "respiratory_rate", "battery_level"):
            series[message.device_id][key].append(obj[key])
    assert fields >= {
        "heart_rate", "blood_pressure_systolic", "blood_pressure_diastolic", "temperature",
        "temperature_unit", "respiratory_rate", "oxygen_saturation", "glucose", "weight",
        "weight_unit", "signal_quality", "battery_level",
    }
    # Glucose (6-hourly) and weight (daily) are rare: in the first reading only, here.
    for key in (b'"glucose"', b'"weight"'):
        assert [m.send_offset < 5 for m in messages if key in m.payload] == [True, True]
    for device, s in series.items():
        hr, rr = s["heart_rate"], s["respiratory_rate"]
        # Mean-reverting processes, not independent noise: neighbours 5 s apart are alike...
        lag1 = statistics.correlation(hr[:-1], hr[1:])
        assert lag1 > 0.7, (device, lag1)
        # ...and heart and breathing move together (a shared stress factor).
        assert statistics.correlation(hr, rr) > 0.2, device
        battery = s["battery_level"]
        assert battery[720] < battery[0]  # an hour of drain
        assert min(battery) >= 20  # plugged in before it runs low (no low-battery scenario)


def test_every_payload_parses_into_valid_readings() -> None:
    names = [n for n in SCENARIOS if n not in ("malformed", "clock-skew")]
    specs = tuple(ScenarioSpec(n, bed) for bed, n in enumerate(names, 1))
    for model in ("ward", "bedside-monitor"):
        for batch in (1, 7):
            messages = run(400, beds=len(specs), model=model, scenarios=specs, batch=batch)
            now = T0 + timedelta(seconds=400)
            for message in messages:
                assert message.expect_refusal is None
                assert_valid(message, now)
            assert any(m.is_batch for m in messages) == (batch > 1 or model == "ward")


def test_rest_speaks_inhealth_even_for_the_bedside_model() -> None:
    messages = list(generate_messages(config(duration=60, model="bedside-monitor"),
                                      WireFormat.INHEALTH))
    objs = [json.loads(m.payload) for m in messages]
    assert all("device_id" in o and "datatype" not in o for o in objs)
    assert any(o.get("temperature_unit") == "F" for o in objs)
    for message in messages:
        assert_valid(message, T0 + timedelta(minutes=2))


# --- scenarios -------------------------------------------------------------------------------


def _latest_vitals(messages: list[Message]) -> dict[str, dict[str, float]]:
    latest: dict[str, dict[str, float]] = defaultdict(dict)
    for message in messages:
        for obj in readings_of(message):
            vitals = latest[message.device_id]
            for key in ("heart_rate", "respiratory_rate", "oxygen_saturation",
                        "blood_pressure_systolic"):
                if key in obj:
                    vitals[key] = obj[key]
            if "temperature" in obj:
                vitals["temp_c"] = celsius(obj)
    return latest


def _score(v: dict[str, float]) -> int:
    return news2(rr=v["respiratory_rate"], spo2=v["oxygen_saturation"],
                 sbp=v["blood_pressure_systolic"], hr=v["heart_rate"], temp_c=v["temp_c"])


def test_news2_helper_matches_the_chart() -> None:
    # clinical.md's worked case (on oxygen) and boundary vectors.
    assert news2(rr=22, spo2=95, sbp=105, hr=115, temp_c=38.4, oxygen=True) == 9
    assert news2(rr=26, spo2=98, sbp=120, hr=70, temp_c=37.0) == 3
    assert news2(rr=12, spo2=96, sbp=111, hr=51, temp_c=36.1) == 0
    assert news2(rr=25, spo2=91, sbp=90, hr=131, temp_c=35.0) == 15


@pytest.mark.parametrize("span", [1800, 60])  # the default timeline, and one compressed to fit
def test_deteriorating_reaches_news2_of_at_least_7(span: float) -> None:
    beds = 4
    messages = run(span, beds=beds, scenarios=scenarios("deteriorating"))
    first = _latest_vitals([m for m in messages if m.measured_at == min(
        x.measured_at for x in messages if x.device_id == m.device_id)])
    last = _latest_vitals(messages)
    assert len(last) == beds
    for device, end in last.items():
        start = first[device]
        assert _score(start) <= 4, (device, start)
        assert _score(end) >= 7, (device, end)
        assert end["heart_rate"] > start["heart_rate"]
        assert end["respiratory_rate"] > start["respiratory_rate"]
        assert end["temp_c"] > start["temp_c"]
        assert end["blood_pressure_systolic"] < start["blood_pressure_systolic"]


def test_stable_patients_stay_low_risk() -> None:
    last = _latest_vitals(run(1800, beds=6))
    assert all(_score(v) <= 4 for v in last.values()), last


def _series(messages: list[Message], key: str) -> list[tuple[float, float]]:
    return [((ts(o) - T0).total_seconds(), o[key])
            for m in messages for o in readings_of(m) if key in o]


def test_desaturation_and_bradycardia_come_and_go() -> None:
    messages = run(900, beds=2, scenarios=scenarios("desaturation:1", "bradycardia:2"))
    spo2 = _series([m for m in messages if m.device_id == "SIM-BSM-01"], "oxygen_saturation")
    # Default timelines: onset 60 s, ramp, hold two minutes, recover.
    assert min(v for t, v in spo2 if 130 <= t <= 230) <= 85
    assert min(v for t, v in spo2 if t < 50) >= 92
    assert min(v for t, v in spo2 if t > 400) >= 92
    hr = _series([m for m in messages if m.device_id == "SIM-BSM-02"], "heart_rate")
    assert max(v for t, v in hr if 100 <= t <= 200) <= 42
    assert min(v for t, v in hr if t > 350) > 50


def test_sensor_off_leaves_a_gap() -> None:
    messages = run(600, beds=2, model="bedside-monitor", scenarios=scenarios("sensor-off:1"))
    times = sorted(m.measured_at for m in messages if m.device_id == "SIM-BSM-01")
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 179
    assert sorted(gaps)[-2] <= 1.0  # one gap only, data before and after it
    other = sorted(m.measured_at for m in messages if m.device_id == "SIM-BSM-02")
    assert max((b - a).total_seconds() for a, b in itertools.pairwise(other)) <= 1.0


@pytest.mark.parametrize("model", ["ward", "bedside-monitor"])
def test_offline_backlog_sends_old_timestamps_when_back(model: str) -> None:
    messages = run(600, beds=1, model=model, scenarios=scenarios("offline-backlog"))
    late = [m for m in messages if m.send_offset - (m.measured_at - T0).total_seconds() > 1]
    assert late, "nothing was held back"
    # Offline from 60 s to 240 s: the buffered readings leave at 240 s with their own times.
    assert {m.send_offset for m in late} == {240.0 + (late[0].send_offset - 240.0)}
    held = [ts(o) for m in late for o in readings_of(m)]
    assert min(held) - T0 < timedelta(seconds=60 + 5)  # within a reading of the onset
    assert max(held) - T0 < timedelta(seconds=240)
    if model == "ward":
        assert all(m.is_batch for m in late)  # InHealth: "batch when offline"
        assert sum(m.readings for m in late) == len(held) >= 30
    # Nothing was measured during the outage that was not eventually sent (after the first
    # reading, sent as the monitor came online: the next is on the bed's own cycle).
    sent_times = sorted(ts(o) for m in messages for o in readings_of(m))[1:]
    assert max((b - a).total_seconds() for a, b in itertools.pairwise(sent_times)) <= 5.0


def test_low_battery_drains_below_20_percent() -> None:
    for model in ("ward", "bedside-monitor"):
        messages = run(900, beds=2, model=model, scenarios=scenarios("low-battery:2"))
        levels = [o["battery_level"] for m in messages if m.device_id == "SIM-BSM-02"
                  for o in readings_of(m)]
        assert levels[-1] < 20 and levels[0] > 50, model
        other = [o.get("battery_level") for m in messages if m.device_id == "SIM-BSM-01"
                 for o in readings_of(m)]
        assert model == "ward" or set(other) == {None}  # the seed format has no battery


def test_unknown_device_sends_under_an_unregistered_id() -> None:
    messages = run(120, beds=2, scenarios=scenarios("unknown-device:2"))
    assert {m.device_id for m in messages} == {"SIM-BSM-01", "SIM-UNREG-02"}
    for message in messages:
        assert message.unregistered == (message.device_id == "SIM-UNREG-02")
        assert_valid(message, T0 + timedelta(minutes=3))


def test_malformed_payloads_are_refused_by_the_station_parser() -> None:
    for model in ("ward", "bedside-monitor"):
        messages = run(600, beds=2, model=model, scenarios=scenarios("malformed:1"))
        bad = [m for m in messages if m.expect_refusal]
        good = [m for m in messages if not m.expect_refusal]
        assert {m.device_id for m in bad} == {"SIM-BSM-01"}
        assert {m.expect_refusal.removeprefix("malformed: ") for m in bad} == set(DEFECTS)
        assert len(good) >= 4 * len(bad)  # a mix: valid readings keep coming
        now = T0 + timedelta(minutes=11)
        for message in bad:
            try:
                result = parse(message, now)
            except PayloadError:
                continue  # refused whole: bad JSON, NaN
            assert result.readings == [] and result.errors, message.payload
        for message in good:
            assert_valid(message, now)


def test_clock_skew_stamps_readings_far_in_the_future() -> None:
    messages = run(120, beds=2, scenarios=scenarios("clock-skew:1"))
    skewed = [m for m in messages if m.device_id == "SIM-BSM-01"]
    assert skewed and all(m.expect_refusal for m in skewed)
    now = T0 + timedelta(minutes=3)
    for message in skewed:
        assert message.measured_at - now > timedelta(hours=23)
        errors = parse(message, now).errors
        assert "future" in errors[0]["timestamp"]


def test_first_bed_shifts_the_devices_so_simulations_can_share_a_ward() -> None:
    from datetime import UTC, datetime

    from simulator import SimulationConfig, device_id_for, generate_messages

    config = SimulationConfig(
        beds=2, first_bed=5, seed=1, duration=30,
        start_time=datetime(2026, 11, 2, 8, tzinfo=UTC),
    )
    devices = {m.device_id for m in generate_messages(config)}
    assert devices == {device_id_for(5), device_id_for(6)}

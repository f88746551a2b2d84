"""``vitalstation-sim``: the bedside simulator's command line.

Simulates N beds and sends their readings to a station by MQTT, REST, file drop or Kinesis,
then prints what was sent and what became of it. The target comes from the station's own
configuration in the data home (``--home`` / ``VITALSTATION_HOME``, with the same
``VITALSTATION_<SECTION>__<KEY>`` overrides); the flags override it. Exit codes: 0 when every
payload was acknowledged (or refused as expected), 1 when any failed or the target could not
be reached, 2 for a usage mistake.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TextIO

from simulator.config import MAX_BATCH, SimulationConfig, SimulationConfigError
from simulator.keys import (
    KEY_FILE_NAME,
    KeyFileError,
    issue_keys,
    load_key_file,
    load_keyring_keys,
    save_key_file,
    save_keyring_keys,
)
from simulator.models import MODELS, device_id_for
from simulator.register import register_beds
from simulator.runner import Simulation
from simulator.scenarios import SCENARIO_HELP, ScenarioSpec, scenarios_for_bed
from simulator.stats import Counts, SimulationStats
from simulator.targets import TRANSPORTS, TargetOptions, build_transport
from simulator.transports.base import TransportError
from simulator.transports.mqtt import MQTT_VERSIONS
from vitalstation import __version__
from vitalstation.config.errors import ConfigError
from vitalstation.config.home import resolve_home
from vitalstation.config.secrets import SecretStore
from vitalstation.config.settings import Settings, load_settings
from vitalstation.domain.clock import utc_now
from vitalstation.domain.errors import UserError

__all__ = ["PASSWORD_ENV", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

PASSWORD_ENV = "VITALSTATION_SIM_MQTT_PASSWORD"


class _Usage(Exception):
    """A usage mistake found after parsing."""


def _scenario(text: str) -> ScenarioSpec:
    try:
        return ScenarioSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time (e.g. 2026-11-02T08:00:00Z)"
        ) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def build_parser() -> argparse.ArgumentParser:
    """Every flag of ``vitalstation-sim``."""
    scenarios = "\n".join(f"  {name:<16} {text}" for name, text in SCENARIO_HELP.items())
    parser = argparse.ArgumentParser(
        prog="vitalstation-sim",
        description="Bedside simulator: simulated beds send vital signs to a VitalStation.",
        epilog=f"scenarios (--scenario NAME[:BED], BED numbered from 1):\n{scenarios}\n\n"
               "Scenario times are simulated time; a run shorter than a scenario plays it "
               "compressed to fit.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vitalstation-sim {__version__}")
    run = parser.add_argument_group("simulation")
    run.add_argument("--beds", type=_positive_int, default=4, metavar="N",
                     help="number of beds (default 4)")
    run.add_argument("--model", choices=MODELS, default="ward",
                     help="ward: every vital with drifting physiology (default); bedside-monitor: "
                          "the seed publisher's one-vital messages")
    run.add_argument("--transport", choices=TRANSPORTS, default="mqtt",
                     help="how to send (default mqtt)")
    run.add_argument("--duration", type=_positive_float, metavar="S",
                     help="run for S real seconds (default: until Ctrl-C)")
    run.add_argument("--rate-multiplier", type=_positive_float, default=1.0, metavar="R",
                     help="simulated seconds per real second (60: a minute per second); "
                          "above 1 the run is back-dated so no reading is in the future")
    run.add_argument("--scenario", type=_scenario, action="append", default=[],
                     metavar="NAME[:BED]", help="a scenario on one bed or all (repeatable)")
    run.add_argument("--seed", type=int, metavar="K",
                     help="random seed (default: a random one, printed in the summary)")
    run.add_argument("--start-time", type=_instant, metavar="ISO",
                     help="the simulated clock's start (with --seed: byte-identical payloads)")
    run.add_argument("--batch", type=_positive_int, default=1, metavar="N",
                     help=f"readings per payload, as InHealth batches (1 to {MAX_BATCH}; "
                          "default 1)")
    run.add_argument("--load", action="store_true",
                     help="benchmark: send as fast as the transport allows, stamped with the "
                          "real clock, ignoring the model's timing")
    run.add_argument("--register", action="store_true",
                     help="register patients P-SIM-nn, beds SIM-nn and devices SIM-BSM-nn "
                          "(admitted, assigned; REST: device keys) in the data home's store")

    target = parser.add_argument_group("target (default: the station of the data home)")
    target.add_argument("--home", metavar="DIR",
                        help="the station's data home (default $VITALSTATION_HOME or the "
                             "platform's user data directory)")
    target.add_argument("--url", metavar="URL", help="REST: the station's base URL")
    target.add_argument("--key-file", metavar="PATH",
                        help='REST: keep the device keys in this JSON file {"DEVICE_ID": "KEY"} '
                             "(written by --register) instead of the station's OS keyring "
                             "(the default; needed where no keyring works)")
    target.add_argument("--broker", metavar="URL", help="MQTT: mqtt://host:1883 or mqtts://...")
    target.add_argument("--mqtt-version", choices=tuple(MQTT_VERSIONS), default="3.1.1",
                        help="MQTT protocol version (default 3.1.1)")
    target.add_argument("--qos", type=int, choices=(0, 1, 2), default=1,
                        help="MQTT QoS (default 1: PUBACKs counted as acknowledgements)")
    target.add_argument("--topic-prefix", metavar="TOPIC",
                        help="MQTT: topics are TOPIC/<device id> (default from the station's "
                             "mqtt.topics, else healthcare/monitors)")
    target.add_argument("--username", help="MQTT user name")
    target.add_argument("--password",
                        help=f"MQTT password (visible to other users: prefer ${PASSWORD_ENV})")
    target.add_argument("--tls-ca", metavar="PEM", help="MQTT/HTTPS: CA certificate to trust")
    target.add_argument("--tls-cert", metavar="PEM", help="MQTT: client certificate")
    target.add_argument("--tls-key", metavar="PEM", help="MQTT: client private key")
    target.add_argument("--inbox", metavar="DIR", help="file: the station's inbox")
    target.add_argument("--stream", metavar="NAME", help="Kinesis: stream name")
    target.add_argument("--region", metavar="REGION", help="Kinesis: AWS region")
    target.add_argument("--endpoint-url", metavar="URL", help="Kinesis: endpoint (local stacks)")
    target.add_argument("--create-stream", action="store_true",
                        help="Kinesis: create the stream (one shard) if it does not exist")

    out = parser.add_argument_group("output")
    out.add_argument("-v", "--verbose", action="store_true", help="counts per device too")
    out.add_argument("--json", action="store_true", help="the summary as one JSON object")
    return parser


def _config(args: argparse.Namespace) -> SimulationConfig:
    try:
        return SimulationConfig(
            beds=args.beds,
            model=args.model,
            scenarios=tuple(args.scenario),
            seed=args.seed,
            duration=args.duration,
            rate_multiplier=args.rate_multiplier,
            start_time=args.start_time,
            load=args.load,
            batch=args.batch,
        )
    except SimulationConfigError as exc:
        raise _Usage(str(exc)) from None


def _registered_devices(config: SimulationConfig) -> list[str]:
    """Devices that send under their registered id (not the unknown-device beds)."""
    return [
        device_id_for(bed) for bed in range(1, config.beds + 1)
        if "unknown-device" not in scenarios_for_bed(config.scenarios, bed)
    ]


def _register(
    settings: Settings, config: SimulationConfig, args: argparse.Namespace, now: datetime,
    key_path: str | None, out: TextIO,
) -> dict[str, str] | None:
    """``--register``; returns the REST keys when the transport needs them."""
    from vitalstation.app.admin import open_store

    # Admitted and assigned before the first reading's time (back-dated runs included).
    at = min(now, config.start_time) - timedelta(minutes=1)
    store = open_store(settings)
    try:
        result = register_beds(
            store.registry, config.beds, at=at, device_type=f"simulator:{config.model}"
        )
        keys = None
        if args.transport == "rest":
            devices = _registered_devices(config)
            if key_path is None:
                existing, moved = load_keyring_keys(settings, devices)
                if moved:
                    result.notes.append(moved)
            else:
                existing = load_key_file(key_path) if os.path.exists(key_path) else {}
            keys, created = issue_keys(
                store, devices, existing, settings=settings, actor="vitalstation-sim", at=now
            )
            if created:
                if key_path is None:
                    save_keyring_keys(settings, {d: keys[d] for d in created})
                else:
                    save_key_file(key_path, keys)
                where = key_path or "the station's keyring"
                result.created.append(f"{len(created)} device key(s) in {where}")
    finally:
        store.close()
    if not args.json:
        what = ", ".join(result.created) if result.created else "nothing new"
        if len(result.created) > 6 and not args.verbose:
            what = f"{len(result.created)} changes (-v lists them)"
        print(f"registered in {store.description}: {what}", file=out)
        for note in result.notes:
            print(f"  note: {note}", file=out)
    return keys


def _fallback_key_file(settings: Settings, err: TextIO) -> str | None:
    """None when the station's keyring works (keys go there); else ``<home>/simulator-keys.json``
    (mode 0600), said plainly on stderr: the simulator is a test tool, the station's own
    secrets never fall back to a file."""
    status = SecretStore.for_settings(settings).status()
    if status.available:
        return None
    path = str(settings.home / KEY_FILE_NAME)
    print(f"vitalstation-sim: note: {status.description}; the REST device keys are kept in "
          f"{path} (readable by you only) instead. Give --key-file PATH to choose the file.",
          file=err)
    return path


def _rest_keys(
    settings: Settings, config: SimulationConfig, key_path: str | None, out: TextIO
) -> dict[str, str]:
    """The REST keys: from ``--key-file``, else from the station's keyring."""
    if key_path is not None:
        if not os.path.exists(key_path):
            raise KeyFileError(f"no key file {key_path}")
        return load_key_file(key_path)
    keys, moved = load_keyring_keys(settings, _registered_devices(config))
    if moved:
        print(f"note: {moved}", file=out)
    if not keys:
        raise _Usage(
            "--transport rest needs a device key per device: run with --register (issues keys "
            "and keeps them in the station's keyring) or give --key-file with "
            '{"DEVICE_ID": "KEY"}'
        )
    return keys


def _line(name: str, c: Counts) -> str:
    text = (
        f"{name}: sent {c.sent}, acknowledged {c.acknowledged}, failed {c.failed}, "
        f"expected refusals {c.expected_refusals}"
    )
    if c.pending:
        text += f", pending {c.pending}"
    return text


def _print_summary(stats: SimulationStats, config: SimulationConfig, verbose: bool,
                   out: TextIO) -> None:
    totals = stats.totals
    print(
        f"{_line(stats.transport, totals)} ({totals.readings} readings; "
        f"{stats.simulated_seconds:.0f} simulated s in {stats.elapsed_seconds:.1f} s)",
        file=out,
    )
    if verbose:
        for device, counts in sorted(stats.devices.items()):
            print("  " + _line(device, counts), file=out)
    if stats.errors:
        print("errors:", file=out)
        for text, count in stats.errors:
            print(f"  {count} x {text}", file=out)
    if stats.fatal:
        print(f"stopped: {stats.fatal}", file=out)
    print(
        f"seed {config.seed}, start {config.start_time.isoformat()} "
        f"(--seed {config.seed} --start-time {config.start_time.isoformat()} repeats the "
        f"payloads)",
        file=out,
    )


def _on_sigterm(stop: Callable[[], None]):
    """SIGTERM ends the run like Ctrl-C (summary printed); returns the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: stop())


def main(
    argv: Sequence[str] | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the simulator; returns the exit code (0 ok, 1 failures, 2 usage)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _config(args)
        now = clock()
        config = config.resolved(now)
        settings = load_settings(resolve_home(args.home))
        key_path = args.key_file
        if args.transport == "rest" and key_path is None:
            key_path = _fallback_key_file(settings, err)
        keys: dict[str, str] | None = None
        if args.register:
            keys = _register(settings, config, args, now, key_path, out)
        if args.transport == "rest" and keys is None:
            keys = _rest_keys(settings, config, key_path, out)
        if keys is not None:
            missing = [d for d in _registered_devices(config) if d not in keys]
            if missing:
                raise _Usage(
                    f"no API key for {', '.join(missing)} in "
                    f"{key_path or 'the station keyring'}: run with --register "
                    "or add them to the key file"
                )
        options = TargetOptions(
            url=args.url, broker=args.broker, inbox=args.inbox, stream=args.stream,
            region=args.region, endpoint_url=args.endpoint_url,
            create_stream=args.create_stream, qos=args.qos, mqtt_version=args.mqtt_version,
            topic_prefix=args.topic_prefix, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
            tls_key=args.tls_key, username=args.username,
            password=args.password or os.environ.get(PASSWORD_ENV) or None,
        )
        transport = build_transport(args.transport, settings, options, keys)
    except _Usage as exc:
        print(f"vitalstation-sim: {exc}", file=err)
        return EXIT_USAGE
    except (ConfigError, UserError, KeyFileError, TransportError) as exc:
        print(f"vitalstation-sim: {exc}", file=err)
        return EXIT_FAILED

    simulation = Simulation(config, transport, clock=clock)
    if not args.json:
        length = (
            "until Ctrl-C" if config.duration is None
            else f"{config.duration:g} s" + (
                f" x {config.rate_multiplier:g} = {config.span:g} simulated s"
                if config.rate_multiplier != 1 else ""
            )
        )
        scenarios = ", ".join(str(s) for s in config.scenarios) or "stable"
        print(
            f"vitalstation-sim: {config.beds} beds ({config.model}; {scenarios}), "
            f"{'load, ' if config.load else ''}{length}, {transport.name} -> {transport.target}",
            file=out,
        )
    previous = _on_sigterm(simulation.request_stop)
    simulation.start()
    try:
        while not simulation.wait(0.25):
            pass
    except KeyboardInterrupt:
        simulation.stop()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    stats = simulation.stats()
    if args.json:
        print(json.dumps(stats.as_dict()), file=out)
    else:
        _print_summary(stats, simulation.config, args.verbose, out)
    if stats.fatal:
        print(f"vitalstation-sim: {stats.fatal}", file=err)
    return EXIT_OK if stats.ok else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

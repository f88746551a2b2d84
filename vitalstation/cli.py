"""The ``vitalstation`` command line (a contract: DESIGN.md's command table).

User mistakes print one clear line on stderr and exit non-zero, never a traceback. ``--json``
prints one JSON object per line, for scripts and tests.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vitalstation import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CliError(Exception):
    """A usage mistake found after argument parsing (bad time, conflicting options)."""


def parse_when(text: str, now: datetime) -> datetime:
    """A time given on the command line: ISO-8601 (naive = UTC) or an age like ``90m``, ``2h``."""
    match = _RELATIVE.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"{text!r} is not a time: use ISO-8601 (2026-11-23T08:00:00Z) or an age (30m, 2h, 1d)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="vitalstation",
        description="VitalStation: the ward's central station for live vital signs and alarms.",
    )
    parser.add_argument("--version", action="version", version=f"vitalstation {__version__}")
    parser.add_argument(
        "--home", metavar="DIR",
        help="data home (vitalstation.toml, database, inbox, logs); default $VITALSTATION_HOME "
             "or the platform's user data directory",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--self-test", action="store_true",
        help="check this installation end to end (inputs, store, alarm, window) on a temporary "
             "data home, or in an empty --home DIR, and exit: 0 when every step passed",
    )
    parser.add_argument(
        "--demo", dest="window_demo", action="store_true",
        help="with no command: open the window with simulated beds (MQTT, REST, file drop)",
    )
    parser.add_argument(
        "--screenshot", metavar="FILE",
        help="with no command: render the window offscreen, save it as PNG and exit",
    )
    parser.add_argument(
        "--after", metavar="S", type=float, default=3.0,
        help="with --screenshot: seconds to wait before the picture (default 3)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the station without a window until SIGINT/SIGTERM"
    )
    serve.add_argument(
        "--demo", action="store_true",
        help="also start the built-in simulator: 6 beds over MQTT, REST and file drop",
    )

    db = commands.add_parser("db", help="the database").add_subparsers(dest="db_command",
                                                                        required=True)
    db.add_parser("upgrade", help="bring the database schema up to date")
    db.add_parser("status", help="show the database and its schema revision")

    patient = commands.add_parser("patient", help="patients").add_subparsers(
        dest="patient_command", required=True)
    p_add = patient.add_parser("add", help="register a patient")
    p_add.add_argument("patient_id", metavar="ID", help="the hospital's patient id, e.g. P123")
    p_add.add_argument("--name", required=True)
    _actor(p_add)
    p_list = patient.add_parser("list", help="list patients and their beds")
    _json(p_list)

    bed = commands.add_parser("bed", help="beds").add_subparsers(dest="bed_command", required=True)
    b_add = bed.add_parser("add", help="register a bed")
    b_add.add_argument("label", metavar="LABEL")
    b_add.add_argument("--ward")
    _actor(b_add)
    b_list = bed.add_parser("list", help="list beds and who is in them")
    _json(b_list)

    admit = commands.add_parser("admit", help="admit a patient to a bed")
    admit.add_argument("patient_id", metavar="PATIENT")
    admit.add_argument("bed", metavar="BED")
    admit.add_argument("--at", help="admission time (default now)")
    _actor(admit)

    discharge = commands.add_parser("discharge", help="discharge a patient from their bed")
    discharge.add_argument("patient_id", metavar="PATIENT")
    discharge.add_argument("--at", help="discharge time (default now)")
    _actor(discharge)

    device = commands.add_parser("device", help="devices").add_subparsers(
        dest="device_command", required=True)
    d_add = device.add_parser("add", help="register a device by the id it sends")
    d_add.add_argument("device_id", metavar="DEVICE_ID")
    d_add.add_argument("--name", default="")
    d_add.add_argument("--type", dest="device_type", default="")
    _actor(d_add)
    d_assign = device.add_parser("assign", help="assign a device to a bed or a patient")
    d_assign.add_argument("device_id", metavar="DEVICE_ID")
    target = d_assign.add_mutually_exclusive_group(required=True)
    target.add_argument("--bed")
    target.add_argument("--patient")
    target.add_argument("--none", action="store_true", help="unassign the device")
    d_assign.add_argument("--at", help="from when (default now)")
    _actor(d_assign)
    d_status = device.add_parser("status", help="set a device's status (retired: refused)")
    d_status.add_argument("device_id", metavar="DEVICE_ID")
    d_status.add_argument("status", choices=["active", "inactive", "maintenance", "retired"])
    _actor(d_status)
    d_list = device.add_parser(
        "list", help="list registered devices, then devices seen but not registered")
    _json(d_list)
    key = device.add_parser("key", help="device API keys (REST)").add_subparsers(
        dest="key_command", required=True)
    k_create = key.add_parser("create", help="issue a key for a device; printed once")
    k_create.add_argument("device_id", metavar="DEVICE_ID")
    k_create.add_argument("--name", required=True, help="what the key is for, e.g. 'Primary'")
    k_create.add_argument("--expires-days", type=float, metavar="D",
                          help="expires D days from now (default: never)")
    k_create.add_argument("--no-write", action="store_true",
                          help="may not write vitals (status checks only)")
    k_create.add_argument("--read-patient", action="store_true",
                          help="may read the device's patient")
    _json(k_create)
    _actor(k_create)
    k_list = key.add_parser("list", help="list keys (never the keys themselves)")
    k_list.add_argument("device_id", metavar="DEVICE_ID", nargs="?")
    _json(k_list)
    k_revoke = key.add_parser("revoke", help="revoke a key by its prefix")
    k_revoke.add_argument("prefix", metavar="PREFIX")
    _actor(k_revoke)
    k_rotate = key.add_parser(
        "rotate", help="replace a key: same name, permissions and expiry; the old one revoked")
    k_rotate.add_argument("prefix", metavar="PREFIX")
    _json(k_rotate)
    _actor(k_rotate)

    inbox = commands.add_parser(
        "process-inbox",
        help="one file-drop pass: store the inbox's files, archive or fail each; "
             "exit code 1 if any file failed",
    )
    inbox.add_argument("--cleanup", action="store_true",
                       help="also remove archive day folders older than --cleanup-days")
    inbox.add_argument("--cleanup-days", type=int, metavar="N",
                       help="archive retention in days (default filedrop.retention_days)")

    readings = commands.add_parser("readings", help="print stored readings")
    readings.add_argument("--device", required=True, metavar="ID")
    readings.add_argument("--since", metavar="T", help="ISO-8601 time or an age (30m, 2h, 1d)")
    readings.add_argument("--limit", type=int, metavar="N")
    _json(readings)

    alarms = commands.add_parser(
        "alarms",
        help="print stored alarms; ack, respond, pause reach the running station's engine",
    )
    alarms.add_argument("--active", action="store_true", help="only alarms not resolved")
    alarms.add_argument("--bed", metavar="B", help="only this bed's alarms")
    alarms.add_argument("--limit", type=int, default=1000, metavar="N")
    _json(alarms)
    alarm_commands = alarms.add_subparsers(dest="alarms_command", metavar="ACTION")
    a_ack = alarm_commands.add_parser("ack", help="acknowledge an open alarm by its id")
    a_ack.add_argument("alarm_id", type=int, metavar="ID")
    _actor(a_ack)
    a_respond = alarm_commands.add_parser(
        "respond", help="record the patient's answer to an alarm's question"
    )
    a_respond.add_argument("alarm_id", type=int, metavar="ID")
    a_respond.add_argument("--answer", required=True,
                           choices=["doctor", "nurse", "ems", "all", "declined"])
    _actor(a_respond)
    a_pause = alarm_commands.add_parser(
        "pause", help="pause the audio of one alarm, or of every sounding alarm"
    )
    a_pause.add_argument("alarm_id", type=int, nargs="?", metavar="ID")
    a_pause.add_argument("--minutes", type=float, help="default 2, at most 5")
    _actor(a_pause)
    a_notes = alarm_commands.add_parser(
        "notifications", help="the notification outbox: recipients and delivery state"
    )
    a_notes.add_argument("--alarm", type=int, metavar="ID", help="only this alarm's")
    a_notes.add_argument("--status", choices=["pending", "delivered", "failed"])
    a_notes.add_argument("--limit", type=int, default=200, metavar="N")
    _json(a_notes)
    a_contact = alarm_commands.add_parser(
        "contact", help="who escalations reach: contacts per ward or per patient"
    )
    contact_commands = a_contact.add_subparsers(dest="contact_command", metavar="ACTION",
                                                required=True)
    c_add = contact_commands.add_parser("add", help="add a contact")
    c_add.add_argument("--role", required=True, choices=["nurse", "doctor", "ems"])
    c_add.add_argument("--channel", required=True, choices=["email", "webhook"])
    c_add.add_argument("--address", required=True, help="email address or webhook URL")
    c_scope = c_add.add_mutually_exclusive_group()
    c_scope.add_argument("--ward", help="this ward's (default: every ward)")
    c_scope.add_argument("--patient", help="this patient's")
    _actor(c_add)
    c_list = contact_commands.add_parser("list", help="list contacts")
    _json(c_list)
    c_remove = contact_commands.add_parser("remove", help="remove a contact by id")
    c_remove.add_argument("contact_id", type=int, metavar="ID")
    _actor(c_remove)

    audit = commands.add_parser(
        "audit",
        help="who did what: the audit log and people's alarm actions, newest first",
        description="Who did what, newest first: the register, settings, keys, limit "
                    "overrides, NEWS2 entries and contacts (the audit log), with every alarm "
                    "step a person took (acknowledged, paused, answered, escalated). With "
                    "--alarm ID: that alarm's whole trail instead, the station's own steps "
                    "(raised, asked, escalated on time-out, resolved) included, oldest first.",
    )
    audit.add_argument("--since", metavar="T", help="ISO-8601 time or an age (30m, 2h, 1d)")
    audit.add_argument("--until", metavar="T", help="ISO-8601 time or an age (before it)")
    audit.add_argument("--actor", metavar="NAME",
                       help="only what NAME did, exactly as recorded (e.g. cli:root)")
    audit.add_argument("--alarm", type=int, metavar="ID",
                       help="every step of this alarm instead (see `vitalstation alarms`)")
    audit.add_argument("--limit", type=int, metavar="N",
                       help="at most N entries, the newest (default 200)")
    _json(audit)

    secret = commands.add_parser(
        "secret", help="passwords and keys in the OS keyring (the window: Settings)"
    )
    secret_commands = secret.add_subparsers(dest="secret_command", metavar="ACTION",
                                            required=True)
    secret_commands.add_parser("status", help="where secrets are kept and which are set")
    s_set = secret_commands.add_parser(
        "set", help="store a secret, typed without echo (or read from stdin)"
    )
    s_set.add_argument("name", help="e.g. mqtt.password, aws.secret_access_key, smtp.password "
                                    "(`secret status` lists them)")
    _actor(s_set)
    s_delete = secret_commands.add_parser("delete", help="remove a secret from the keyring")
    s_delete.add_argument("name")
    _actor(s_delete)
    return parser


def _json(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="one JSON object per line")


def _actor(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--actor", default=None, help="who makes the change (for the audit log)")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _print_json_lines(items: Iterable[dict[str, Any]]) -> None:
    for item in items:
        print(json.dumps({k: _jsonable(v) for k, v in item.items()}, ensure_ascii=False))


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    texts = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in texts]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in texts:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _as_dict(item: Any) -> dict[str, Any]:
    assert is_dataclass(item) and not isinstance(item, type)
    return asdict(item)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vitalstation`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        if args.command is not None:
            parser.error("--self-test runs alone, without a command")
        return _self_test(args)
    if args.command is None and args.after < 0:
        parser.error("--after must not be negative")
    # Imported here so that `--version` and `--help` answer without loading the station.
    from vitalstation.config.secrets import SecretStoreError
    from vitalstation.config.settings import ConfigError
    from vitalstation.domain.errors import UserError

    try:
        return _run(args)
    except (UserError, ConfigError, CliError, SecretStoreError) as exc:
        print(f"vitalstation: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _self_test(args: argparse.Namespace) -> int:
    """``--self-test``: the app layer's steps, with the Qt window step handed down to it."""
    from pathlib import Path

    from vitalstation.app.selftest import run_self_test

    if args.verbose:
        from vitalstation.app.logging_setup import configure_logging

        configure_logging(None, verbose=True)
    else:
        # The steps report what matters; the station's own warnings (alarm notifications of
        # the test patient, ...) would bury them. Errors still show.
        import logging

        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    def render(runtime: Any, png: Path) -> str:
        # Imported in the step, so that a bundle without Qt fails that step, by name.
        from vitalstation.ui.selftest_render import render_station_window

        return render_station_window(runtime, png)

    home = Path(args.home) if args.home else None
    return run_self_test(sys.stdout, home=home, render=render)


def _run(args: argparse.Namespace) -> int:
    from vitalstation.app.logging_setup import configure_logging
    from vitalstation.config.home import ensure_home, resolve_home
    from vitalstation.config.settings import load_settings

    home = ensure_home(resolve_home(args.home))
    settings = load_settings(home)
    if args.command is None:
        # The window: imported here so that every other command runs without Qt.
        from pathlib import Path

        from vitalstation.ui.app import run_window

        configure_logging(home, verbose=args.verbose)
        screenshot = Path(args.screenshot).resolve() if args.screenshot else None
        return run_window(settings, demo=args.window_demo, screenshot=screenshot,
                          after_s=args.after)
    if args.command == "serve":
        from vitalstation.app.serve import serve

        configure_logging(home, verbose=args.verbose)
        return serve(settings, demo=args.demo)

    configure_logging(None, verbose=args.verbose)
    if args.command == "process-inbox":
        return _process_inbox(args, settings)
    from vitalstation.app.admin import open_store

    now = datetime.now(UTC)
    store = open_store(settings)
    try:
        if args.command == "alarms":
            return _alarms(args, settings, store)
        if args.command == "audit":
            return _audit(args, store, now)
        if args.command == "secret":
            return _secret(args, settings, store)
        return _admin(args, settings, store, now)
    finally:
        store.close()


def _secret(args: argparse.Namespace, settings: Any, store: Any) -> int:
    """``vitalstation secret status|set|delete``: the OS keyring of this data home."""
    from vitalstation.app.settings_admin import AdminService
    from vitalstation.config.secrets import KNOWN_SECRETS, SecretStore, env_variable

    secrets = SecretStore.for_settings(settings)
    if args.secret_command == "status":
        status = secrets.status()
        print(status.description)
        if not status.available:
            return EXIT_ERROR
        for name, what in KNOWN_SECRETS.items():
            state = "set" if secrets.get(name) else "not set"
            print(f"  {name:<24} {state:<8} {what}")
        return EXIT_OK
    try:
        env_variable(args.name)  # checks the name
    except ValueError as exc:
        raise CliError(str(exc)) from None
    admin = AdminService(store, secrets, actor=args.actor or _default_actor())
    if args.secret_command == "delete":
        if not admin.delete_secret(args.name):
            print(f"secret {args.name} was not set")
            return EXIT_ERROR
        print(f"secret {args.name} deleted")
        return EXIT_OK
    if sys.stdin.isatty():
        value = getpass.getpass(f"{args.name}: ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise CliError(f"no value given for {args.name}; nothing stored")
    admin.set_secret(args.name, value)
    print(f"secret {args.name} stored in the keyring (restart the station to use it)")
    return EXIT_OK


def _admin(  # noqa: C901 - a dispatch
    args: argparse.Namespace, settings: Any, store: Any, now: datetime
) -> int:
    registry = store.registry
    actor = getattr(args, "actor", None) or _default_actor()
    at = parse_when(args.at, now) if getattr(args, "at", None) else now

    if args.command == "db":
        if args.db_command == "upgrade":
            print(f"database {store.description} is at schema {store.schema_revision()} (latest)")
        else:
            print(f"database: {store.description}")
            print(f"schema:   {store.schema_revision()}")
        return EXIT_OK

    if args.command == "patient":
        if args.patient_command == "add":
            registry.add_patient(args.patient_id, args.name, actor=actor, at=now)
            print(f"patient {args.patient_id.strip()} added")
            return EXIT_OK
        patients = registry.list_patients()
        if args.json:
            _print_json_lines(_as_dict(p) for p in patients)
        else:
            _print_table(["PATIENT", "NAME", "BED", "ADMITTED"],
                         [(p.patient_id, p.name, p.bed, p.admitted_at) for p in patients])
        return EXIT_OK

    if args.command == "bed":
        if args.bed_command == "add":
            registry.add_bed(args.label, args.ward, actor=actor, at=now)
            print(f"bed {args.label.strip()} added")
            return EXIT_OK
        beds = registry.list_beds()
        if args.json:
            _print_json_lines(_as_dict(b) for b in beds)
        else:
            _print_table(["BED", "WARD", "PATIENT", "NAME"],
                         [(b.label, b.ward, b.patient_id, b.patient_name) for b in beds])
        return EXIT_OK

    if args.command == "admit":
        registry.admit(args.patient_id, args.bed, actor=actor, at=at)
        print(f"patient {args.patient_id} admitted to bed {args.bed}")
        return EXIT_OK

    if args.command == "discharge":
        bed = registry.discharge(args.patient_id, actor=actor, at=at)
        print(f"patient {args.patient_id} discharged from bed {bed}")
        return EXIT_OK

    if args.command == "device":
        if args.device_command == "key":
            return _device_key(args, settings, store, actor, now)
        return _device(args, registry, actor, at, now)

    if args.command == "readings":
        since = parse_when(args.since, now) if args.since else None
        records = store.queries.readings(device_id=args.device, since=since, limit=args.limit)
        if args.json:
            _print_json_lines(
                {
                    "id": r.id, "device_id": r.device_id, "vital": r.vital, "value": r.value,
                    "unit": r.unit, "original_value": r.original_value,
                    "original_unit": r.original_unit, "measured_at": r.measured_at,
                    "received_at": r.received_at, "input": r.input,
                    "data_source": r.data_source, "attribution": r.attribution,
                    "patient_id": r.patient_id, "bed": r.bed,
                }
                for r in records
            )
        else:
            _print_table(
                ["MEASURED (UTC)", "VITAL", "VALUE", "UNIT", "SENT AS", "INPUT", "PATIENT", "BED"],
                [
                    (r.measured_at, r.vital, r.value, r.unit,
                     f"{r.original_value:g} {r.original_unit}", r.input, r.patient_id, r.bed)
                    for r in records
                ],
            )
        return EXIT_OK
    raise CliError(f"unknown command {args.command}")


def _alarms(args: argparse.Namespace, settings: Any, store: Any) -> int:
    from vitalstation.app import alarms

    if args.alarms_command in ("notifications", "contact"):
        from vitalstation.app.notifications import contacts_command, notifications_command

        if args.alarms_command == "contact":
            rows = contacts_command(args, store,
                                    actor=getattr(args, "actor", None) or _default_actor())
        else:
            rows = notifications_command(args, store)
        if getattr(args, "json", False):
            _print_json_lines(rows)
        else:
            for row in rows:
                print("  ".join(f"{k}={v}" for k, v in row.items() if k != "payload"))
        return EXIT_OK
    if args.alarms_command in ("ack", "respond", "pause"):
        actor = args.actor or _default_actor()
        payload: dict[str, Any] = {"alarm": args.alarm_id, "actor": actor, "origin": "cli"}
        if args.alarms_command == "respond":
            payload["answer"] = args.answer
        if args.alarms_command == "pause":
            payload["minutes"] = args.minutes
        outcome = alarms.request_action(settings, store, args.alarms_command, payload)
        if not outcome.ok:
            raise CliError(outcome.error or "refused")
        by = ("by the running station" if outcome.applied_by == "station"
              else "to the stored alarms (no station running)")
        events = ", ".join(
            f"{t['event']} (alarm {t['alarm_id']}, {t['to_state']})" for t in outcome.transitions
        ) or "nothing changed (already done)"
        target = "every sounding alarm" if args.alarm_id is None else f"alarm {args.alarm_id}"
        print(f"{args.alarms_command} {target} by {actor}, applied {by}: {events}")
        return EXIT_OK
    rows = alarms.list_alarms(
        store, active_only=args.active, bed_label=args.bed, limit=args.limit
    )
    if args.json:
        _print_json_lines(row.to_dict() for row in rows)
    else:
        _print_table(
            ["ID", "RAISED (UTC)", "PRIORITY", "STATE", "BED", "PATIENT", "CONDITION", "VALUE",
             "MESSAGE"],
            [
                (r.id, r.raised_at, r.priority, r.state, r.bed, r.patient_id, r.condition,
                 r.value, r.message)
                for r in rows
            ],
        )
    return EXIT_OK


def _audit(args: argparse.Namespace, store: Any, now: datetime) -> int:
    """``vitalstation audit``: the trail of people's actions, or one alarm's every step."""
    from vitalstation.app import audit

    if args.alarm is not None:
        given = [f"--{name}" for name in ("since", "until", "actor", "limit")
                 if getattr(args, name) is not None]
        if given:
            raise CliError(f"--alarm lists that alarm's whole trail; leave out {', '.join(given)}")
        entries, limit = audit.alarm_trail(store, args.alarm), None
    else:
        limit = audit.DEFAULT_LIMIT if args.limit is None else args.limit
        if limit < 1:
            raise CliError(f"--limit must be at least 1, not {limit}")
        since = parse_when(args.since, now) if args.since else None
        until = parse_when(args.until, now) if args.until else None
        if since is not None and until is not None and until <= since:
            raise CliError("--until must be after --since")
        entries = audit.audit_entries(store, since=since, until=until, actor=args.actor,
                                      limit=limit)
    if args.json:
        _print_json_lines(entry.to_dict() for entry in entries)
    else:
        _print_table(
            ["AT (UTC)", "ACTOR", "ORIGIN", "ACTION", "SUBJECT", "DETAILS"],
            [(e.at, e.actor, e.origin or None, e.action, audit.subject_text(e),
              audit.details_text(e))
             for e in entries],
        )
    if limit is not None and len(entries) == limit:
        print(f"(the newest {limit}: --since, --until or --limit for others)", file=sys.stderr)
    return EXIT_OK


def _process_inbox(args: argparse.Namespace, settings: Any) -> int:
    from vitalstation.app.inbox import format_report, run_inbox_pass

    if args.cleanup_days is not None and not args.cleanup:
        raise CliError("--cleanup-days N goes with --cleanup (nothing is removed without it)")
    days = None
    if args.cleanup:
        days = settings.filedrop.retention_days if args.cleanup_days is None else args.cleanup_days
        if days < 1:
            raise CliError(f"--cleanup-days must be at least 1, not {days}")
    report = run_inbox_pass(settings, cleanup_days=days)
    for line in format_report(report):
        print(line)
    return report.exit_code


def _print_new_key(new: Any, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps({"key": new.key, "prefix": new.prefix}))
        return
    expires = new.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC") if new.expires_at else "never"
    permissions = ", ".join(
        name for name, granted in (("write vitals", new.can_write_vitals),
                                   ("read patient", new.can_read_patient)) if granted
    ) or "status only"
    print(f"{what} key {new.prefix} for device {new.device_id} ({new.name})")
    print(f"  expires:     {expires}")
    print(f"  permissions: {permissions}")
    print()
    print(f"  API key: {new.key}")
    print()
    print("Store it in the device now: it is not shown again (only its hash is kept).")
    print(f"Devices send it as:  Authorization: Bearer {new.key}")


def _device_key(
    args: argparse.Namespace, settings: Any, store: Any, actor: str, now: datetime
) -> int:
    from vitalstation.app.keys import key_store

    keys = key_store(store, settings)
    if args.key_command == "create":
        new = keys.create(
            args.device_id, name=args.name, expires_days=args.expires_days,
            can_write_vitals=not args.no_write, can_read_patient=args.read_patient,
            actor=actor, at=now,
        )
        _print_new_key(new, args.json, "new")
        return EXIT_OK
    if args.key_command == "rotate":
        new = keys.rotate(args.prefix, actor=actor, at=now)
        if not args.json:
            print(f"key {args.prefix.strip()} revoked; replaced by {new.prefix}")
        _print_new_key(new, args.json, "new")
        return EXIT_OK
    if args.key_command == "revoke":
        from vitalstation.ingest.rest_auth import DEFAULT_KEY_CACHE_TTL_S

        device_id = keys.revoke(args.prefix, actor=actor, at=now)
        print(f"key {args.prefix.strip()} of device {device_id} revoked (a running station "
              f"refuses it within {DEFAULT_KEY_CACHE_TTL_S:g} seconds)")
        return EXIT_OK
    infos = keys.list(args.device_id, now=now)
    if args.json:
        _print_json_lines(_as_dict(k) for k in infos)
        return EXIT_OK
    _print_table(
        ["PREFIX", "DEVICE", "NAME", "STATE", "EXPIRES", "WRITE", "READ PATIENT", "LAST USED",
         "USES"],
        [(k.prefix, k.device_id, k.name, k.state, k.expires_at or "never",
          "yes" if k.can_write_vitals else "no", "yes" if k.can_read_patient else "no",
          k.last_used_at, k.use_count) for k in infos],
    )
    return EXIT_OK


def _device(
    args: argparse.Namespace, registry: Any, actor: str, at: datetime, now: datetime
) -> int:
    if args.device_command == "add":
        registry.add_device(
            args.device_id, name=args.name, device_type=args.device_type, actor=actor, at=now
        )
        print(f"device {args.device_id.strip()} added")
        return EXIT_OK
    if args.device_command == "assign":
        registry.assign_device(
            args.device_id, bed_label=args.bed, patient_id=args.patient, actor=actor, at=at
        )
        target = (f"bed {args.bed}" if args.bed else f"patient {args.patient}"
                  if args.patient else "nobody")
        print(f"device {args.device_id} assigned to {target}")
        return EXIT_OK
    if args.device_command == "status":
        registry.set_device_status(args.device_id, args.status, actor=actor, at=now)
        print(f"device {args.device_id} is now {args.status}")
        return EXIT_OK
    registered = registry.list_devices()
    unknown = registry.list_unknown_devices()
    if args.json:
        _print_json_lines({"registered": True, **_as_dict(d)} for d in registered)
        _print_json_lines({"registered": False, **_as_dict(u)} for u in unknown)
        return EXIT_OK
    _print_table(
        ["DEVICE", "NAME", "TYPE", "STATUS", "BED", "PATIENT", "LAST SEEN", "INPUT", "BATTERY"],
        [(d.device_id, d.name, d.device_type, d.status, d.bed, d.patient_id, d.last_seen_at,
          d.last_input, d.battery_level) for d in registered],
    )
    if unknown:
        print()
        print("Seen but not registered (register with `vitalstation device add ID`):")
        _print_table(
            ["DEVICE", "FIRST SEEN", "LAST SEEN", "INPUT", "READINGS"],
            [(u.device_id, u.first_seen_at, u.last_seen_at, u.last_input, u.reading_count)
             for u in unknown],
        )
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


"""Saving settings from the dialog: write the file (checked first), then apply at once by
restarting only the inputs whose settings or secrets changed, and by handing the alarm engine
its new limits, delays and escalation timeouts (no input restarts for those); say what waits
for a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from vitalstation.alarms.engine import AlarmEngine, AlarmPolicy
from vitalstation.alarms.escalation import EscalationPolicy, escalation_policy
from vitalstation.alarms.limits import AlarmProfile, Direction, alarm_profile
from vitalstation.alarms.model import Priority
from vitalstation.app.alarm_settings_audit import record_alarm_settings
from vitalstation.config.errors import ConfigError
from vitalstation.config.settings import Settings
from vitalstation.config.settings_file import changed_keys, preview_settings, save_settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.storage.store import Store

__all__ = [
    "AlarmSettingChange",
    "ApplyResult",
    "RestartsInputs",
    "affected_inputs",
    "alarm_engine",
    "alarm_setting_changes",
    "apply_settings",
    "check_settings",
]

_LOGGER = logging.getLogger(__name__)

# The inputs a changed section restarts. The embedded broker restarts only when its own
# settings (or whether it is used at all) change, and the MQTT input always with it: the input
# holds the broker it connects to.
_SECTION_INPUTS: dict[str, tuple[str, ...]] = {
    "rest": ("rest",),
    "filedrop": ("filedrop",),
    "kinesis": ("kinesis",),
    "mqtt": ("mqtt",),
    "embedded_broker": ("mqtt-broker", "mqtt"),
    "station": ("mqtt",),  # the status topic and default client id come from the name
    "secrets": ("mqtt", "kinesis"),
}
_BROKER_KEYS = {("mqtt", "url"), ("mqtt", "enabled")}
# Secrets by name prefix → the inputs that read them when they start.
_SECRET_INPUTS = {"mqtt.": ("mqtt",), "aws.": ("kinesis",)}
# Sections read once at start: a change there is saved and applies at the next start.
_AT_NEXT_START = ("store", "notifications", "dynamodb")


class RestartsInputs(Protocol):
    """What applying needs of the runtime (``Runtime`` has it)."""

    settings: Settings

    def restart_inputs(self, names: Iterable[str], settings: Settings | None = None
                       ) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class AlarmSettingChange:
    """One alarm setting changed by a save, for the audit log: ``what`` is the limit
    (``heart_rate.high.medium``), ``delay.<vital>``, ``escalation.<priority>`` or ``profile``;
    ``old`` and ``new`` as shown to the admin (``> 110``, ``15 s``, ``adult-ward``)."""

    what: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What saving did: the settings now in force, the keys that changed, the inputs
    restarted, the changed keys that apply only at the station's next start, and each alarm
    limit, delay or timeout changed (applied at once)."""

    settings: Settings
    changed: tuple[str, ...]
    restarted: tuple[str, ...]
    at_next_start: tuple[str, ...]
    alarm_changes: tuple[AlarmSettingChange, ...] = ()


def alarm_engine(settings: Settings, *, clock: Clock) -> AlarmEngine:
    """The alarm engine of ``settings``: its profile with the admin's limits and delays, and
    the escalation timeouts of ``[alarms]`` (ConfigError naming the key if they do not fit)."""
    return AlarmEngine(alarm_profile(settings), clock=clock,
                       policy=AlarmPolicy(escalation=escalation_policy(settings)))


def check_settings(
    home: str | os.PathLike[str],
    changes: Mapping[tuple[str, str], Any],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings ``changes`` would give, checked as the station checks them when it starts
    (the file's rules, then whether the alarm limits fit their profile); writes nothing.
    ConfigError naming the key when something is refused."""
    settings = preview_settings(home, changes, environ)
    alarm_profile(settings)
    escalation_policy(settings)
    return settings


def alarm_setting_changes(old: Settings, new: Settings) -> tuple[AlarmSettingChange, ...]:
    """Every limit, delay, escalation timeout (and the profile) that differs between the
    alarm settings of ``old`` and ``new``, as the engine sees them."""
    changes: list[AlarmSettingChange] = []
    if old.alarms.profile != new.alarms.profile:
        changes.append(AlarmSettingChange("profile", old.alarms.profile, new.alarms.profile))
    try:
        before, after = alarm_profile(old), alarm_profile(new)
    except (ValueError, ConfigError):
        before = after = None
    if before is not None and after is not None:
        changes.extend(_profile_changes(before, after))
    old_policy, new_policy = escalation_policy(old), escalation_policy(new)
    for priority in (Priority.HIGH, Priority.MEDIUM, Priority.LOW):
        was, now = old_policy.timeout(priority), new_policy.timeout(priority)
        if was != now:
            changes.append(AlarmSettingChange(f"escalation.{priority.value}",
                                              f"{was.total_seconds():g} s",
                                              f"{now.total_seconds():g} s"))
    return tuple(changes)


def _profile_changes(before: AlarmProfile, after: AlarmProfile) -> list[AlarmSettingChange]:
    changes: list[AlarmSettingChange] = []
    for kind in sorted({*before.limits, *after.limits}, key=lambda k: k.value):
        was, now = before.limits_for(kind), after.limits_for(kind)
        old_slots = {(lim.direction, lim.priority): lim for lim in (was.limits if was else ())}
        new_slots = {(lim.direction, lim.priority): lim for lim in (now.limits if now else ())}
        for direction in (Direction.LOW, Direction.HIGH):
            for priority in (Priority.HIGH, Priority.MEDIUM, Priority.LOW):
                a, b = old_slots.get((direction, priority)), new_slots.get((direction, priority))
                if a != b:
                    changes.append(AlarmSettingChange(
                        f"{kind.value}.{direction.value}.{priority.value}",
                        a.describe() if a else "none", b.describe() if b else "none"))
        old_delay = was.delay if was else None
        new_delay = now.delay if now else None
        if old_delay != new_delay:
            changes.append(AlarmSettingChange(
                f"delay.{kind.value}",
                f"{old_delay.total_seconds():g} s" if old_delay is not None else "none",
                f"{new_delay.total_seconds():g} s" if new_delay is not None else "none"))
    return changes


def _running_store(runtime: RestartsInputs) -> Store | None:
    try:
        store = getattr(runtime, "store", None)
    except RuntimeError:  # Runtime.store before start
        return None
    return store if isinstance(store, Store) else None


def _reconfigure_alarms(runtime: RestartsInputs, settings: Settings) -> bool:
    """Hands the running alarm engine its new profile and escalation policy; False when the
    runtime has no alarm service running (then they apply when it starts)."""
    try:
        service = getattr(runtime, "alarms", None)
    except RuntimeError:  # Runtime.alarms before start
        return False
    engine = getattr(service, "engine", None)
    if not isinstance(engine, AlarmEngine):
        return False
    policy: EscalationPolicy = escalation_policy(settings, engine.policy.escalation)
    engine.reconfigure(alarm_profile(settings), policy)
    return True


def affected_inputs(changed: Iterable[tuple[str, str]], secrets_changed: Iterable[str] = ()
                    ) -> list[str]:
    """The inputs to restart for these changed keys and secret names, without repeats."""
    names: list[str] = []
    for section, key in changed:
        names.extend(_SECTION_INPUTS.get(section, ()))
        if (section, key) in _BROKER_KEYS:
            names.append("mqtt-broker")
    for secret in secrets_changed:
        for prefix, inputs in _SECRET_INPUTS.items():
            if secret.startswith(prefix):
                names.extend(inputs)
    return list(dict.fromkeys(names))


def apply_settings(
    runtime: RestartsInputs,
    changes: Mapping[tuple[str, str], Any],
    *,
    secrets_changed: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> ApplyResult:
    """Saves ``changes`` (ConfigError naming the key if refused: then nothing is saved or
    restarted) and restarts the affected inputs; the others keep running. Blocking."""
    old = runtime.settings
    if changes:
        check_settings(old.home, changes, environ)  # refused: nothing written, nothing applied
        new = save_settings(old.home, changes, environ)
    else:
        new = old
    changed = sorted(changed_keys(old, new))
    alarm_changes = alarm_setting_changes(old, new) if any(
        section == "alarms" for section, _ in changed) else ()
    secrets_changed = tuple(secrets_changed)
    names = affected_inputs(changed, secrets_changed)
    if names:
        restarted = tuple(runtime.restart_inputs(names, new))
    else:
        runtime.settings = new
        restarted = ()
    if any(section == "alarms" for section, _ in changed):
        _reconfigure_alarms(runtime, new)
        store = _running_store(runtime)
        if store is not None:  # the caller audits these changes: only the new record here
            record_alarm_settings(store, new, clock=utc_now, audit_differences=False)
        for change in alarm_changes:
            _LOGGER.info("alarm setting %s: %s -> %s (applied at once)", change.what,
                         change.old, change.new)
    later = tuple(f"{s}.{k}" for s, k in changed if s in _AT_NEXT_START) + tuple(
        name for name in secrets_changed if name.startswith("store."))
    dotted = tuple(f"{s}.{k}" for s, k in changed)
    _LOGGER.info("settings saved: %s; restarted: %s; at next start: %s",
                 ", ".join(dotted + secrets_changed) or "nothing changed",
                 ", ".join(restarted) or "none", ", ".join(later) or "none")
    return ApplyResult(new, dotted, restarted, later, alarm_changes)

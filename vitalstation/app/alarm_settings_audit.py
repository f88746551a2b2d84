"""Alarm settings changed outside Settings are audited too.

Settings audits every limit, delay and escalation timeout it changes (``alarms.setting``). A
hand-edited ``vitalstation.toml`` or a ``VITALSTATION_ALARMS__*`` variable changes them as
surely, and a clinical-safety reviewer must be able to see when the limits a ward ran under
changed, whoever changed them. So the station records the alarm settings in force
(``alarms.settings_in_force``) at every start and after every save, and at start audits each
value that differs from the last record as an ``alarms.setting`` by :data:`OUTSIDE_SETTINGS`.
"""

from __future__ import annotations

from vitalstation.alarms.escalation import escalation_policy
from vitalstation.alarms.limits import alarm_profile
from vitalstation.alarms.model import Priority
from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock
from vitalstation.storage.register_admin import RegisterAdmin
from vitalstation.storage.store import Store

__all__ = [
    "IN_FORCE_ACTION",
    "OUTSIDE_SETTINGS",
    "alarm_settings_in_force",
    "record_alarm_settings",
]

IN_FORCE_ACTION = "alarms.settings_in_force"
SETTING_ACTION = "alarms.setting"
OUTSIDE_SETTINGS = "settings file or environment (not through Settings)"
_SUBJECT = "station"


def alarm_settings_in_force(settings: Settings) -> dict[str, str]:
    """Every alarm setting as the engine sees it, named as ``alarm_setting_changes`` names
    them: ``profile``, ``heart_rate.high.medium`` (a limit), ``delay.heart_rate``,
    ``escalation.high``."""
    values = {"profile": settings.alarms.profile}
    profile = alarm_profile(settings)
    for kind in sorted(profile.limits, key=lambda k: k.value):
        limits = profile.limits_for(kind)
        if limits is None:
            continue
        for limit in limits.limits:
            values[f"{kind.value}.{limit.direction.value}.{limit.priority.value}"] = (
                limit.describe())
        if limits.delay is not None:
            values[f"delay.{kind.value}"] = f"{limits.delay.total_seconds():g} s"
    policy = escalation_policy(settings)
    for priority in (Priority.HIGH, Priority.MEDIUM, Priority.LOW):
        values[f"escalation.{priority.value}"] = (
            f"{policy.timeout(priority).total_seconds():g} s")
    return values


def record_alarm_settings(store: Store, settings: Settings, *, clock: Clock,
                          audit_differences: bool = True) -> list[tuple[str, str, str]]:
    """Record the alarm settings in force; with ``audit_differences``, first audit each value
    that differs from the last record (the first record audits nothing: there is nothing to
    compare with). Returns the differences ``(what, old, new)``; writes nothing when nothing
    changed."""
    register = RegisterAdmin(store.engine)
    now = alarm_settings_in_force(settings)
    before = register.last_audit_details(IN_FORCE_ACTION, _SUBJECT)
    if before == now:
        return []
    differences: list[tuple[str, str, str]] = []
    if before is not None and audit_differences:
        for what in sorted({*before, *now}):
            old, new = str(before.get(what, "none")), now.get(what, "none")
            if old != new:
                differences.append((what, old, new))
    rows = [(OUTSIDE_SETTINGS, SETTING_ACTION, what, {"old": old, "new": new})
            for what, old, new in differences]
    rows.append(("station", IN_FORCE_ACTION, _SUBJECT, now))
    register.audit_many(clock(), rows)
    return differences

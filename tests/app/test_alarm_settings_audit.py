"""A limit, delay or escalation timeout changed by editing vitalstation.toml (or by a
VITALSTATION_ALARMS__* variable) is audited at the next start like a change made in Settings;
a change made in Settings is not audited twice; an unchanged start writes nothing."""

from __future__ import annotations

import json

import sqlalchemy

from vitalstation.app.alarm_settings_audit import IN_FORCE_ACTION, OUTSIDE_SETTINGS
from vitalstation.app.runtime import Runtime
from vitalstation.app.settings_apply import apply_settings
from vitalstation.config.settings import load_settings
from vitalstation.storage.schema import audit_log

_QUIET = "[rest]\nenabled = false\n[mqtt]\nenabled = false\n[filedrop]\nenabled = false\n"


def _run(home, environ=None) -> list[tuple[str, str, str, dict]]:
    """Start and stop a station on ``home``; its audit rows about alarm settings."""
    runtime = Runtime(load_settings(home, environ or {}))
    runtime.start()
    try:
        with runtime.store.engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.select(audit_log.c.actor, audit_log.c.action, audit_log.c.subject,
                                  audit_log.c.details)
                .where(audit_log.c.action.in_(["alarms.setting", IN_FORCE_ACTION]))
                .order_by(audit_log.c.id)
            ).all()
    finally:
        runtime.stop()
    return [(r.actor, r.action, r.subject, json.loads(r.details)) for r in rows]


def test_a_hand_edited_limit_is_audited_at_the_next_start(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "vitalstation.toml").write_text(_QUIET)
    first = _run(home)
    assert [(a, action) for a, action, _, _ in first] == [("station", IN_FORCE_ACTION)]
    assert first[0][3]["escalation.high"] == "120 s"

    (home / "vitalstation.toml").write_text(
        _QUIET + '[alarms]\nlimits = ["heart_rate.high.medium = 120"]\nescalation_high_s = 60\n')
    second = _run(home)[len(first):]
    changes = {subject: details for actor, action, subject, details in second
               if action == "alarms.setting" and actor == OUTSIDE_SETTINGS}
    assert changes["escalation.high"] == {"old": "120 s", "new": "60 s"}
    assert changes["heart_rate.high.medium"] == {"old": "> 110", "new": "> 120"}
    assert set(changes) == {"escalation.high", "heart_rate.high.medium"}
    assert second[-1][1] == IN_FORCE_ACTION

    assert _run(home) == first + second  # nothing changed: nothing written

    # The environment changes the settings as surely as the file does.
    third = _run(home, {"VITALSTATION_ALARMS__ESCALATION_HIGH_S": "90"})[len(first + second):]
    assert [(s, d) for _, action, s, d in third if action == "alarms.setting"] == [
        ("escalation.high", {"old": "60 s", "new": "90 s"})]


def test_a_change_saved_in_settings_is_not_audited_again_at_the_next_start(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "vitalstation.toml").write_text(_QUIET)
    runtime = Runtime(load_settings(home, {}))
    runtime.start()
    try:
        result = apply_settings(runtime, {("alarms", "escalation_high_s"): 45}, environ={})
        assert [c.what for c in result.alarm_changes] == ["escalation.high"]
    finally:
        runtime.stop()
    rows = _run(home)
    assert not [r for r in rows if r[0] == OUTSIDE_SETTINGS]
    assert rows[-1][3]["escalation.high"] == "45 s"

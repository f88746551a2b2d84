"""Saving settings from the dialog: write the file (checked first), then apply at once by
restarting only the inputs whose settings or secrets changed; say what waits for a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from vitalstation.config.settings import Settings
from vitalstation.config.settings_file import changed_keys, save_settings

__all__ = ["ApplyResult", "RestartsInputs", "affected_inputs", "apply_settings"]

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
_AT_NEXT_START = ("store", "alarms", "notifications", "dynamodb")


class RestartsInputs(Protocol):
    """What applying needs of the runtime (``Runtime`` has it)."""

    settings: Settings

    def restart_inputs(self, names: Iterable[str], settings: Settings | None = None
                       ) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What saving did: the settings now in force, the keys that changed, the inputs
    restarted, and the changed keys that apply only at the station's next start."""

    settings: Settings
    changed: tuple[str, ...]
    restarted: tuple[str, ...]
    at_next_start: tuple[str, ...]


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
    new = save_settings(old.home, changes, environ) if changes else old
    changed = sorted(changed_keys(old, new))
    secrets_changed = tuple(secrets_changed)
    names = affected_inputs(changed, secrets_changed)
    if names:
        restarted = tuple(runtime.restart_inputs(names, new))
    else:
        runtime.settings = new
        restarted = ()
    later = tuple(f"{s}.{k}" for s, k in changed if s in _AT_NEXT_START) + tuple(
        name for name in secrets_changed if name.startswith("store."))
    dotted = tuple(f"{s}.{k}" for s, k in changed)
    _LOGGER.info("settings saved: %s; restarted: %s; at next start: %s",
                 ", ".join(dotted + secrets_changed) or "nothing changed",
                 ", ".join(restarted) or "none", ", ".join(later) or "none")
    return ApplyResult(new, dotted, restarted, later)

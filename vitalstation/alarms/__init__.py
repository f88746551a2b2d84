"""Pure alarm logic: limits, priorities, technical alarms, NEWS2, states, escalation.

No I/O, no threads, no SQL, no Qt; time comes from an injected clock. The station wires it:
the pipeline feeds :class:`AlarmEngine` with :class:`AttributedReading` values and calls
:meth:`AlarmEngine.tick`; the store keeps each :class:`AlarmTransition` (the alarm row and the
event row) and its notifications; the window, the CLI and the REST receiver call the operator
actions. Everything the wiring needs is importable from here.
"""

from vitalstation.alarms.engine import (
    AlarmEngine,
    AlarmPolicy,
    AlarmRef,
    AttributedReading,
    Attribution,
    AudioPause,
    Discharge,
    EngineSnapshot,
)
from vitalstation.alarms.escalation import (
    ChainStage,
    ChainState,
    EscalationEvent,
    EscalationPolicy,
    Escalator,
    PatientAnswer,
)
from vitalstation.alarms.limits import (
    ADULT_WARD,
    BEDSIDE_MONITOR,
    CRITICAL_FLOOR,
    DEFAULT_PROFILE,
    INHEALTH,
    PROFILES,
    AlarmProfile,
    Direction,
    Limit,
    LimitBreach,
    LimitOverride,
    VitalLimits,
    above,
    below,
    get_profile,
)
from vitalstation.alarms.model import (
    Alarm,
    AlarmActionError,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    Channel,
    Notification,
    Priority,
    Role,
    TransitionKind,
    UnknownAlarm,
)
from vitalstation.alarms.news2 import (
    Consciousness,
    News2Inputs,
    News2Policy,
    News2Result,
    Risk,
    SpO2Scale,
    compute_news2,
)
from vitalstation.alarms.technical import TechnicalCondition, TechnicalPolicy

__all__ = [
    "ADULT_WARD", "BEDSIDE_MONITOR", "CRITICAL_FLOOR", "DEFAULT_PROFILE", "INHEALTH", "PROFILES",
    "Alarm", "AlarmActionError", "AlarmEngine", "AlarmKind", "AlarmPolicy", "AlarmProfile",
    "AlarmRef", "AlarmState", "AlarmTransition", "AttributedReading", "Attribution",
    "AudioPause", "ChainStage", "ChainState", "Channel", "Consciousness", "Direction", "Discharge",
    "EngineSnapshot", "EscalationEvent", "EscalationPolicy", "Escalator", "Limit",
    "LimitBreach", "LimitOverride", "News2Inputs", "News2Policy", "News2Result",
    "Notification", "PatientAnswer", "Priority", "Risk", "Role", "SpO2Scale",
    "TechnicalCondition", "TechnicalPolicy", "TransitionKind", "UnknownAlarm", "VitalLimits",
    "above", "below", "compute_news2", "get_profile",
]

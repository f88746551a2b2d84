"""VitalStation: a ward central station for live vital signs, alarms and escalation."""

__version__ = "0.1.0"

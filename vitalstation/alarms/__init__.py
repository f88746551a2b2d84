"""Pure alarm logic: limits, priorities, technical alarms, NEWS2, states, escalation."""

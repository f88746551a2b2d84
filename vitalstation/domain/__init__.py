"""Pure types and rules: vitals, units, readings, payload formats. Standard library only."""

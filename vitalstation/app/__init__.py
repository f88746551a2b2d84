"""The station runtime: built from settings, started and stopped in order; used by GUI and serve."""

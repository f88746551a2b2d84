"""Typed settings from vitalstation.toml, the data home, and secrets in the OS keyring."""

"""Bedside simulator: generates vital signs and sends them to a station by any of its inputs."""

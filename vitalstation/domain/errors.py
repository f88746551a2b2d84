"""Domain exceptions.

A payload error carries a per-field map, not one string: the seed answered every bad payload
with "Invalid vital signs data format", leaving integrators to guess which field was wrong.
"""

from __future__ import annotations


class PayloadError(ValueError):
    """A payload that cannot become readings; ``errors`` maps each bad field to why.

    Keys are field names as the device spelled them (``"heart_rate"``, ``"timestamp"``,
    ``"temperature_unit"``), or ``"body"`` when the payload as a whole is unreadable. Reasons are
    plain words, safe to send back to the device.
    """

    errors: dict[str, str]
    message: str

    def __init__(self, errors: dict[str, str], message: str | None = None) -> None:
        self.errors = dict(errors)
        self.message = message if message is not None else summarize(self.errors)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[PayloadError], tuple[dict[str, str], str]]:
        # ValueError pickles by its args (the message alone); keep the field map across processes.
        return (type(self), (self.errors, self.message))


def summarize(errors: dict[str, str], what: str = "reading") -> str:
    """One line naming every bad field, e.g. ``Invalid reading: heart_rate: must be a number``."""
    if not errors:
        return f"Invalid {what}"
    return f"Invalid {what}: " + "; ".join(f"{field}: {why}" for field, why in errors.items())


def describe_json_type(value: object) -> str:
    """Name a JSON value's type the way a device integrator would say it ("a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def quote(text: str, limit: int = 40) -> str:
    """Quote device text for a message, cut short so an error map stays small."""
    if len(text) > limit:
        return repr(text[:limit]) + "…"
    return repr(text)


class UserError(Exception):
    """A mistake or refusal to show to a person as it is (no traceback): names what and why.

    The register's conflicts, an unusable database URL, an unknown bed: the CLI prints the
    message and exits non-zero; the window shows it in a dialog.
    """

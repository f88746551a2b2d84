"""The one exception the config package raises, so callers can report it without a traceback."""

from __future__ import annotations

import os


class ConfigError(Exception):
    """An invalid configuration, naming the key, where it came from, and why.

    The CLI and the station print ``str(error)`` as one line an admin can act on, e.g.
    ``/x/vitalstation.toml, line 12: rest.port: expected an integer, got the string "80a"``, so
    every part that is known (file and line, or environment variable; key; reason) is in it.

    Attributes:
        reason: why the value is refused, without the location.
        key: the dotted key (``"rest.port"``), a section name, or None.
        origin: ``"/path/vitalstation.toml:12"``, the file alone when the line is unknown,
            ``"environment variable VITALSTATION_REST__PORT"``, or None.
        file, line, column, variable: the parts of ``origin``.
    """

    def __init__(
        self,
        reason: str,
        *,
        key: str | None = None,
        file: str | os.PathLike[str] | None = None,
        line: int | None = None,
        column: int | None = None,
        variable: str | None = None,
    ) -> None:
        self.reason = reason
        self.key = key
        self.file = os.fspath(file) if file is not None else None
        self.line = line
        self.column = column
        self.variable = variable
        if variable is not None:
            self.origin: str | None = f"environment variable {variable}"
        elif self.file is not None:
            self.origin = f"{self.file}:{line}" if line is not None else self.file
        else:
            self.origin = None
        super().__init__(self._render())

    def _render(self) -> str:
        location = None
        if self.variable is not None:
            location = f"environment variable {self.variable}"
        elif self.file is not None:
            location = self.file
            if self.line is not None:
                location += f", line {self.line}"
                if self.column is not None:
                    location += f", column {self.column}"
        return ": ".join(part for part in (location, self.key, self.reason) if part)

"""Saving settings: the admin's ``vitalstation.toml`` edited in place, validated before it is
written, written atomically.

Only the changed keys' values are rewritten; the admin's comments, order and untouched keys
stay as they were (a key's trailing comment too). A key that is absent is added at the end of
its section, a section that is absent at the end of the file. When the file's layout is beyond
this line editor (a key set in an inline table, say), the whole file is rewritten in the
documented layout with every value kept, rather than failing.

Nothing half-saved: the new text is loaded exactly as the station would load it (environment
overrides included) before the file is replaced; a refused value raises ``ConfigError``
naming the key, and the file is left untouched. Secrets never get here: no settings key holds
one, and a password inside a URL is refused with where to put it instead.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vitalstation.config.errors import ConfigError
from vitalstation.config.settings import (
    CONFIG_FILE_NAME,
    Settings,
    default_toml,
    load_settings,
    render_toml_value,
    settings_schema,
)

__all__ = ["changed_keys", "preview_settings", "save_settings", "updated_toml"]

Changes = Mapping[tuple[str, str], Any]

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_-]+)(\s*=\s*)")


def changed_keys(old: Settings, new: Settings) -> set[tuple[str, str]]:
    """The ``(section, key)`` pairs whose values differ between two settings."""
    changed = set()
    for section, keys in settings_schema().items():
        for key in keys:
            if getattr(getattr(old, section), key) != getattr(getattr(new, section), key):
                changed.add((section, key))
    return changed


def _scan(text: str) -> tuple[int, int | None]:
    """The bracket depth at the end of a TOML value, and where a comment after it starts.

    Strings are skipped (a ``#`` or ``]`` in a string is text); comments inside a multi-line
    array run to their line's end.
    """
    depth, quote, index = 0, "", 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            if depth <= 0:
                return depth, index
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        index += 1
    return depth, None


def _value_end(line: str, start: int) -> int:
    """Where the TOML value starting at ``start`` ends on this line (before a comment)."""
    comment = _scan(line[start:])[1]
    return len(line[: start + comment].rstrip()) if comment is not None else len(line.rstrip())


def _balanced(text: str) -> bool:
    """Whether the brackets of a (possibly multi-line) array value are closed."""
    return _scan(text)[0] <= 0


_ONE_LINE = 90


def _literal(key: str, value: Any) -> str:
    """A value as TOML; a list too long for one line gets one item per line (alarm limits)."""
    literal = render_toml_value(value)
    if not isinstance(value, tuple | list) or len(key) + 3 + len(literal) <= _ONE_LINE:
        return literal
    items = "".join(f"    {render_toml_value(item)},\n" for item in value)
    return f"[\n{items}]"


def _edit_lines(text: str, changes: Changes) -> str:
    lines = text.splitlines()
    pending = dict(changes)
    section: str | None = None
    last_key_line: dict[str, int] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        header = _HEADER.match(line)
        if header:
            section = header.group(1)
            last_key_line.setdefault(section, index)
            index += 1
            continue
        match = _KEY.match(line)
        if match and section is not None:
            end = index
            value_text = line[match.end():]
            while not _balanced(value_text) and end + 1 < len(lines):
                end += 1
                value_text += "\n" + lines[end]
            key = match.group(2)
            if (section, key) in pending:
                literal = _literal(key, pending.pop((section, key)))
                last = lines[end]
                comment_at = _value_end(last, 0 if end > index else match.end())
                comment = last[comment_at:]
                if comment.strip() and not comment.startswith(" "):
                    comment = " " + comment.lstrip()
                lines[index:end + 1] = [f"{match.group(0)}{literal}{comment.rstrip()}"]
                end = index
            last_key_line[section] = end
            index = end + 1
            continue
        index += 1
    for (name, key), value in pending.items():
        assignment = f"{key} = {_literal(key, value)}"
        if name in last_key_line:
            at = last_key_line[name] + 1
            lines.insert(at, assignment)
            last_key_line = {s: (i + 1 if i >= at else i) for s, i in last_key_line.items()}
            last_key_line[name] = at
        else:
            lines.extend(["", f"[{name}]", assignment])
            last_key_line[name] = len(lines) - 1
    return "\n".join(lines) + "\n"


def _render_whole(current: Mapping[str, Any], changes: Changes) -> str:
    """The documented layout with the file's values and the changes: the fallback."""
    values: dict[str, dict[str, Any]] = {}
    for name, table in current.items():
        if isinstance(table, dict):
            values[name] = dict(table)
    for (name, key), value in changes.items():
        values.setdefault(name, {})[key] = value
    text = default_toml()
    set_values = {(name, key): value for name, table in values.items()
                  for key, value in table.items()}
    return _edit_lines(text, set_values)


def updated_toml(text: str, changes: Changes) -> str:
    """``text`` with each ``(section, key)`` of ``changes`` set, comments and layout kept."""
    schema = settings_schema()
    for name, key in changes:
        if name not in schema or key not in schema[name]:
            raise ConfigError(f"no setting {name}.{key}", key=f"{name}.{key}")
    try:
        current = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        current = None
    if current is not None:
        edited = _edit_lines(text, changes)
        if _holds(edited, current, changes):
            return edited
    return _render_whole(current or {}, changes)


def _holds(text: str, before: Mapping[str, Any], changes: Changes) -> bool:
    """Whether ``text`` is ``before`` with exactly ``changes`` applied."""
    try:
        after = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    expected = {name: dict(table) if isinstance(table, dict) else table
                for name, table in before.items()}
    for (name, key), value in changes.items():
        expected.setdefault(name, {})[key] = list(value) if isinstance(value, tuple) else value
    return after == expected


def _url_password_problem(changes: Changes) -> None:
    for (name, key), value in changes.items():
        if isinstance(value, str) and "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                continue
            if password:
                raise ConfigError(
                    "a password inside the URL would be written to the file in clear; give the "
                    "URL without it and the password in its own field (kept in the OS keyring)",
                    key=f"{name}.{key}",
                )


def _preview(home: str | os.PathLike[str], changes: Changes,
             environ: Mapping[str, str] | None) -> tuple[Path, str, Settings]:
    path = Path(home) / CONFIG_FILE_NAME
    _url_password_problem(changes)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        text = default_toml()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file: {exc.strerror or exc}",
                          file=path) from None
    new_text = updated_toml(text, changes)
    return path, new_text, load_settings(home, environ, text=new_text)


def preview_settings(
    home: str | os.PathLike[str],
    changes: Changes,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings ``changes`` would give, checked as on saving, without writing anything."""
    return _preview(home, changes, environ)[2]


def save_settings(
    home: str | os.PathLike[str],
    changes: Changes,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Applies ``changes`` to ``<home>/vitalstation.toml`` and returns the settings now in force.

    Raises ConfigError (naming the key) when a value is refused; the file is then untouched.
    """
    path, new_text, settings = _preview(home, changes, environ)
    _write_atomically(path, new_text)
    return settings


def _write_atomically(path: Path, text: str) -> None:
    mode = None
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None and os.name == "posix":
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write the configuration file: {exc.strerror or exc}",
                          file=path) from None

"""The data home: the folder holding vitalstation.toml, the SQLite database, the inbox and logs.

One folder per station so that backing up, moving or wiping a station is one folder, and so that
tests and several stations on one machine can each point ``--home`` somewhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from vitalstation.config.errors import ConfigError
from vitalstation.config.settings import CONFIG_FILE_NAME, default_toml

__all__ = ["APP_NAME", "HOME_ENV_VAR", "ensure_home", "resolve_home"]

APP_NAME = "vitalstation"
HOME_ENV_VAR = "VITALSTATION_HOME"


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def resolve_home(
    cli_home: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The data home: ``--home``, else ``VITALSTATION_HOME``, else the platform's user data dir.

    ``~`` is expanded and the result made absolute, so a later ``chdir`` cannot move it. An
    empty ``VITALSTATION_HOME`` counts as unset (the shell idiom for clearing it); an empty
    ``--home`` is refused rather than silently meaning the default. Nothing is created here.
    """
    environ = os.environ if environ is None else environ
    if cli_home is not None:
        raw = os.fspath(cli_home)
        if not raw.strip():
            raise ConfigError("--home is empty; give the data home folder")
    elif environ.get(HOME_ENV_VAR, "").strip():
        raw = environ[HOME_ENV_VAR]
    else:
        raw = platformdirs.user_data_dir(APP_NAME, appauthor=False)
    return _absolute(raw)


def _blocking_file(home: Path) -> Path | None:
    """The nearest existing ancestor-or-self of ``home`` that is not a folder, if any."""
    for candidate in (home, *home.parents):
        if os.path.lexists(candidate):
            return None if candidate.is_dir() else candidate
    return None


def ensure_home(home: str | os.PathLike[str]) -> Path:
    """Creates the data home (private to the user where supported) and its default config file.

    The default file is written only when no ``vitalstation.toml`` exists: an admin's file is
    never overwritten, even by a newer default. Returns the absolute home. Raises ConfigError
    saying why when the folder cannot be created or the file cannot be written.
    """
    home = _absolute(home)
    blocking = _blocking_file(home)
    if blocking is not None:
        raise ConfigError(
            f"cannot use {home} as the data home: {blocking} is in the way and is not a folder"
        )
    created = not home.is_dir()
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if created and os.name == "posix":
            os.chmod(home, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise ConfigError(f"cannot create the data home {home}: {exc.strerror or exc}") from None
    config = home / CONFIG_FILE_NAME
    if os.path.lexists(config):
        return home
    try:
        # "x": create only; if another process wrote the file first, its file stands.
        handle = open(config, "x", encoding="utf-8", newline="\n")
    except FileExistsError:
        return home
    except OSError as exc:
        raise _write_error(config, exc) from None
    try:
        with handle:
            handle.write(default_toml())
    except OSError as exc:
        config.unlink(missing_ok=True)  # a half-written file would fail every later start
        raise _write_error(config, exc) from None
    return home


def _write_error(config: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot write the default configuration file: {exc.strerror or exc}", file=config
    )

"""The data home: where it is (--home, VITALSTATION_HOME, platform default) and its first start.

Only ``tmp_path`` is ever created; the platform default is compared, never created.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import platformdirs
import pytest

from vitalstation.config import home as home_module
from vitalstation.config.errors import ConfigError
from vitalstation.config.home import APP_NAME, ensure_home, resolve_home
from vitalstation.config.settings import (
    CONFIG_FILE_NAME,
    Settings,
    default_toml,
    load_settings,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
not_root = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions"
)


# --- resolve_home ----------------------------------------------------------------------------


def test_the_command_line_beats_the_environment(tmp_path: Path) -> None:
    environ = {"VITALSTATION_HOME": str(tmp_path / "env")}
    assert resolve_home(tmp_path / "cli", environ) == tmp_path / "cli"
    assert resolve_home(str(tmp_path / "cli"), environ) == tmp_path / "cli"


def test_the_environment_beats_the_platform_default(tmp_path: Path) -> None:
    assert resolve_home(None, {"VITALSTATION_HOME": str(tmp_path / "env")}) == tmp_path / "env"


def test_the_platform_user_data_dir_is_the_default() -> None:
    expected = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    assert APP_NAME == "vitalstation"
    assert resolve_home(None, {}) == expected
    assert resolve_home(None, {}).is_absolute()


def test_an_empty_environment_variable_counts_as_unset() -> None:
    default = resolve_home(None, {})
    assert resolve_home(None, {"VITALSTATION_HOME": ""}) == default
    assert resolve_home(None, {"VITALSTATION_HOME": "  "}) == default


def test_an_empty_command_line_home_is_refused() -> None:
    with pytest.raises(ConfigError, match="--home is empty"):
        resolve_home("", {})


def test_the_user_folder_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "user"))
    assert resolve_home("~/station", {}) == tmp_path / "user" / "station"
    assert resolve_home(None, {"VITALSTATION_HOME": "~/env"}) == tmp_path / "user" / "env"


def test_a_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_home("rel/home", {}) == tmp_path / "rel" / "home"
    assert resolve_home(None, {"VITALSTATION_HOME": "envrel"}) == tmp_path / "envrel"
    assert resolve_home("a/../b", {}) == tmp_path / "b"


def test_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALSTATION_HOME", str(tmp_path / "from-env"))
    assert resolve_home() == tmp_path / "from-env"


def test_resolving_creates_nothing(tmp_path: Path) -> None:
    resolve_home(tmp_path / "not-yet", {})
    assert not (tmp_path / "not-yet").exists()


# --- ensure_home -----------------------------------------------------------------------------


def test_ensure_home_creates_the_folder_and_the_default_file(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b" / "home"
    assert ensure_home(home) == home
    assert home.is_dir()
    config = home / CONFIG_FILE_NAME
    assert config.read_text(encoding="utf-8") == default_toml()
    # The file it writes is a working configuration: every default.
    assert load_settings(home, environ={}) == Settings(home=home)


@posix_only
def test_a_new_home_is_private_to_the_user(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        ensure_home(tmp_path / "home")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700


@posix_only
def test_an_existing_home_keeps_its_permissions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o750)
    ensure_home(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o750
    assert (home / CONFIG_FILE_NAME).exists()


def test_ensure_home_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ensure_home(home)
    config = home / CONFIG_FILE_NAME
    config.write_text("[rest]\nport = 9000\n", encoding="utf-8")
    ensure_home(home)
    ensure_home(home)
    assert config.read_text(encoding="utf-8") == "[rest]\nport = 9000\n"


def test_ensure_home_keeps_an_empty_or_broken_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / CONFIG_FILE_NAME
    config.write_text("", encoding="utf-8")
    ensure_home(home)
    assert config.read_text(encoding="utf-8") == ""
    config.write_text("this is [not toml", encoding="utf-8")
    ensure_home(home)
    assert config.read_text(encoding="utf-8") == "this is [not toml"


@posix_only
def test_ensure_home_leaves_a_symlinked_config_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / CONFIG_FILE_NAME).symlink_to(tmp_path / "managed" / "vitalstation.toml")
    ensure_home(home)
    assert not (tmp_path / "managed").exists()


def test_ensure_home_accepts_a_string_and_returns_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert ensure_home("rel") == tmp_path / "rel"  # type: ignore[arg-type]
    assert (tmp_path / "rel" / CONFIG_FILE_NAME).is_file()


def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        ensure_home(blocker)
    message = str(caught.value)
    assert f"cannot use {blocker} as the data home" in message
    assert "is in the way and is not a folder" in message
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_a_file_in_the_way_of_a_parent_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "parent"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{blocker.name} is in the way"):
        ensure_home(blocker / "home")


def test_permission_denied_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ConfigError) as caught:
        ensure_home(tmp_path / "home")
    assert (
        str(caught.value) == f"cannot create the data home {tmp_path / 'home'}: Permission denied"
    )


@not_root
def test_a_read_only_parent_is_a_clear_error(tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot create the data home .*Permission denied"):
            ensure_home(parent / "home")
    finally:
        parent.chmod(0o700)


class _FullDisk:
    """A file handle whose writes fail, as on a full disk."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "x", encoding="utf-8")

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def write(self, text: str) -> int:
        self._file.write(text[:10])
        self._file.flush()
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_leaves_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(home_module, "open", lambda path, *a, **k: _FullDisk(path), raising=False)
    home = tmp_path / "home"
    with pytest.raises(ConfigError) as caught:
        ensure_home(home)
    assert caught.value.file == str(home / CONFIG_FILE_NAME)
    assert "cannot write the default configuration file: No space left on device" in str(
        caught.value
    )
    assert not (home / CONFIG_FILE_NAME).exists()


@not_root
def test_a_read_only_home_is_a_clear_error_when_the_file_is_missing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write the default configuration file"):
            ensure_home(home)
    finally:
        home.chmod(0o700)

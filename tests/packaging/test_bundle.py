"""The built PyInstaller bundle: the database commands, an older data home upgraded, the
simulator, and install.sh / uninstall.sh in a throwaway HOME and staging root.

These need a built bundle, so the normal test run skips them (a build takes a minute or
two); ``packaging/check.sh`` runs them with ``VITALSTATION_BUNDLE=<bundle folder>``, and CI
runs check.sh after the test suite (README, "Development").
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from simulator import device_id_for
from vitalstation.storage.migrate import MIGRATIONS_DIR, head_revision

BUNDLE = os.environ.get("VITALSTATION_BUNDLE", "")
SOURCE_PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
OLDEST_REVISION = "0001"

pytestmark = pytest.mark.skipif(
    not BUNDLE,
    reason="needs a built bundle: packaging/check.sh runs these with VITALSTATION_BUNDLE set",
)


def _bundle() -> Path:
    return Path(BUNDLE).resolve()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VITALSTATION_", "XDG_DATA_HOME"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra)
    return env


def _run(*args: str | Path, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            env=env or _env(), timeout=60, check=False)
    if check:
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result


def _station(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return _run(_bundle() / "vitalstation", *args, **kwargs)


def test_db_upgrade_and_status_work_from_the_bundle(tmp_path) -> None:
    home = tmp_path / "home"
    out = _station("--home", home, "db", "upgrade").stdout
    assert f"is at schema {head_revision()} (latest)" in out
    assert f"schema:   {head_revision()}" in _station("--home", home, "db", "status").stdout


def test_the_bundle_upgrades_an_older_data_home_when_it_starts(tmp_path) -> None:
    # A data home as the first release left it: schema 0001, one patient, its own config.
    home = tmp_path / "home"
    home.mkdir()
    (home / "vitalstation.toml").write_text('[station]\nname = "Ward 5 North"\n')
    database = home / "vitalstation.db"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, OLDEST_REVISION)
    engine.dispose()
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO patients (patient_id, name, created_at) VALUES (?, ?, ?)",
            ("P123", "Ada Lovelace", "2026-01-01 08:00:00.000000"),
        )
    assert head_revision() != OLDEST_REVISION

    # The window starts on it (and takes its picture), which migrates the database.
    picture = tmp_path / "window.png"
    _station("--home", home, "--screenshot", picture, "--after", "0.5")
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert f"schema:   {head_revision()}" in _station("--home", home, "db", "status").stdout
    patients = [json.loads(line) for line in
                _station("--home", home, "patient", "list", "--json").stdout.splitlines()]
    assert [(p["patient_id"], p["name"]) for p in patients] == [("P123", "Ada Lovelace")]
    assert 'name = "Ward 5 North"' in (home / "vitalstation.toml").read_text()


def test_the_simulator_in_the_bundle_feeds_the_inbox(tmp_path) -> None:
    home = tmp_path / "home"
    sim = _bundle() / "vitalstation-sim"
    assert sim.is_symlink() and os.readlink(sim) == "vitalstation"
    assert _run(sim, "--version").stdout.startswith("vitalstation-sim ")
    _run(sim, "--home", home, "--register", "--transport", "file", "--beds", "2",
         "--duration", "1", "--rate-multiplier", "60")
    report = _station("--home", home, "process-inbox").stdout  # exit code 0: none failed
    assert "Failed: 0\n" in report and "Successfully processed: 0\n" not in report, report
    readings = _station("--home", home, "readings", "--device", device_id_for(1),
                        "--json").stdout.splitlines()
    assert readings and json.loads(readings[0])["input"] == "file"


def _installer(tmp_path: Path) -> Path:
    """The unpacked tarball's folder (install.sh beside the bundle), or one staged from the
    source tree's scripts when checking a bundle folder."""
    beside = _bundle().parent
    if (beside / "install.sh").is_file():
        return beside
    staged = tmp_path / "unpacked"
    staged.mkdir()
    (staged / "vitalstation").symlink_to(_bundle())
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy2(SOURCE_PACKAGING / script, staged / script)
    return staged


def test_install_and_uninstall_for_one_user_never_touch_the_data_home(tmp_path) -> None:
    installer = _installer(tmp_path)
    home = tmp_path / "user"
    home.mkdir()
    env = _env(HOME=str(home), PATH=f"{home / '.local/bin'}:{os.environ['PATH']}")
    _run(installer / "install.sh", env=env)

    share = home / ".local/share"
    app = share / "vitalstation-app"
    current = app / "current"
    version = _station("--version").stdout.split()[1]
    assert os.readlink(current) == f"vitalstation-{version}"
    for program in ("vitalstation", "vitalstation-sim"):
        link = home / ".local/bin" / program
        assert os.readlink(link) == str(current / program)
    assert _run("vitalstation", "--version", env=env).stdout.strip() == f"vitalstation {version}"
    desktop = (share / "applications/vitalstation.desktop").read_text()
    assert f"Exec={current / 'vitalstation'}\n" in desktop and "Icon=vitalstation\n" in desktop
    assert (share / "icons/hicolor/scalable/apps/vitalstation.svg").read_text().startswith("<")

    # The station's data home sits beside the app folder and must survive the uninstall.
    data_home = share / "vitalstation"
    _run("vitalstation", "--home", data_home, "patient", "add", "P1", "--name", "Ada",
         env=env)
    # A reinstall (the same version) keeps one copy and the links.
    _run(installer / "install.sh", env=env)
    assert sorted(p.name for p in app.iterdir()) == [
        "current", "install-manifest.txt", "uninstall.sh", f"vitalstation-{version}"]

    _run(app / "uninstall.sh", env=env)
    assert not app.exists()
    assert not (home / ".local/bin/vitalstation").exists()
    assert not (home / ".local/bin/vitalstation").is_symlink()
    assert not (share / "applications/vitalstation.desktop").exists()
    assert not (share / "icons/hicolor/scalable/apps/vitalstation.svg").exists()
    assert (data_home / "vitalstation.db").is_file()


def test_uninstall_refuses_a_manifest_that_names_the_data_home(tmp_path) -> None:
    installer = _installer(tmp_path)
    home = tmp_path / "user"
    home.mkdir()
    env = _env(HOME=str(home))
    _run(installer / "install.sh", env=env)
    share = home / ".local/share"
    data_home = share / "vitalstation"
    data_home.mkdir()
    (data_home / "vitalstation.db").write_text("readings")
    manifest = share / "vitalstation-app/install-manifest.txt"
    manifest.write_text(manifest.read_text() + f"{data_home}\n")

    result = _run(share / "vitalstation-app/uninstall.sh", env=env, check=False)
    assert result.returncode != 0
    assert f"refusing to remove {data_home}" in result.stderr
    assert (data_home / "vitalstation.db").read_text() == "readings"


def test_system_install_and_uninstall_under_a_staging_root(tmp_path) -> None:
    installer = _installer(tmp_path)
    root = tmp_path / "root"
    _run(installer / "install.sh", "--system", "--root", root)
    current = Path("/opt/vitalstation/current")
    assert (root / "opt/vitalstation/current/vitalstation").is_file()
    assert os.readlink(root / "usr/local/bin/vitalstation") == str(current / "vitalstation")
    desktop = (root / "usr/share/applications/vitalstation.desktop").read_text()
    assert f"Exec={current / 'vitalstation'}\n" in desktop
    assert (root / "usr/share/icons/hicolor/scalable/apps/vitalstation.svg").is_file()

    _run(root / "opt/vitalstation/uninstall.sh", "--system", "--root", root)
    assert not (root / "opt/vitalstation").exists()
    assert not (root / "usr/local/bin/vitalstation").is_symlink()
    assert not (root / "usr/share/applications/vitalstation.desktop").exists()


def test_the_bundle_keeps_a_secret_in_the_os_keyring(tmp_path) -> None:
    # keyring finds its backends through entry points and Secret Service needs secretstorage,
    # jeepney and cryptography: all must be in the bundle (PLATFORM.md: the headless recipe).
    if "secret" not in _station("--help").stdout:
        pytest.skip("this build has no `vitalstation secret` command")
    if not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
        pytest.skip("needs dbus-run-session and gnome-keyring-daemon (apt-get install "
                    "gnome-keyring dbus) for a real Secret Service")
    home = tmp_path / "user"
    home.mkdir()
    station = _bundle() / "vitalstation"
    data = tmp_path / "data"
    script = (
        "echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && "
        f"printf s3cret | '{station}' --home '{data}' secret set mqtt.password && "
        f"'{station}' --home '{data}' secret status"
    )
    out = _run("dbus-run-session", "--", "sh", "-c", script, env=_env(HOME=str(home))).stdout
    assert "OS keyring: SecretService Keyring" in out
    assert any(line.split()[:2] == ["mqtt.password", "set"] for line in out.splitlines()), out
    assert "s3cret" not in out


def test_the_window_runs_on_x11_from_the_bundle(tmp_path) -> None:
    # The xcb platform plugin and what it links to must load from the bundle (the offscreen
    # runs above do not load it). Under Xvfb the window must still be up when stopped.
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        pytest.skip("needs xvfb-run (apt-get install xvfb xauth)")
    env = _env(QT_QPA_PLATFORM="xcb", VITALSTATION_REST__PORT="0",
               VITALSTATION_EMBEDDED_BROKER__PORT="0")
    result = subprocess.run(
        [xvfb_run, "-a", "timeout", "8", str(_bundle() / "vitalstation"),
         "--home", str(tmp_path / "home")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert "Could not load the Qt platform plugin" not in result.stderr, result.stderr
    assert result.returncode == 124, f"exited early ({result.returncode}): {result.stderr}"

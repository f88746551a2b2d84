"""install.sh and uninstall.sh on stand-in bundles (fast: no PyInstaller build).

A stand-in bundle is a folder shaped like the real one whose ``vitalstation`` only answers
``--version``, so upgrades across versions can be checked in a second. The real bundle goes
through the same scripts in test_bundle.py (packaging/check.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tarball_folder(tmp_path: Path, version: str) -> Path:
    """An unpacked tarball: install.sh, uninstall.sh and a stand-in bundle of ``version``."""
    folder = tmp_path / f"vitalstation-{version}-linux-x86_64"
    bundle = folder / "vitalstation"
    resources = bundle / "_internal" / "resources"
    (resources / "icons").mkdir(parents=True)
    shutil.copy2(REPO / "resources" / "vitalstation.desktop", resources)
    shutil.copy2(REPO / "resources" / "icons" / "vitalstation.svg", resources / "icons")
    program = bundle / "vitalstation"
    program.write_text(f'#!/bin/sh\necho "vitalstation {version}"\n')
    program.chmod(0o755)
    (bundle / "vitalstation-sim").symlink_to("vitalstation")
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy2(REPO / "packaging" / script, folder / script)
    return folder


def _run(command: list[str | Path], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME",)}
    env["HOME"] = str(home)
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env,
                          timeout=30, check=False)


def test_upgrades_switch_current_keep_the_previous_version_and_uninstall_all(tmp_path) -> None:
    home = tmp_path / "user"
    home.mkdir()
    share = home / ".local" / "share"
    app = share / "vitalstation-app"
    data_home = share / "vitalstation"
    data_home.mkdir(parents=True)
    (data_home / "vitalstation.db").write_text("the ward's readings")

    for version in ("0.1.0", "0.2.0", "0.3.0"):
        result = _run([_tarball_folder(tmp_path, version) / "install.sh"], home)
        assert result.returncode == 0, result.stderr
        assert f"installed: vitalstation {version}" in result.stdout
        assert os.readlink(app / "current") == f"vitalstation-{version}"
        on_path = _run([home / ".local/bin/vitalstation", "--version"], home)
        assert on_path.stdout.strip() == f"vitalstation {version}"
    # The version before the current one is kept (to go back); older ones are removed.
    assert sorted(p.name for p in app.glob("vitalstation-*")) == [
        "vitalstation-0.2.0", "vitalstation-0.3.0"]
    desktop = (share / "applications" / "vitalstation.desktop").read_text()
    assert f"Exec={app / 'current' / 'vitalstation'}\n" in desktop
    assert f"TryExec={app / 'current' / 'vitalstation'}\n" in desktop

    result = _run([app / "uninstall.sh"], home)
    assert result.returncode == 0, result.stderr
    assert f"kept the data home {data_home}" in result.stdout
    assert not app.exists()
    assert sorted(p.name for p in (home / ".local/bin").iterdir()) == []
    assert not (share / "applications" / "vitalstation.desktop").exists()
    assert not (share / "icons/hicolor/scalable/apps/vitalstation.svg").exists()
    assert (data_home / "vitalstation.db").read_text() == "the ward's readings"


def test_install_leaves_a_foreign_program_of_the_same_name_alone(tmp_path) -> None:
    home = tmp_path / "user"
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "vitalstation").write_text("#!/bin/sh\necho someone else's\n")
    result = _run([_tarball_folder(tmp_path, "0.1.0") / "install.sh"], home)
    assert result.returncode == 1
    assert "exists and is not a link of a previous installation" in result.stderr
    assert (bin_dir / "vitalstation").read_text() == "#!/bin/sh\necho someone else's\n"
    assert not (home / ".local/share/vitalstation-app").exists()  # nothing half-installed


def test_uninstall_without_an_installation_says_so(tmp_path) -> None:
    home = tmp_path / "user"
    home.mkdir()
    folder = _tarball_folder(tmp_path, "0.1.0")
    result = _run([folder / "uninstall.sh"], home)
    assert result.returncode == 1
    assert "no installation found" in result.stderr


def test_the_installed_desktop_entry_is_valid(tmp_path) -> None:
    validate = shutil.which("desktop-file-validate")
    if validate is None:
        pytest.skip("needs desktop-file-validate (apt-get install desktop-file-utils)")
    home = tmp_path / "user"
    home.mkdir()
    assert _run([_tarball_folder(tmp_path, "0.1.0") / "install.sh"], home).returncode == 0
    for entry in (REPO / "resources" / "vitalstation.desktop",
                  home / ".local/share/applications/vitalstation.desktop"):
        result = subprocess.run([validate, str(entry)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout

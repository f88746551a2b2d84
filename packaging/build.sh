#!/usr/bin/env bash
# Builds the Linux installer: dist/vitalstation-<version>-linux-x86_64.tar.gz
# (the one-folder PyInstaller bundle, install.sh, uninstall.sh), then checks it (check.sh).
#
#   packaging/build.sh                 build with the project's .venv (pyinstaller added)
#   packaging/build.sh --fresh-venv    build in a new venv with only the station's own
#                                      dependencies (a release build: nothing of the
#                                      development tools can leak into the bundle)
#   packaging/build.sh --no-check      skip packaging/check.sh
#
# The bundle copies some of the build host's libraries (PLATFORM.md): build releases on the
# oldest Linux the wards run, with the packages listed in packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

fresh=0
check=1
for arg in "$@"; do
  case "$arg" in
    --fresh-venv) fresh=1 ;;
    --no-check) check=0 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

SECONDS=0
if ((fresh)); then
  venv=build/venv-packaging
  say "creating a fresh build venv in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet '.[packaging]'
else
  ./scripts/setup
  venv=.venv
  if ! "$venv/bin/python" -c 'import PyInstaller' 2>/dev/null; then
    say "adding pyinstaller to $venv (the packaging extra)"
    "$venv/bin/python" -m pip install --quiet -e '.[packaging]'
  fi
fi
python="$venv/bin/python"
version=$("$python" -c 'import vitalstation; print(vitalstation.__version__)')
arch=$(uname -m)
name="vitalstation-$version-linux-$arch"

say "PyInstaller $("$python" -m PyInstaller --version): bundle of VitalStation $version"
"$python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath build/pyinstaller/dist --workpath build/pyinstaller/work \
  packaging/vitalstation.spec
build_s=$SECONDS

say "archiving $name.tar.gz"
stage="build/stage/$name"
rm -rf build/stage
mkdir -p "$stage" dist
cp -a build/pyinstaller/dist/vitalstation "$stage/vitalstation"
install -m 755 packaging/install.sh packaging/uninstall.sh "$stage/"
install -m 644 packaging/INSTALL.txt packaging/RELEASE-NOTES.md "$stage/"
tarball="$root/dist/$name.tar.gz"
rm -f "$tarball"
tar -C build/stage -czf "$tarball" "$name"

printf '\nbuilt %s: bundle in %d s, %s compressed\n' "dist/$name.tar.gz" "$build_s" \
  "$(du -h "$tarball" | cut -f1)"
if ((check)); then
  exec packaging/check.sh "$tarball"
fi

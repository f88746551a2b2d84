#!/usr/bin/env bash
# Installs the VitalStation bundle that sits beside this script.
#
#   ./install.sh            for this user: ~/.local/share/vitalstation-app, ~/.local/bin,
#                           ~/.local/share/applications, ~/.local/share/icons
#   sudo ./install.sh --system
#                           for everyone: /opt/vitalstation, /usr/local/bin,
#                           /usr/share/applications, /usr/share/icons
#   --root DIR              stage the installation under DIR (packagers, tests); the desktop
#                           entry still names the final paths
#
# An upgrade is the same command with a newer tarball: the new version goes beside the old one,
# `current` is switched to it in one step, and the version before is kept (to go back: point
# `current` at it). The data home (~/.local/share/vitalstation: settings, database, inbox) is
# never touched here: the station migrates its database itself when it starts.
# Everything created is listed in install-manifest.txt, which uninstall.sh removes exactly.
set -euo pipefail

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
bundle="$here/vitalstation"
system=0
root=""
while (($#)); do
  case "$1" in
    --system) system=1 ;;
    --root) [ $# -ge 2 ] || die "--root needs a folder"; root=$(realpath -m "$2"); shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ -x "$bundle/vitalstation" ] || die "no bundle at $bundle (run this script from the unpacked tarball)"
version=$("$bundle/vitalstation" --version | awk '{print $2}')
[ -n "$version" ] || die "the bundle did not say its version; is it complete?"

if ((system)); then
  [ -n "$root" ] || [ "$(id -u)" -eq 0 ] || die "--system needs root: sudo $0 --system"
  app_dir=/opt/vitalstation
  bin_dir=/usr/local/bin
  applications=/usr/share/applications
  icons=/usr/share/icons/hicolor/scalable/apps
else
  [ "$(id -u)" -ne 0 ] || [ -n "$root" ] || say "note: installing for root only; use --system to install for every user"
  data=${XDG_DATA_HOME:-$HOME/.local/share}
  # Not $data/vitalstation: that is the station's data home (settings, database).
  app_dir=$data/vitalstation-app
  bin_dir=$HOME/.local/bin
  applications=$data/applications
  icons=$data/icons/hicolor/scalable/apps
fi

# Checked before anything changes: a program of the same name that is not ours stays.
for program in vitalstation vitalstation-sim; do
  link="$root$bin_dir/$program"
  if [ -e "$link" ] && [ ! -L "$link" ]; then
    die "$bin_dir/$program exists and is not a link of a previous installation; move it away first"
  fi
done

target="$app_dir/vitalstation-$version"
manifest="$app_dir/install-manifest.txt"
say "installing VitalStation $version into $root$app_dir"
mkdir -p "$root$app_dir" "$root$bin_dir" "$root$applications" "$root$icons"

# The new version beside the old ones, copied under a temporary name, then renamed: a station
# running from `current` is not disturbed until it is restarted.
if [ -e "$root$target" ]; then
  say "version $version is already installed; reinstalling it"
  rm -rf "$root$target.old"
  mv "$root$target" "$root$target.old"
fi
rm -rf "$root$target.partial"
mkdir -p "$root$target.partial"
cp -a "$bundle/." "$root$target.partial/"
mv "$root$target.partial" "$root$target"
rm -rf "$root$target.old"
previous=$(readlink "$root$app_dir/current" 2>/dev/null || true)
ln -sfn "vitalstation-$version" "$root$app_dir/current.new"
mv -T "$root$app_dir/current.new" "$root$app_dir/current"
cp "$here/uninstall.sh" "$root$app_dir/uninstall.sh"
chmod 755 "$root$app_dir/uninstall.sh"

# Keep the version before this one (to go back), remove any older.
for old in "$root$app_dir"/vitalstation-*; do
  [ -d "$old" ] || continue
  name=$(basename "$old")
  if [ "$name" != "vitalstation-$version" ] && [ "$name" != "$(basename "${previous:-none}")" ]; then
    rm -rf "$old"
  fi
done

for program in vitalstation vitalstation-sim; do
  ln -sfn "$app_dir/current/$program" "$root$bin_dir/$program"
done

resources="$root$app_dir/current/_internal/resources"
sed "s|^Exec=.*|Exec=$app_dir/current/vitalstation|; s|^TryExec=.*|TryExec=$app_dir/current/vitalstation|" \
  "$resources/vitalstation.desktop" > "$root$applications/vitalstation.desktop"
chmod 644 "$root$applications/vitalstation.desktop"
install -m 644 "$resources/icons/vitalstation.svg" "$root$icons/vitalstation.svg"

cat > "$root$manifest" <<EOF
# Installed by VitalStation's install.sh; uninstall.sh removes exactly these (never the data home).
$bin_dir/vitalstation
$bin_dir/vitalstation-sim
$applications/vitalstation.desktop
$icons/vitalstation.svg
$app_dir
EOF

if [ -z "$root" ]; then
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$applications" || true
  # The icon theme's cache, where the theme has one (…/icons/hicolor, two levels up).
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$(dirname "$(dirname "$icons")")" 2>/dev/null || true
fi

# The X11 platform plugin needs a few system libraries that are not in the bundle.
missing=$(ldd "$root$target/_internal/PySide6/Qt/plugins/platforms/libqxcb.so" 2>/dev/null \
  | awk '/not found/ {print $1}' | tr '\n' ' ' || true)
if [ -n "$missing" ]; then
  say "warning: the window needs these system libraries on X11: $missing"
  say "  on Debian/Ubuntu: sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0"
fi

say "installed: $("$root$target/vitalstation" --version)"
say "  programs:      $bin_dir/vitalstation, $bin_dir/vitalstation-sim"
say "  menu entry:    $applications/vitalstation.desktop"
say "  check it:      vitalstation --self-test"
say "  uninstall:     $app_dir/uninstall.sh$( ((system)) && printf ' --system')"
if ! ((system)) && [[ ":$PATH:" != *":$bin_dir:"* ]]; then
  say "note: $bin_dir is not on your PATH; add it, or start $app_dir/current/vitalstation"
fi

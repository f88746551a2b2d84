#!/usr/bin/env bash
# Removes what install.sh put in place, exactly: the paths in its install-manifest.txt.
#
#   ./uninstall.sh            this user's installation (~/.local/share/vitalstation-app)
#   sudo ./uninstall.sh --system
#                             the system-wide one (/opt/vitalstation)
#   --root DIR                an installation staged under DIR by install.sh --root DIR
#
# The data home (~/.local/share/vitalstation, or --home / $VITALSTATION_HOME: settings,
# database, inbox, archive, logs) is never removed: it holds patients' readings. Delete it
# yourself once they are exported or no longer needed.
set -euo pipefail

say() { printf '%s\n' "$*"; }
die() { printf 'uninstall.sh: %s\n' "$*" >&2; exit 1; }

system=0
root=""
while (($#)); do
  case "$1" in
    --system) system=1 ;;
    --root) [ $# -ge 2 ] || die "--root needs a folder"; root=$(realpath -m "$2"); shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

if ((system)); then
  [ -n "$root" ] || [ "$(id -u)" -eq 0 ] || die "--system needs root: sudo $0 --system"
  app_dir=/opt/vitalstation
  data_home=""
else
  data=${XDG_DATA_HOME:-$HOME/.local/share}
  app_dir=$data/vitalstation-app
  data_home=$data/vitalstation
fi
manifest="$root$app_dir/install-manifest.txt"
[ -f "$manifest" ] || die "no installation found ($manifest is missing)"

# Only what install.sh writes may be removed: its app folder, and in the bin, applications and
# icons folders the three names it uses. Anything else in a manifest is refused, not deleted.
allowed() {
  case "$1" in
    "$app_dir") return 0 ;;
    */bin/vitalstation|*/bin/vitalstation-sim) return 0 ;;
    */applications/vitalstation.desktop) return 0 ;;
    */icons/hicolor/scalable/apps/vitalstation.svg) return 0 ;;
  esac
  return 1
}

removed=0
applications=""
while IFS= read -r path; do
  [ -n "$path" ] && [ "${path#\#}" = "$path" ] || continue
  allowed "$path" || die "refusing to remove $path (not a path install.sh writes); manifest: $manifest"
  if [ -n "$data_home" ] && { [ "$path" = "$data_home" ] || [[ "$path" == "$data_home"/* ]]; }; then
    die "refusing to remove $path: it is the data home"
  fi
  full="$root$path"
  case "$path" in
    */bin/*)
      # A link of ours points into the app folder; anything else belongs to someone else.
      if [ -L "$full" ] && [[ "$(readlink "$full")" == "$app_dir"/* ]]; then
        rm -f "$full"; removed=$((removed + 1))
      elif [ -e "$full" ]; then
        say "left alone: $path (not a link into $app_dir)"
      fi ;;
    "$app_dir") ;;  # last, after the rest (the manifest lives in it)
    */applications/*)
      applications=$(dirname "$path")
      if [ -e "$full" ]; then rm -f "$full"; removed=$((removed + 1)); fi ;;
    *)
      if [ -e "$full" ]; then rm -f "$full"; removed=$((removed + 1)); fi ;;
  esac
done < "$manifest"
rm -rf -- "$root$app_dir"
say "VitalStation uninstalled from $root$app_dir ($removed links and files removed besides it)"
if [ -z "$root" ] && [ -n "$applications" ] && command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database -q "$applications" 2>/dev/null || true
fi
if [ -n "$data_home" ] && [ -d "$data_home" ]; then
  say "kept the data home $data_home (settings, database, readings); remove it yourself when no longer needed"
fi

#!/usr/bin/env bash
# Install, upgrade or remove the chargepoint firmware on a Raspberry Pi OS / Debian charger (docs/install.md).
#
#   sudo ./install.sh                      install from the checkout this script lives in
#   sudo ./install.sh --upgrade --from DIR replace the installed firmware by a newer release (config kept)
#   sudo ./install.sh --uninstall          remove it, keeping /etc/chargepoint and /var/lib/chargepoint
#   sudo ./install.sh --uninstall --purge  remove those and the chargepoint user too
#
# What it sets up (each step is checked first, so a second run changes nothing and says so):
#   /opt/chargepoint/venvs/VERSION-ID      a virtual environment of the system python3 (>= 3.11) with chargepoint,
#                                          its "rpi" extra on a Pi (aarch64, armv7l); one per installed build.
#                                          venvs/ is root:chargepoint 1775: the daemon adds the venv of a signed
#                                          release there, and cannot touch the others (docs/install.md, "Updates")
#   /opt/chargepoint/update-guard.py       the update guard the unit runs before each start (switch, rollback)
#   /opt/chargepoint/.venv                 a symbolic link to the current one (the unit runs .venv/bin/chargepoint);
#                                          .venv-previous to the one before, for a rollback
#   /opt/chargepoint/{docs,config,...}     README, docs, config templates, unit, udev rules and this script
#   user and group chargepoint             system user, no login, home /var/lib/chargepoint, in the groups
#                                          gpio, spi, dialout and plugdev (created where missing)
#   /etc/udev/rules.d/99-chargepoint.rules device access (gpiochip, spidev, PWM, watchdog, USB card readers)
#   /etc/modprobe.d/chargepoint-nfc.conf   keeps the kernel's NFC drivers off the USB card reader
#   /etc/systemd/system/chargepoint.service the unit, enabled (not started: fill in the config first)
#   /etc/chargepoint/config.toml           from config/hardware.toml when there is none; never overwritten
#   /usr/local/bin/chargepoint             the technician's command
#   /usr/share/bash-completion/completions/chargepoint   its tab completion
#
# pip takes wheels only; a package without a wheel for this machine (spidev on a Pi) is built from source, and
# only then are build-essential and python3-dev installed with apt-get. pip honours PIP_INDEX_URL, PIP_FIND_LINKS
# and PIP_NO_INDEX, e.g. for a local mirror or an offline wheelhouse.
set -euo pipefail

readonly PREFIX=/opt/chargepoint
readonly UNIT_PATH=/etc/systemd/system/chargepoint.service
readonly UDEV_PATH=/etc/udev/rules.d/99-chargepoint.rules
readonly MODPROBE_PATH=/etc/modprobe.d/chargepoint-nfc.conf
readonly CONFIG_DIR=/etc/chargepoint
readonly CONFIG_PATH=/etc/chargepoint/config.toml
readonly STATE_DIR=/var/lib/chargepoint
readonly CLI_LINK=/usr/local/bin/chargepoint
readonly COMPLETION_PATH=/usr/share/bash-completion/completions/chargepoint
readonly SERVICE_USER=chargepoint
readonly DEVICE_GROUPS=(gpio spi dialout plugdev)
readonly PLACEHOLDER=CHANGE-ME
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR

usage() {
  cat <<'EOF'
usage: install.sh [--upgrade | --uninstall [--purge]] [options]

  (no action)        install chargepoint: venv, service user and groups, udev rules, systemd unit (enabled, not
                     started), /etc/chargepoint/config.toml from config/hardware.toml if there is none
  --upgrade          replace the installed firmware with the one from --from; keeps the config; restarts a
                     running service
  --uninstall        stop and remove the service and the firmware; keeps /etc/chargepoint (config) and
                     /var/lib/chargepoint (sessions, history)
  --purge            with --uninstall: also remove /etc/chargepoint, /var/lib/chargepoint and the chargepoint user

options:
  --from DIR|WHEEL   what to install: a chargepoint source directory (a release or a checkout) or a built wheel
                     (chargepoint-*.whl); default: the directory this script is in
  --root DIR         install into the root file system at DIR (an image being prepared) instead of /; it needs
                     its own python3 and python3-venv, and is entered with chroot. No service is started or
                     reloaded there; the unit is enabled with systemctl --root
  --extras LIST      pip extras, comma-separated (default: "rpi" on aarch64/armv7l/armv6l, none elsewhere;
                     "" for none)
  --no-enable        install without enabling the unit
  --no-restart       upgrade without restarting a running service (it runs the new firmware at its next start)
  -h, --help         this text

Run as root. Every run prints what it changed; a run that finds everything in place says "nothing changed".
See docs/install.md.
EOF
}

# ---------------------------------------------------------------------------------------------------- messages

CHANGES=()
die() { echo "install.sh: error: $*" >&2; exit 1; }
usage_error() { echo "install.sh: $*" >&2; echo "try: install.sh --help" >&2; exit 2; }
warn() { echo "install.sh: warning: $*" >&2; }
section() { echo "== $*"; }
changed() { CHANGES+=("$1"); echo "  changed: $1"; }
unchanged() { echo "  ok: $1"; }
note() { echo "  $*"; }

# ---------------------------------------------------------------------------------------------------- the target

ROOT=/
ROOT_PREFIX=""          # "" for /, else the root's path without a trailing slash
t() { printf '%s%s' "$ROOT_PREFIX" "$1"; }   # a path in the target, as seen from here

in_target() {  # run a command of the target system (in a chroot unless the target is /)
  if [ -z "$ROOT_PREFIX" ]; then "$@"; else chroot "$ROOT_PREFIX" "$@"; fi
}

shadow() {  # shadow-utils tool against the target's /etc/passwd, /etc/group
  local tool=$1; shift
  if [ -z "$ROOT_PREFIX" ]; then "$tool" "$@"; else "$tool" --root "$ROOT_PREFIX" "$@"; fi
}

systemd_running() { [ -z "$ROOT_PREFIX" ] && [ -d /run/systemd/system ]; }

systemctl_offline() {  # systemctl for enable/disable/is-enabled, which work without a running systemd
  if [ -z "$ROOT_PREFIX" ]; then systemctl "$@"; else systemctl --root="$ROOT_PREFIX" "$@"; fi
}

have_systemctl() { command -v systemctl >/dev/null; }  # the target's for /, this machine's with --root

os_release_field() {  # os_release_field KEY: the value of KEY in the target's os-release, unquoted
  local file
  file=$(t /etc/os-release)
  [ -r "$file" ] || file=$(t /usr/lib/os-release)
  [ -r "$file" ] || return 0
  sed -n "s/^$1=//p" "$file" | head -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

uid_of() { awk -F: -v n="$1" '$1 == n { print $3; exit }' "$(t /etc/passwd)"; }
gid_of() { awk -F: -v n="$1" '$1 == n { print $3; exit }' "$(t /etc/group)"; }
user_primary_gid() { awk -F: -v n="$1" '$1 == n { print $4; exit }' "$(t /etc/passwd)"; }
group_has_member() {  # group_has_member GROUP USER
  awk -F: -v g="$1" -v u="$2" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 }
                               END { exit !f }' "$(t /etc/group)"
}

# ---------------------------------------------------------------------------------------------------- file helpers

mode_owner() { stat -c '%a %u %g' "$1"; }

ensure_dir() {  # ensure_dir PATH MODE UID GID
  local path=$1 mode=$2 uid=$3 gid=$4 host
  host=$(t "$path")
  if [ ! -d "$host" ]; then
    install -d -m "$mode" -o "$uid" -g "$gid" "$host"
    changed "created $path"
  elif [ "$(mode_owner "$host")" != "$mode $uid $gid" ]; then
    chown "$uid:$gid" "$host"; chmod "$mode" "$host"
    changed "$path: mode $mode, owner $uid:$gid"
  fi
}

ensure_file() {  # ensure_file SOURCE PATH MODE [UID GID]: install a file, replacing it only when it differs
  local source=$1 path=$2 mode=$3 uid=${4:-0} gid=${5:-0} host
  host=$(t "$path")
  install -d -m 0755 "$(dirname "$host")"
  if [ ! -f "$host" ] || ! cmp -s "$source" "$host"; then
    local verb=updated
    [ -f "$host" ] || verb=installed
    install -m "$mode" -o "$uid" -g "$gid" "$source" "$host"
    changed "$verb $path"
    return 0
  fi
  if [ "$(mode_owner "$host")" != "$mode $uid $gid" ]; then
    chown "$uid:$gid" "$host"; chmod "$mode" "$host"
    changed "$path: mode $mode, owner $uid:$gid"
    return 0
  fi
  unchanged "$path"
}

remove_path() {  # remove_path PATH: remove a file, link or directory tree if it is there
  local host
  host=$(t "$1")
  if [ -e "$host" ] || [ -L "$host" ]; then
    rm -rf -- "$host"
    changed "removed $1"
  fi
}

tree_digest() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-64); }

# ---------------------------------------------------------------------------------------------------- arguments

ACTION=install
PURGE=0
FROM=""
EXTRAS=auto
ENABLE=1
RESTART=1

parse_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      --upgrade) [ "$ACTION" = install ] || usage_error "--upgrade and --uninstall exclude each other"; ACTION=upgrade ;;
      --uninstall) [ "$ACTION" = install ] || usage_error "--upgrade and --uninstall exclude each other"
                   ACTION=uninstall ;;
      --purge) PURGE=1 ;;
      --from) [ $# -ge 2 ] || usage_error "--from needs a directory or a wheel"; FROM=$2; shift ;;
      --from=*) FROM=${1#--from=} ;;
      --root) [ $# -ge 2 ] || usage_error "--root needs a directory"; ROOT=$2; shift ;;
      --root=*) ROOT=${1#--root=} ;;
      --extras) [ $# -ge 2 ] || usage_error "--extras needs a list (\"\" for none)"; EXTRAS=$2; shift ;;
      --extras=*) EXTRAS=${1#--extras=} ;;
      --no-enable) ENABLE=0 ;;
      --no-restart) RESTART=0 ;;
      -h|--help) usage; exit 0 ;;
      *) usage_error "unknown argument: $1" ;;
    esac
    shift
  done
  if [ "$PURGE" = 1 ] && [ "$ACTION" != uninstall ]; then usage_error "--purge goes with --uninstall"; fi
  if [ "$ACTION" = uninstall ] && [ -n "$FROM" ]; then usage_error "--uninstall takes no --from"; fi
  if ! [[ $EXTRAS =~ ^(auto|[A-Za-z0-9_,-]*)$ ]]; then usage_error "--extras: a comma-separated list of names"; fi
}

# ---------------------------------------------------------------------------------------------------- checks

check_invoker() {
  [ "$(id -u)" -eq 0 ] || die "run it as root: sudo $0 $*"
}

check_target() {
  [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
  ROOT=$(cd "$ROOT" && pwd -P)
  if [ "$ROOT" = / ]; then ROOT_PREFIX=""; else ROOT_PREFIX=$ROOT; fi
  local id id_like pretty
  id=$(os_release_field ID)
  id_like=$(os_release_field ID_LIKE)
  pretty=$(os_release_field PRETTY_NAME)
  if [ -z "$id" ]; then
    die "$(t /etc/os-release) is missing: this installer is for Raspberry Pi OS and Debian"
  fi
  case " $id $id_like " in
    *" debian "*|*" raspbian "*) ;;
    *) die "this installer is for Raspberry Pi OS and Debian (apt, systemd, udev); the target is ${pretty:-$id}" ;;
  esac
  TARGET_NAME=${pretty:-$id}
  for tool in useradd groupadd usermod; do
    command -v "$tool" >/dev/null || die "$tool is missing here (Debian package passwd)"
  done
  if [ -n "$ROOT_PREFIX" ]; then command -v chroot >/dev/null || die "chroot is missing here (coreutils)"; fi
}

check_python() {
  [ -x "$(t /usr/bin/python3)" ] || die "python3 is missing in the target: apt-get install python3 python3-venv" \
    "(Raspberry Pi OS and Debian 12 ship Python 3.11)"
  local version
  version=$(in_target /usr/bin/python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') \
    || die "the target's python3 does not run${ROOT_PREFIX:+ in chroot $ROOT_PREFIX (another architecture needs qemu-user-static)}"
  local major minor
  IFS=. read -r major minor _ <<<"$version"
  if [ "$major" -lt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -lt 11 ]; }; then
    die "chargepoint needs Python 3.11 or newer (Debian 12 bookworm, Raspberry Pi OS bookworm); the target's" \
        "python3 is $version: upgrade the OS"
  fi
  PYTHON_VERSION=$version
  MACHINE=$(in_target /usr/bin/python3 -c 'import platform; print(platform.machine())')
  if [ "$EXTRAS" = auto ]; then
    case $MACHINE in
      aarch64|armv7l|armv6l) EXTRAS=rpi ;;
      *) EXTRAS="" ;;
    esac
  fi
}

# ---------------------------------------------------------------------------------------------------- apt

APT_UPDATED=0
apt_install() {  # apt_install REASON PACKAGE...
  local reason=$1; shift
  note "$reason: apt-get install $*"
  if [ "$APT_UPDATED" = 0 ]; then
    in_target env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
      || warn "apt-get update failed; trying with the package lists there are"
    APT_UPDATED=1
  fi
  in_target env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
    || die "apt-get could not install $* (network? see above); install them by hand and run install.sh again"
  changed "apt-get installed $*"
}

ensure_venv_support() {
  if ! in_target /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install "python3 cannot create virtual environments here (Debian keeps venv apart)" python3-venv
  fi
}

ensure_runtime_libraries() {
  # nfcpy (the rpi extra's card reader driver) talks to USB readers through the system's libusb.
  case ",$EXTRAS," in *,rpi,*) ;; *) return 0 ;; esac
  if ! compgen -G "$(t /usr/lib)/*/libusb-1.0.so.0" >/dev/null && ! compgen -G "$(t /lib)/*/libusb-1.0.so.0" >/dev/null
  then
    apt_install "the USB card reader needs libusb" libusb-1.0-0
  fi
}

BUILD_TOOLS=0
ensure_build_tools() {  # ensure_build_tools PACKAGE: a compiler and Python's headers, to build PACKAGE
  [ "$BUILD_TOOLS" = 1 ] && return 0
  BUILD_TOOLS=1
  local include
  include=$(in_target /usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  if [ -x "$(t /usr/bin/gcc)" ] && [ -f "$(t "$include/Python.h")" ]; then
    note "building $1 with the compiler and Python headers already installed"
    return 0
  fi
  apt_install "pip finds no wheel of $1 for $MACHINE (Python $PYTHON_VERSION) and builds it from source" \
    build-essential python3-dev
}

# ---------------------------------------------------------------------------------------------------- the source

STAGE=""           # a temporary directory in the target (host path)
STAGE_IN=""        # the same, as the target sees it
SOURCE_KIND=""     # dir | wheel
SUPPORT=""         # where the unit, udev rules, templates and docs come from
VERSION=""
BUILD_ID=""        # VERSION-FINGERPRINT: the name of the venv this source and these extras make

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [ -n "$STAGE" ] && [ -d "$STAGE" ]; then rm -rf -- "$STAGE"; fi; }

make_stage() {
  install -d -m 0755 "$(t /var/tmp)"
  STAGE=$(mktemp -d "$(t /var/tmp)/chargepoint-install.XXXXXX")
  STAGE_IN=${STAGE#"$ROOT_PREFIX"}
}

stage_source() {
  FROM=${FROM:-$SCRIPT_DIR}
  [ -e "$FROM" ] || die "--from $FROM: no such file or directory"
  if [ -d "$FROM" ]; then
    FROM=$(cd "$FROM" && pwd -P)
    if [ ! -f "$FROM/pyproject.toml" ]; then
      die "$FROM holds no chargepoint source (pyproject.toml): give --from the release's directory or wheel"
    fi
    if [ "$FROM" = "$(t "$PREFIX")" ]; then
      die "$PREFIX is where install.sh installs to; put the release elsewhere (e.g. /home/pi/chargepoint)"
    fi
    SOURCE_KIND=dir
    SUPPORT=$FROM
    local meta name patterns
    meta=$(in_target /usr/bin/python3 -c '
import sys, tomllib
data = tomllib.load(sys.stdin.buffer)
project = data.get("project", {})
find = data.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
print(project.get("name", ""), project.get("version", ""))
print(" ".join(find.get("include", [])))' <"$FROM/pyproject.toml") || die "$FROM/pyproject.toml does not parse"
    read -r name VERSION <<<"$(sed -n 1p <<<"$meta")"
    patterns=$(sed -n 2p <<<"$meta")
    [ "$name" = chargepoint ] || die "$FROM is not chargepoint's source (its pyproject.toml names '$name')"
    [ -n "$VERSION" ] || die "$FROM/pyproject.toml has no version"
    local items=() entry base pattern include=()
    read -r -a include <<<"$patterns"   # setuptools' include globs, not expanded here
    for entry in "$FROM"/pyproject.toml "$FROM"/setup.py "$FROM"/setup.cfg "$FROM"/MANIFEST.in "$FROM"/README* \
                 "$FROM"/LICENSE*; do
      if [ -f "$entry" ]; then items+=("$(basename "$entry")"); fi
    done
    for entry in "$FROM"/*/; do
      base=$(basename "$entry")
      [ -f "$entry/__init__.py" ] || continue
      if [ ${#include[@]} -eq 0 ]; then
        case $base in tests|test|docs) continue ;; esac
        items+=("$base")
      else
        for pattern in "${include[@]}"; do
          # shellcheck disable=SC2053  # the pattern is a glob on purpose (setuptools' include)
          if [[ $base == $pattern ]]; then items+=("$base"); break; fi
        done
      fi
    done
    install -d "$STAGE/src"
    tar -C "$FROM" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - "${items[@]}" \
      | tar -C "$STAGE/src" -xf -
    BUILD_ID="$VERSION-$( { tree_digest "$STAGE/src"; echo "extras=$EXTRAS"; } | sha256sum | cut -c1-12)"
  else
    case $(basename "$FROM") in
      chargepoint-*.whl) ;;
      *) die "--from $FROM: expected a chargepoint source directory or a chargepoint-*.whl wheel" ;;
    esac
    FROM=$(cd "$(dirname "$FROM")" && pwd -P)/$(basename "$FROM")
    SOURCE_KIND=wheel
    SUPPORT=$SCRIPT_DIR
    VERSION=$(basename "$FROM" | cut -d- -f2)
    install -d "$STAGE/wheel"
    cp "$FROM" "$STAGE/wheel/"
    BUILD_ID="$VERSION-$( { sha256sum <"$FROM"; echo "extras=$EXTRAS"; } | sha256sum | cut -c1-12)"
  fi
  local needed
  for needed in systemd/chargepoint.service packaging/udev/99-chargepoint.rules \
                packaging/modprobe/chargepoint-nfc.conf config/hardware.toml; do
    [ -f "$SUPPORT/$needed" ] || die "$SUPPORT/$needed is missing: run install.sh from a complete release"
  done
}

# ---------------------------------------------------------------------------------------------------- steps

step_groups_and_user() {
  section "service user and groups"
  local group
  for group in "$SERVICE_USER" "${DEVICE_GROUPS[@]}"; do
    if [ -n "$(gid_of "$group")" ]; then
      unchanged "group $group"
    else
      shadow groupadd --system "$group"
      changed "created group $group"
    fi
  done
  local wanted
  wanted=$(IFS=,; echo "${DEVICE_GROUPS[*]}")
  if [ -z "$(uid_of "$SERVICE_USER")" ]; then
    shadow useradd --system --gid "$SERVICE_USER" --groups "$wanted" --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "chargepoint charger controller" "$SERVICE_USER"
    changed "created user $SERVICE_USER (groups $wanted)"
  else
    local missing=() primary
    primary=$(user_primary_gid "$SERVICE_USER")
    for group in "${DEVICE_GROUPS[@]}"; do
      if ! group_has_member "$group" "$SERVICE_USER" && [ "$(gid_of "$group")" != "$primary" ]; then
        missing+=("$group")
      fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
      unchanged "user $SERVICE_USER in $wanted"
    else
      shadow usermod --append --groups "$(IFS=,; echo "${missing[*]}")" "$SERVICE_USER"
      changed "added user $SERVICE_USER to ${missing[*]}"
    fi
  fi
  SERVICE_UID=$(uid_of "$SERVICE_USER")
  SERVICE_GID=$(gid_of "$SERVICE_USER")
  if [ -z "$SERVICE_UID" ] || [ -z "$SERVICE_GID" ]; then die "the user $SERVICE_USER could not be created"; fi
  ensure_dir "$STATE_DIR" 750 "$SERVICE_UID" "$SERVICE_GID"
}

run_pip() {  # run_pip LOG ARGS...: pip of the new venv, its progress shown, everything in LOG
  local log=$1; shift
  in_target "$VENV_IN/bin/python" -m pip --disable-pip-version-check --no-input "$@" 2>&1 \
    | tee "$log" | sed -n -e 's/^ *\(\(Collecting\|Processing\|Building wheel for\) .*\)/    \1/p'
}

pip_failed() {  # pip_failed LOG WHAT
  cp "$1" "$(t /var/tmp)/chargepoint-install-pip.log"
  echo "---- the end of pip's output (all of it: ${ROOT_PREFIX}/var/tmp/chargepoint-install-pip.log)" >&2
  tail -n 25 "$1" >&2
  rm -rf -- "$(t "$VENV")"
  die "$2 failed; nothing was switched: the firmware that was installed is still in place"
}

build_venv() {
  local log="$STAGE/pip.log" wheel spec
  note "creating $VENV with Python $PYTHON_VERSION (a few minutes on a Pi: pip lists each package)"
  rm -rf -- "$(t "$VENV")"
  in_target /usr/bin/python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
  if [ "$SOURCE_KIND" = dir ]; then
    run_pip "$log" wheel --no-deps --wheel-dir "$STAGE_IN/wheel" "$STAGE_IN/src" \
      || pip_failed "$log" "building chargepoint's wheel"
  fi
  wheel=$(cd "$STAGE/wheel" && ls chargepoint-*.whl)
  spec="$STAGE_IN/wheel/$wheel${EXTRAS:+[$EXTRAS]}"
  # Wheels only, so that nothing is compiled by surprise; a package pip has no wheel of is built from source on
  # purpose, after installing what that takes.
  local from_source=() attempt name
  for attempt in 1 2 3 4 5 6 7 8; do
    local no_binary=()
    if [ ${#from_source[@]} -gt 0 ]; then no_binary=(--no-binary "$(IFS=,; echo "${from_source[*]}")"); fi
    if run_pip "$log" install --only-binary :all: "${no_binary[@]}" "$spec"; then
      break
    fi
    name=$(sed -n 's/^ERROR: No matching distribution found for \([A-Za-z0-9][A-Za-z0-9._-]*\).*/\1/p' "$log" \
           | head -n 1)
    if [ -z "$name" ] || [ "$attempt" = 8 ] || [[ " ${from_source[*]} " == *" $name "* ]]; then
      pip_failed "$log" "installing chargepoint${EXTRAS:+[$EXTRAS]}"
    fi
    # No wheel: is there a source distribution (else it is the network, or a wrong name)?
    if ! in_target "$VENV_IN/bin/python" -m pip --disable-pip-version-check --no-input download --no-deps \
         --no-binary "$name" --dest "$STAGE_IN/sdist" "$name" >"$log.sdist" 2>&1; then
      cat "$log.sdist" >>"$log"
      pip_failed "$log" "installing chargepoint${EXTRAS:+[$EXTRAS]} (pip finds neither a wheel nor the source of $name)"
    fi
    ensure_build_tools "$name"
    from_source+=("$name")
    note "building $name from source"
  done
  printf 'version=%s\nbuild=%s\nextras=%s\nsource=%s\n' "$VERSION" "$BUILD_ID" "$EXTRAS" "$FROM" \
    >"$(t "$VENV/.chargepoint-build")"
  grep '^Successfully installed' "$log" | sed 's/^/    /' || true
  changed "installed chargepoint $VERSION${EXTRAS:+ with [$EXTRAS]} in $VENV"
}

step_firmware() {
  section "firmware"
  VENV="$PREFIX/venvs/$BUILD_ID"
  VENV_IN=$VENV
  local link current
  link=$(t "$PREFIX/.venv")
  current=$(readlink "$link" 2>/dev/null || true)
  install -d -m 0755 "$(t "$PREFIX")"
  # Sticky and group-writable: the service adds the venv of a signed release (chargepoint update, OCPP) and can
  # neither remove nor rename the venvs root installed; the update guard makes a new venv root's before it runs.
  ensure_dir "$PREFIX/venvs" 1775 0 "$SERVICE_GID"
  if [ "$current" = "venvs/$BUILD_ID" ] && [ -f "$(t "$VENV/.chargepoint-build")" ]; then
    unchanged "chargepoint $VERSION${EXTRAS:+ [$EXTRAS]} ($PREFIX/.venv -> venvs/$BUILD_ID)"
    FIRMWARE_CHANGED=0
    return 0
  fi
  if [ -f "$(t "$VENV/.chargepoint-build")" ] && [ -x "$(t "$VENV/bin/chargepoint")" ]; then
    unchanged "chargepoint $VERSION already built in $VENV"
  else
    build_venv
  fi
  # Switch atomically: the service keeps running the old firmware until it is restarted.
  ln -sfn "venvs/$BUILD_ID" "$link.new"
  mv -T "$link.new" "$link"
  changed "$PREFIX/.venv -> venvs/$BUILD_ID"
  FIRMWARE_CHANGED=1
  if [ -n "$current" ]; then
    ln -sfn "$current" "$(t "$PREFIX/.venv-previous")"
    note "the previous firmware stays in $PREFIX/$current (rollback: docs/install.md)"
  fi
  local dir keep_previous
  keep_previous=$(readlink "$(t "$PREFIX/.venv-previous")" 2>/dev/null || true)
  for dir in "$(t "$PREFIX/venvs")"/*/; do
    [ -d "$dir" ] || continue
    dir=venvs/$(basename "$dir")
    if [ "$dir" != "venvs/$BUILD_ID" ] && [ "$dir" != "$keep_previous" ]; then
      rm -rf -- "$(t "$PREFIX/$dir")"
      changed "removed the old firmware $PREFIX/$dir"
    fi
  done
}

step_support_files() {
  section "documentation, templates, unit and device rules"
  if [ "$SUPPORT" != "$(t "$PREFIX")" ]; then
    # What the unit's Documentation= points at, the templates, and this script for later upgrades and removal.
    local entry
    if [ -f "$SUPPORT/README.md" ]; then ensure_file "$SUPPORT/README.md" "$PREFIX/README.md" 644; fi
    if [ -f "$SUPPORT/install.sh" ]; then entry=$SUPPORT/install.sh; else entry=$SCRIPT_DIR/install.sh; fi
    ensure_file "$entry" "$PREFIX/install.sh" 755
    for entry in docs config systemd packaging; do
      [ -d "$SUPPORT/$entry" ] || continue
      if [ -d "$(t "$PREFIX/$entry")" ] && [ "$(tree_digest "$SUPPORT/$entry")" = "$(tree_digest "$(t "$PREFIX/$entry")")" ]
      then
        unchanged "$PREFIX/$entry/"
      else
        rm -rf -- "$(t "$PREFIX/$entry.new")"
        cp -R "$SUPPORT/$entry" "$(t "$PREFIX/$entry.new")"
        chown -R 0:0 "$(t "$PREFIX/$entry.new")"
        chmod -R u=rwX,go=rX "$(t "$PREFIX/$entry.new")"
        rm -rf -- "$(t "$PREFIX/$entry")"
        mv -T "$(t "$PREFIX/$entry.new")" "$(t "$PREFIX/$entry")"
        changed "copied $entry/ to $PREFIX/$entry/"
      fi
    done
  fi
  # The update guard the unit runs before each start, with the system python3: taken from the firmware now in .venv.
  local guard
  guard=$(compgen -G "$(t "$PREFIX/.venv")/lib/python3*/site-packages/chargepoint/release/guard.py" | head -n 1 \
          || true)
  if [ -n "$guard" ]; then
    ensure_file "$guard" "$PREFIX/update-guard.py" 644
  else
    warn "the firmware has no update guard (chargepoint/release/guard.py): updates from signed releases are off"
  fi
  local udev_before modprobe_before
  udev_before=${#CHANGES[@]}
  ensure_file "$SUPPORT/packaging/udev/99-chargepoint.rules" "$UDEV_PATH" 644
  UDEV_CHANGED=$(( ${#CHANGES[@]} - udev_before ))
  modprobe_before=${#CHANGES[@]}
  ensure_file "$SUPPORT/packaging/modprobe/chargepoint-nfc.conf" "$MODPROBE_PATH" 644
  if [ $(( ${#CHANGES[@]} - modprobe_before )) -gt 0 ]; then
    note "the kernel's NFC drivers stay off the card reader from the next boot (now: modprobe -r pn533_usb port100)"
  fi
  if [ -f "$SUPPORT/packaging/bash-completion/chargepoint" ]; then
    ensure_file "$SUPPORT/packaging/bash-completion/chargepoint" "$COMPLETION_PATH" 644
  fi
  local unit_before
  unit_before=${#CHANGES[@]}
  ensure_file "$SUPPORT/systemd/chargepoint.service" "$UNIT_PATH" 644
  UNIT_CHANGED=$(( ${#CHANGES[@]} - unit_before ))
  local link
  link=$(t "$CLI_LINK")
  if [ "$(readlink "$link" 2>/dev/null || true)" = "$PREFIX/.venv/bin/chargepoint" ]; then
    unchanged "$CLI_LINK"
  elif [ -e "$link" ] || [ -L "$link" ]; then
    warn "$CLI_LINK exists and is not install.sh's link: left alone (use $PREFIX/.venv/bin/chargepoint)"
  else
    install -d -m 0755 "$(dirname "$link")"
    ln -s "$PREFIX/.venv/bin/chargepoint" "$link"
    changed "$CLI_LINK -> $PREFIX/.venv/bin/chargepoint"
  fi
}

step_config() {
  section "configuration"
  ensure_dir "$CONFIG_DIR" 750 0 "$SERVICE_GID"
  local host
  host=$(t "$CONFIG_PATH")
  if [ -e "$host" ] || [ -L "$host" ]; then
    if [ "$(mode_owner "$host")" != "640 0 $SERVICE_GID" ]; then
      chown "0:$SERVICE_GID" "$host"; chmod 640 "$host"
      changed "$CONFIG_PATH: mode 640, owner root:$SERVICE_USER (its content is untouched)"
    else
      unchanged "$CONFIG_PATH (kept as it is)"
    fi
  else
    install -m 640 -o 0 -g "$SERVICE_GID" "$SUPPORT/config/hardware.toml" "$host"
    changed "wrote $CONFIG_PATH from config/hardware.toml"
  fi
}

step_systemd() {
  section "systemd"
  if ! have_systemctl; then
    warn "systemctl is not installed here: the unit is in place but not enabled"
    return 0
  fi
  if systemd_running; then
    if [ "$UNIT_CHANGED" -gt 0 ]; then
      systemctl daemon-reload
      changed "systemctl daemon-reload"
    fi
  else
    note "${ROOT_PREFIX:+--root $ROOT_PREFIX: }no systemd running here: no daemon-reload, no restart; the unit takes effect at boot"
  fi
  local state
  state=$(systemctl_offline is-enabled chargepoint.service 2>/dev/null || true)
  if [ "$ACTION" = upgrade ]; then
    unchanged "chargepoint.service ${state:-not enabled} (an upgrade leaves that as it was)"
  elif [ "$ENABLE" = 0 ]; then
    unchanged "chargepoint.service ${state:-not enabled} (--no-enable)"
  elif [ "$state" = enabled ]; then
    unchanged "chargepoint.service enabled"
  elif [ "$state" = masked ]; then
    warn "chargepoint.service is masked: left so (systemctl unmask chargepoint to use it)"
  else
    systemctl_offline enable --quiet chargepoint.service
    changed "enabled chargepoint.service (it starts at boot)"
  fi
  if [ "$ACTION" = upgrade ] && [ "$FIRMWARE_CHANGED" = 1 ] && systemd_running; then
    if ! systemctl is-active --quiet chargepoint.service; then
      note "chargepoint.service is not running: it starts the new firmware when it is started"
    elif [ "$RESTART" = 0 ]; then
      note "chargepoint.service still runs the old firmware (--no-restart): systemctl restart chargepoint"
    else
      systemctl restart chargepoint.service
      changed "restarted chargepoint.service on the new firmware"
    fi
  fi
}

step_udev() {
  [ "$UDEV_CHANGED" -gt 0 ] || return 0
  if [ -z "$ROOT_PREFIX" ] && command -v udevadm >/dev/null && [ -e /run/udev/control ]; then
    if udevadm control --reload && udevadm trigger --action=add --subsystem-match=gpio \
         --subsystem-match=spidev --subsystem-match=pwm --subsystem-match=watchdog --subsystem-match=misc \
         --subsystem-match=usb; then
      changed "udev rules reloaded and applied"
    else
      warn "udevadm could not apply the rules now; they apply at the next boot"
    fi
  else
    note "${ROOT_PREFIX:+--root $ROOT_PREFIX: }no udev running here to reload: the device rules apply at boot"
  fi
}

check_config() {
  section "checks"
  local host keys
  host=$(t "$CONFIG_PATH")
  keys=$(sed -n "s/^[[:space:]]*\([A-Za-z0-9_]*\)[[:space:]]*=.*$PLACEHOLDER.*/\1/p" "$host" | paste -sd, - | sed 's/,/, /g')
  if [ -n "$keys" ]; then
    note "$CONFIG_PATH still has placeholders ($PLACEHOLDER): $keys"
  fi
  local output
  if output=$(in_target "$PREFIX/.venv/bin/chargepoint" config validate --config "$CONFIG_PATH" 2>&1); then
    note "chargepoint config validate: the configuration is valid"
  else
    warn "chargepoint config validate finds problems in $CONFIG_PATH (the daemon would keep the charger safe and not charge):"
    printf '    %s\n' "${output//$'\n'/$'\n'    }" >&2
  fi
}

# ---------------------------------------------------------------------------------------------------- actions

do_install() {
  check_python
  make_stage
  stage_source
  local current installed_id
  current=$(t "$PREFIX/.venv")
  if [ -d "$current" ] && [ ! -L "$current" ]; then
    die "$PREFIX/.venv is a directory: a manual installation (docs/deployment.md of old) is there. Stop the" \
        "service, move $PREFIX aside (mv $PREFIX $PREFIX.old) and run install.sh again; /etc/chargepoint is kept"
  fi
  installed_id=$(readlink "$current" 2>/dev/null || true)
  installed_id=${installed_id#venvs/}
  if [ "$ACTION" = install ] && [ -n "$installed_id" ] && [ "$installed_id" != "$BUILD_ID" ]; then
    die "chargepoint $installed_id is installed and this is $BUILD_ID: to replace it, run install.sh --upgrade"
  fi
  if [ "$ACTION" = upgrade ] && [ -z "$installed_id" ]; then
    die "chargepoint is not installed${ROOT_PREFIX:+ in $ROOT_PREFIX}: run install.sh without --upgrade"
  fi
  section "chargepoint $ACTION${ROOT_PREFIX:+ into $ROOT_PREFIX}: $TARGET_NAME, $MACHINE, Python $PYTHON_VERSION," \
          "from $FROM${EXTRAS:+, extras [$EXTRAS]}"
  ensure_venv_support
  ensure_runtime_libraries
  step_groups_and_user
  step_firmware
  step_support_files
  step_config
  step_udev
  step_systemd
  check_config
  echo
  if [ ${#CHANGES[@]} -eq 0 ]; then
    section "nothing changed: chargepoint $VERSION is installed and everything is in place"
  else
    section "done: ${#CHANGES[@]} changes"
  fi
  if [ "$ACTION" = install ] && [ ${#CHANGES[@]} -gt 0 ]; then
    cat <<EOF

Next (/opt/chargepoint/docs/install.md, from step 5):
  sudoedit $CONFIG_PATH              replace every $PLACEHOLDER, check each CHECK against the charger
  sudo -u chargepoint chargepoint config validate
  sudo systemctl start chargepoint
  sudo -u chargepoint chargepoint status
  sudo -u chargepoint chargepoint selftest        no EV plugged in, stand clear: the contactor closes for 100 ms
EOF
  fi
}

do_uninstall() {
  section "chargepoint uninstall${ROOT_PREFIX:+ from $ROOT_PREFIX}$( [ "$PURGE" = 1 ] && echo ", purging configuration and data")"
  if have_systemctl; then
    if systemd_running && systemctl is-active --quiet chargepoint.service; then
      systemctl stop chargepoint.service
      changed "stopped chargepoint.service"
    fi
    local state
    state=$(systemctl_offline is-enabled chargepoint.service 2>/dev/null || true)
    if [ "$state" = enabled ]; then
      systemctl_offline disable --quiet chargepoint.service
      changed "disabled chargepoint.service"
    fi
  fi
  remove_path "$(dirname "$UNIT_PATH")/multi-user.target.wants/chargepoint.service"
  local before=${#CHANGES[@]}
  remove_path "$UNIT_PATH"
  if [ ${#CHANGES[@]} -gt "$before" ] && systemd_running; then
    systemctl daemon-reload
  fi
  before=${#CHANGES[@]}
  remove_path "$UDEV_PATH"
  if [ ${#CHANGES[@]} -gt "$before" ] && [ -z "$ROOT_PREFIX" ] && [ -e /run/udev/control ]; then
    udevadm control --reload || true
  fi
  remove_path "$MODPROBE_PATH"
  remove_path "$COMPLETION_PATH"
  if [ "$(readlink "$(t "$CLI_LINK")" 2>/dev/null || true)" = "$PREFIX/.venv/bin/chargepoint" ]; then
    remove_path "$CLI_LINK"
  fi
  local prefix
  prefix=$(t "$PREFIX")
  if [ -d "$prefix" ]; then
    if [ -d "$prefix/venvs" ] || [ -L "$prefix/.venv" ] || [ -z "$(ls -A "$prefix")" ]; then
      remove_path "$PREFIX"
    else
      warn "$PREFIX was not made by install.sh (no venvs/): left alone"
    fi
  fi
  if [ "$PURGE" = 1 ]; then
    remove_path "$CONFIG_DIR"
    remove_path "$STATE_DIR"
    if [ -n "$(uid_of "$SERVICE_USER")" ]; then
      shadow userdel "$SERVICE_USER"
      changed "removed user $SERVICE_USER"
    fi
    if [ -n "$(gid_of "$SERVICE_USER")" ]; then
      shadow groupdel "$SERVICE_USER"
      changed "removed group $SERVICE_USER"
    fi
    note "the device groups (${DEVICE_GROUPS[*]}) stay: other users may be in them"
  else
    local kept=()
    [ -e "$(t "$CONFIG_DIR")" ] && kept+=("$CONFIG_DIR (configuration)")
    [ -e "$(t "$STATE_DIR")" ] && kept+=("$STATE_DIR (sessions, history, ledger)")
    if [ ${#kept[@]} -gt 0 ]; then
      note "kept: $(printf '%s, ' "${kept[@]}")and the user $SERVICE_USER; --uninstall --purge removes them"
    fi
  fi
  echo
  if [ ${#CHANGES[@]} -eq 0 ]; then
    section "nothing changed: chargepoint is not installed${ROOT_PREFIX:+ in $ROOT_PREFIX}"
  else
    section "done: ${#CHANGES[@]} changes"
  fi
}

main() {
  parse_args "$@"
  check_invoker "$@"
  check_target
  trap cleanup EXIT
  if [ "$ACTION" = uninstall ]; then do_uninstall; else do_install; fi
}

# One line, so that bash has read all of it before --uninstall removes this file from /opt/chargepoint.
main "$@"; exit $?

#!/usr/bin/env bash
# trigger-edge installer for Raspberry Pi OS (Bookworm / Trixie, 64-bit) and
# other Debian-like systems.
#
# Installs the runtime (package `trigger-edge` with the `pi` extra -- never
# TensorFlow) into a virtual environment, creates a system user, writes a
# default config if there is none, and installs + enables a systemd unit
# (with --wyoming also edge-serve.service, the Wyoming service for Home Assistant).
#
# Idempotent: run it again to upgrade. See deploy/README.md and `--help`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME="trigger-edge"
UNIT_NAME="trigger-edge.service"
SERVE_UNIT_NAME="edge-serve.service"

# ----------------------------------------------------------------- defaults
SOURCE_KIND=""          # repo | wheel | pypi
SOURCE_PATH=""
PYPI_SPEC="trigger-edge"
PREFIX="/opt/trigger-edge"
CONFIG_DIR="/etc/trigger-edge"
UNIT_DIR="/etc/systemd/system"
SVC_USER="trigger-edge"
PYTHON="${PYTHON:-}"
INITIAL_CONFIG=""
DO_APT=1
DO_USER=1
DO_SYSTEMD=1
DO_ENABLE=1
DO_UNINSTALL=0
DO_WYOMING=0
PURGE_CONFIG=0
FORCE=0
ROOT=""
CHANGED=0

usage() {
    cat <<'EOF'
Usage: install.sh [options]

Where the package comes from (default: the repository this script sits in,
or a trigger_edge-*.whl next to the deploy/ folder of a bundle):
  --source PATH        a source checkout (directory with pyproject.toml)
  --wheel FILE         a built wheel (trigger_edge-*.whl)
  --pypi [SPEC]        from PyPI (SPEC defaults to "trigger-edge", e.g. "trigger-edge==0.1.0")

Where it goes:
  --prefix DIR         install prefix, venv in DIR/venv   (default /opt/trigger-edge)
  --config-dir DIR     config directory                   (default /etc/trigger-edge)
  --unit-dir DIR       where the systemd unit is written  (default /etc/systemd/system)
  --user NAME          service user                       (default trigger-edge)
  --python EXE         interpreter for the venv           (default /usr/bin/python3)
  --config FILE        initial config.toml, used only if the config does not exist yet
  --root DIR           sandbox install: prefix, config dir and unit dir all under DIR;
                       implies --no-apt --no-user --no-enable (for tests)

What to skip:
  --no-apt             do not install system packages with apt-get
  --no-user            do not create the service user / groups, do not chown
  --no-systemd         do not install the systemd unit at all
  --no-enable          write the unit but do not run systemctl
  --wyoming            also install + enable edge-serve.service, the Wyoming wake-word
                       service for Home Assistant (port 10400; options in serve.env)
  --force              reinstall the package even if it looks up to date

Removal:
  --uninstall          stop/disable and remove the unit, the venv and the user
  --purge-config       with --uninstall: also delete the config directory

  -h, --help           this help
EOF
}

log()  { printf '%s: %s\n' "$NAME" "$*"; }
warn() { printf '%s: WARNING: %s\n' "$NAME" "$*" >&2; }
die()  { printf '%s: ERROR: %s\n' "$NAME" "$*" >&2; exit 1; }

need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs an argument"; }

# ------------------------------------------------------------------ options
while [[ $# -gt 0 ]]; do
    case "$1" in
        --source)      need_arg "$@"; SOURCE_KIND=repo;  SOURCE_PATH="$2"; shift 2 ;;
        --wheel)       need_arg "$@"; SOURCE_KIND=wheel; SOURCE_PATH="$2"; shift 2 ;;
        --pypi)        SOURCE_KIND=pypi
                       if [[ $# -ge 2 && "$2" != -* ]]; then PYPI_SPEC="$2"; shift; fi
                       shift ;;
        --prefix)      need_arg "$@"; PREFIX="$2"; shift 2 ;;
        --config-dir)  need_arg "$@"; CONFIG_DIR="$2"; shift 2 ;;
        --unit-dir)    need_arg "$@"; UNIT_DIR="$2"; shift 2 ;;
        --user)        need_arg "$@"; SVC_USER="$2"; shift 2 ;;
        --python)      need_arg "$@"; PYTHON="$2"; shift 2 ;;
        --config)      need_arg "$@"; INITIAL_CONFIG="$2"; shift 2 ;;
        --root)        need_arg "$@"; ROOT="$2"; shift 2 ;;
        --no-apt)      DO_APT=0; shift ;;
        --no-user)     DO_USER=0; shift ;;
        --no-systemd)  DO_SYSTEMD=0; shift ;;
        --no-enable)   DO_ENABLE=0; shift ;;
        --wyoming)     DO_WYOMING=1; shift ;;
        --force)       FORCE=1; shift ;;
        --uninstall)   DO_UNINSTALL=1; shift ;;
        --purge-config) PURGE_CONFIG=1; shift ;;
        -h|--help)     usage; exit 0 ;;
        *)             usage >&2; die "unknown option: $1" ;;
    esac
done

if [[ -n "$ROOT" ]]; then
    mkdir -p "$ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
    PREFIX="$ROOT${PREFIX}"
    CONFIG_DIR="$ROOT${CONFIG_DIR}"
    UNIT_DIR="$ROOT${UNIT_DIR}"
    DO_APT=0; DO_USER=0; DO_ENABLE=0
fi

# absolute, no trailing slash (they end up in the unit file)
abspath() { local d; d="$(dirname -- "$1")"; mkdir -p -- "$d"; printf '%s/%s\n' "$(cd -- "$d" && pwd)" "$(basename -- "$1")"; }
if [[ $DO_UNINSTALL -eq 0 ]]; then
    PREFIX="$(abspath "$PREFIX")"
    CONFIG_DIR="$(abspath "$CONFIG_DIR")"
fi
PREFIX="${PREFIX%/}"; CONFIG_DIR="${CONFIG_DIR%/}"; UNIT_DIR="${UNIT_DIR%/}"
[[ -n "$PREFIX" && "$PREFIX" != "/" && "$PREFIX" != "/usr" ]] || die "refusing prefix '$PREFIX'"
[[ -n "$CONFIG_DIR" && "$CONFIG_DIR" != "/" && "$CONFIG_DIR" != "/etc" ]] || die "refusing config dir '$CONFIG_DIR'"

VENV="$PREFIX/venv"
LIBEXEC="$PREFIX/libexec"
CONFIG_FILE="$CONFIG_DIR/config.toml"
UNIT_FILE="$UNIT_DIR/$UNIT_NAME"
SERVE_UNIT_FILE="$UNIT_DIR/$SERVE_UNIT_NAME"
STAMP="$PREFIX/.installed"

is_root() { [[ "$(id -u)" -eq 0 ]]; }
systemd_running() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }

if [[ $DO_APT -eq 1 || $DO_USER -eq 1 ]] && ! is_root; then
    die "run as root (sudo), or pass --no-apt --no-user (and --prefix/--config-dir you can write)"
fi

# ================================================================ uninstall
uninstall() {
    if [[ $DO_SYSTEMD -eq 1 ]]; then
        if [[ $DO_ENABLE -eq 1 ]] && systemd_running; then
            systemctl disable --now "$UNIT_NAME" "$SERVE_UNIT_NAME" 2>/dev/null || true
        fi
        for f in "$UNIT_FILE" "$SERVE_UNIT_FILE"; do
            if [[ -f "$f" ]]; then
                rm -f -- "$f"; log "removed $f"
            fi
        done
        if [[ $DO_ENABLE -eq 1 ]] && systemd_running; then
            systemctl daemon-reload || true
            systemctl reset-failed "$UNIT_NAME" 2>/dev/null || true
        fi
    fi
    # only what this script created; the prefix itself goes only if then empty
    rm -rf -- "$VENV" "$LIBEXEC" "$PREFIX/src" "$STAMP" "$PREFIX/README.md" "$PREFIX/config.example.toml"
    rmdir -- "$PREFIX" 2>/dev/null || true
    log "removed $VENV"
    if [[ $DO_USER -eq 1 ]] && getent passwd "$SVC_USER" >/dev/null; then
        userdel "$SVC_USER" || warn "could not remove user $SVC_USER"
        log "removed user $SVC_USER"
    fi
    if [[ $PURGE_CONFIG -eq 1 ]]; then
        if [[ -d "$CONFIG_DIR" ]]; then
            rm -rf -- "$CONFIG_DIR"; log "removed $CONFIG_DIR"
        fi
    elif [[ -f "$CONFIG_FILE" ]]; then
        log "kept $CONFIG_FILE (use --purge-config to delete it)"
    fi
    log "uninstalled"
}

if [[ $DO_UNINSTALL -eq 1 ]]; then
    uninstall
    exit 0
fi
[[ $PURGE_CONFIG -eq 0 ]] || die "--purge-config only makes sense with --uninstall"

# ================================================================== install
ARCH="$(uname -m)"
case "$ARCH" in
    aarch64|x86_64) ;;
    armv7l|armv6l) die "32-bit Raspberry Pi OS ($ARCH) is not supported: flash the 64-bit image" ;;
    *) warn "untested architecture $ARCH" ;;
esac

# ---------------------------------------------------------------- source
if [[ -z "$SOURCE_KIND" ]]; then
    if [[ -f "$SCRIPT_DIR/../pyproject.toml" ]]; then
        SOURCE_KIND=repo; SOURCE_PATH="$SCRIPT_DIR/.."
    else
        # a bundle (make deploy-bundle): deploy/ next to trigger_edge-*.whl
        newest=""
        for whl in "$SCRIPT_DIR"/../trigger_edge-*.whl; do
            [[ -e "$whl" ]] || continue
            if [[ -z "$newest" || "$whl" -nt "$newest" ]]; then newest="$whl"; fi
        done
        [[ -n "$newest" ]] || die "no source found next to $SCRIPT_DIR: use --source, --wheel or --pypi"
        SOURCE_KIND=wheel; SOURCE_PATH="$newest"
    fi
fi
case "$SOURCE_KIND" in
    repo)  [[ -f "$SOURCE_PATH/pyproject.toml" ]] || die "$SOURCE_PATH has no pyproject.toml"
           SOURCE_PATH="$(cd "$SOURCE_PATH" && pwd)" ;;
    wheel) [[ -f "$SOURCE_PATH" ]] || die "no such wheel: $SOURCE_PATH"
           SOURCE_PATH="$(abspath "$SOURCE_PATH")" ;;
    pypi)  ;;
esac
for f in trigger-edge.service config.example.toml wait-for-mic.sh; do
    [[ -f "$SCRIPT_DIR/$f" ]] || die "missing $SCRIPT_DIR/$f (run install.sh from its deploy/ folder)"
done
log "installing from $SOURCE_KIND ${SOURCE_PATH:-$PYPI_SPEC} into $PREFIX"

# ------------------------------------------------------------- apt packages
APT_PACKAGES=(
    python3 python3-venv python3-dev gcc libc6-dev   # venv + building PyAudio
    portaudio19-dev libportaudio2                    # PyAudio (microphone)
    libsndfile1                                      # soundfile
    alsa-utils                                       # arecord -l / alsamixer for setup
    ca-certificates
)
install_apt() {
    local missing=() p candidates=("${APT_PACKAGES[@]}")
    # known to the (possibly stale) package lists: try to have it
    if apt-cache show python3-lgpio >/dev/null 2>&1; then candidates+=(python3-lgpio); fi
    for p in "${candidates[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "system packages already installed"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # python3-lgpio: the distro's lgpio binding (Pi 5 GPIO; PyPI has no aarch64
    # wheel for Python 3.13). Raspberry Pi OS has it; plain Debian may not.
    local want=()
    if ! printf '%s\n' "${missing[@]}" | grep -qx python3-lgpio \
        && ! dpkg-query -W -f='${Status}' python3-lgpio 2>/dev/null | grep -q "install ok installed"; then
        missing+=(python3-lgpio)
    fi
    for p in "${missing[@]}"; do
        if [[ "$p" == python3-lgpio ]] && ! apt-cache show python3-lgpio >/dev/null 2>&1; then
            log "python3-lgpio is not in this distribution's archive (not Raspberry Pi OS?): skipped"
            continue
        fi
        want+=("$p")
    done
    [[ ${#want[@]} -gt 0 ]] || return 0
    log "apt-get install ${want[*]}"
    apt-get install -y -q --no-install-recommends "${want[@]}"
    CHANGED=1
}
if [[ $DO_APT -eq 1 ]]; then
    command -v apt-get >/dev/null || die "apt-get not found (use --no-apt and install the packages yourself)"
    install_apt
fi

if [[ -z "$PYTHON" ]]; then
    if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON="$(command -v python3 || true)"; fi
fi
if [[ -z "$PYTHON" ]] || ! command -v "$PYTHON" >/dev/null; then die "python3 not found"; fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than Python 3.11"

# ----------------------------------------------------------- user / groups
if [[ $DO_USER -eq 1 ]]; then
    for g in audio gpio; do
        if ! getent group "$g" >/dev/null; then
            groupadd --system "$g"; log "created group $g"; CHANGED=1
        fi
    done
    if ! getent passwd "$SVC_USER" >/dev/null; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "trigger-edge wake-word detector" \
            --groups audio,gpio "$SVC_USER"
        log "created user $SVC_USER"; CHANGED=1
    else
        usermod -a -G audio,gpio "$SVC_USER"
    fi
fi

# ---------------------------------------------------------------- the venv
mkdir -p "$PREFIX" "$LIBEXEC"
want_ver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ -x "$VENV/bin/python" ]]; then
    have_ver="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo broken)"
    if [[ "$have_ver" != "$want_ver" ]]; then
        log "venv Python $have_ver != $want_ver (OS upgrade?): recreating it"
        rm -rf -- "$VENV" "$STAMP"
    fi
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV (Python $want_ver)"
    "$PYTHON" -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    CHANGED=1
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

WORK="$(mktemp -d)"
trap 'rm -rf -- "$WORK"' EXIT

# Build/locate the wheel; a fingerprint of its *contents* decides whether the
# installed package is already up to date (re-runs are then fast no-ops).
wheel_fingerprint() {
    "$VENV/bin/python" - "$1" <<'PY'
import hashlib, sys, zipfile
h = hashlib.sha256()
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in sorted(z.namelist()):
        if ".dist-info/RECORD" in name:
            continue
        h.update(name.encode() + b"\0" + hashlib.sha256(z.read(name)).digest())
print(h.hexdigest())
PY
}

WHEEL=""
case "$SOURCE_KIND" in
    repo)
        # copy the tree first: pip builds in-tree and must not write into the checkout
        log "building wheel from $SOURCE_PATH"
        mkdir -p "$WORK/src" "$WORK/dist"
        tar -C "$SOURCE_PATH" --exclude=.git --exclude=.venv --exclude=venv \
            --exclude=build --exclude=dist --exclude='*.egg-info' --exclude=__pycache__ \
            --exclude=./data --exclude=./runs --exclude=./work --exclude=.pytest_cache --exclude='.lgd-nfy*' \
            -cf - . | tar -C "$WORK/src" -xf -
        "${PIP[@]}" wheel -q --no-deps -w "$WORK/dist" "$WORK/src"
        WHEEL="$(ls "$WORK"/dist/trigger_edge-*.whl)"
        ;;
    wheel) WHEEL="$SOURCE_PATH" ;;
esac

if [[ -n "$WHEEL" ]]; then
    fp="$(wheel_fingerprint "$WHEEL")"
    if [[ $FORCE -eq 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$fp" ]] \
        && "$VENV/bin/python" -c 'import edge' 2>/dev/null; then
        log "package already up to date ($(basename "$WHEEL"))"
    else
        log "pip install $(basename "$WHEEL")[pi]"
        "${PIP[@]}" install -q --upgrade --upgrade-strategy only-if-needed "${WHEEL}[pi]"
        # same version number, new contents: make sure the new files land
        "${PIP[@]}" install -q --force-reinstall --no-deps "$WHEEL"
        printf '%s\n' "$fp" > "$STAMP"
        CHANGED=1
    fi
else
    before="$("${PIP[@]}" freeze 2>/dev/null | sha256sum)"
    log "pip install ${PYPI_SPEC}[pi] (from PyPI)"
    "${PIP[@]}" install -q --upgrade --upgrade-strategy only-if-needed "${PYPI_SPEC}[pi]"
    [[ "$("${PIP[@]}" freeze 2>/dev/null | sha256sum)" == "$before" ]] || CHANGED=1
    printf 'pypi %s\n' "$PYPI_SPEC" > "$STAMP"
fi

# --- lgpio: gpiozero's pin factory on the Pi 5 (and the default on Bookworm).
# The venv is isolated (no --system-site-packages: the distro's numpy etc. must
# not leak in); instead the distro's python3-lgpio module is linked into it.
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if ! "$VENV/bin/python" -c 'import lgpio' 2>/dev/null; then
    sys_lgpio="$("$PYTHON" -c 'import lgpio, _lgpio; print(lgpio.__file__); print(_lgpio.__file__)' 2>/dev/null || true)"
    if [[ -n "$sys_lgpio" ]]; then
        while IFS= read -r f; do
            ln -sfn "$f" "$site/$(basename "$f")"
        done <<<"$sys_lgpio"
        log "linked the system lgpio module into the venv"
        CHANGED=1
    # PyPI fallback: wheels only (no aarch64 wheel for every Python; an old
    # placeholder release must not be picked, hence the version floor)
    elif "${PIP[@]}" install -q --only-binary=:all: "lgpio>=0.2.2" >/dev/null 2>&1; then
        log "installed lgpio from PyPI"
        CHANGED=1
    else
        warn "lgpio not available: GPIO output will not work (fine on a non-Pi machine;"
        warn "on a Pi: apt-get install python3-lgpio and run this script again)"
    fi
fi

# ------------------------------------------------------------ verification
log "checking the runtime imports"
"$VENV/bin/python" - <<'PY' || die "the runtime in $VENV is incomplete (see above)"
import importlib, sys
bad = []
for mod in ("edge", "numpy", "ai_edge_litert.interpreter", "pymicro_features",
            "soundfile", "soxr", "gpiozero", "paho.mqtt.client", "pyaudio", "wyoming"):
    try:
        importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001
        bad.append(f"{mod}: {e}")
for b in bad:
    print("  cannot import", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
if "$VENV/bin/python" -c 'import tensorflow' >/dev/null 2>&1; then
    die "TensorFlow is importable in $VENV -- the runtime must never pull it in (check the dependencies)"
fi
log "ok: no TensorFlow in the venv"
[[ -x "$VENV/bin/edge-run" ]] || die "$VENV/bin/edge-run was not installed"
"$VENV/bin/edge-run" --help >/dev/null || die "$VENV/bin/edge-run --help failed"
if [[ $DO_WYOMING -eq 1 ]]; then
    [[ -x "$VENV/bin/edge-serve" ]] || die "$VENV/bin/edge-serve was not installed"
    "$VENV/bin/edge-serve" --help >/dev/null || die "$VENV/bin/edge-serve --help failed"
fi

# helper used by the unit's ExecStartPre, plus docs for reference
if ! cmp -s "$SCRIPT_DIR/wait-for-mic.sh" "$LIBEXEC/wait-for-mic"; then
    install -m 0755 "$SCRIPT_DIR/wait-for-mic.sh" "$LIBEXEC/wait-for-mic"
    CHANGED=1
fi
install -m 0644 "$SCRIPT_DIR/config.example.toml" "$PREFIX/config.example.toml"
if [[ -f "$SCRIPT_DIR/README.md" ]]; then install -m 0644 "$SCRIPT_DIR/README.md" "$PREFIX/README.md"; fi

# ------------------------------------------------------------------ config
cfg_group=""
if [[ $DO_USER -eq 1 ]]; then cfg_group="$SVC_USER"; fi
mkdir -p "$CONFIG_DIR"
if [[ ! -e "$CONFIG_FILE" ]]; then
    src="$SCRIPT_DIR/config.example.toml"
    [[ -z "$INITIAL_CONFIG" ]] || src="$INITIAL_CONFIG"
    [[ -f "$src" ]] || die "no such config: $src"
    install -m 0640 "$src" "$CONFIG_FILE"
    log "wrote $CONFIG_FILE (edit it, then: systemctl restart $UNIT_NAME)"
    CHANGED=1
else
    log "kept existing $CONFIG_FILE"
    [[ -z "$INITIAL_CONFIG" ]] || log "ignored --config $INITIAL_CONFIG (a config already exists)"
fi
# it may hold MQTT passwords: root:<service group>, 0640, directory 0750
chmod 0640 "$CONFIG_FILE"
chmod 0750 "$CONFIG_DIR"
if [[ -n "$cfg_group" ]]; then
    chown root:"$cfg_group" "$CONFIG_DIR" "$CONFIG_FILE"
fi

# ---------------------------------------------------------- systemd unit
render_unit() {  # $1: unit file name in deploy/
    sed -e "s|/opt/trigger-edge|$PREFIX|g" \
        -e "s|/etc/trigger-edge|$CONFIG_DIR|g" \
        -e "s|^User=.*|User=$SVC_USER|" \
        -e "s|^Group=.*|Group=$SVC_USER|" \
        "$SCRIPT_DIR/$1"
}
# install_unit NAME FILE: write the rendered unit, enable and (re)start it
install_unit() {
    local name="$1" file="$2" changed=0
    render_unit "$name" > "$WORK/$name"
    if ! cmp -s "$WORK/$name" "$file"; then
        install -m 0644 "$WORK/$name" "$file"
        log "installed $file"
        changed=1; CHANGED=1
    fi
    if [[ $DO_ENABLE -eq 0 ]]; then
        log "not enabling $name (--no-enable)"
    elif ! systemd_running; then
        log "systemd is not running here (chroot/container?): $name written, not enabled;"
        log "on the Pi run: systemctl enable --now $name"
    else
        [[ $changed -eq 0 ]] || systemctl daemon-reload
        if ! systemctl is-enabled --quiet "$name" 2>/dev/null; then
            systemctl enable "$name"; CHANGED=1
        fi
        if [[ $CHANGED -eq 1 ]] || ! systemctl is-active --quiet "$name"; then
            systemctl restart "$name"
            log "started $name (logs: journalctl -u $name -f)"
        fi
    fi
}
if [[ $DO_SYSTEMD -eq 1 ]]; then
    mkdir -p "$UNIT_DIR"
    install_unit "$UNIT_NAME" "$UNIT_FILE"
    if [[ $DO_WYOMING -eq 1 ]]; then
        install_unit "$SERVE_UNIT_NAME" "$SERVE_UNIT_FILE"
    fi
else
    log "skipping the systemd unit (--no-systemd)"
fi

log "venv: $VENV ($(du -sh "$VENV" 2>/dev/null | cut -f1))"
if [[ $CHANGED -eq 1 ]]; then log "RESULT: changed"; else log "RESULT: unchanged"; fi

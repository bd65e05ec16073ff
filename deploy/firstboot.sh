#!/usr/bin/env bash
# First-boot installer: finds the trigger-edge code, waits for the network and
# runs install.sh (retrying). Called by cloud-init (deploy/cloud-init/user-data)
# on Raspberry Pi OS Trixie, or by hand over ssh on Bookworm:
#     sudo bash /boot/firmware/trigger-edge/deploy/firstboot.sh
#
# Where the code comes from, first match wins:
#   1. TRIGGER_EDGE_REPO=<git url> [TRIGGER_EDGE_REF=<branch/tag>]: git clone
#   2. <boot partition>/trigger-edge/ : a bundle made by `make deploy-bundle`
#      (deploy/ + trigger_edge-*.whl) or a copy of the whole repository
#   3. the checkout this script sits in
# A <boot partition>/trigger-edge/config.toml becomes /etc/trigger-edge/config.toml
# if there is none yet, and is then deleted from the (world-readable) FAT
# partition because it may hold passwords.
# Extra arguments are passed to install.sh. Log: /var/log/trigger-edge-firstboot.log
set -euo pipefail

LOG=/var/log/trigger-edge-firstboot.log
STAGE=/opt/trigger-edge/src
DONE=/var/lib/trigger-edge/firstboot.done
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

[[ "$(id -u)" -eq 0 ]] || { echo "firstboot.sh: run as root" >&2; exit 1; }
exec > >(tee -a "$LOG") 2>&1
say() { printf '%s firstboot: %s\n' "$(date '+%F %T')" "$*"; }

if [[ -e "$DONE" && "${1:-}" != "--again" ]]; then
    say "already done ($DONE); pass --again to rerun"; exit 0
fi
[[ "${1:-}" != "--again" ]] || shift

BOOT=""
for d in /boot/firmware /boot; do
    if [[ -d "$d/trigger-edge" ]]; then BOOT="$d/trigger-edge"; break; fi
done

wait_for_network() {
    local i
    for i in $(seq 1 60); do
        if ip route show default 2>/dev/null | grep -q . || ip -6 route show default 2>/dev/null | grep -q .; then
            return 0
        fi
        [[ $i -ne 1 ]] || say "waiting for a network connection (up to 5 minutes)"
        sleep 5
    done
    say "no default route after 5 minutes; trying anyway"
}

wait_for_network
mkdir -p "$(dirname "$STAGE")"
if [[ -n "${TRIGGER_EDGE_REPO:-}" ]]; then
    command -v git >/dev/null || { apt-get update -q && apt-get install -y -q git; }
    rm -rf -- "$STAGE"
    say "cloning $TRIGGER_EDGE_REPO"
    git clone --depth 1 ${TRIGGER_EDGE_REF:+--branch "$TRIGGER_EDGE_REF"} "$TRIGGER_EDGE_REPO" "$STAGE"
elif [[ -n "$BOOT" && -f "$BOOT/deploy/install.sh" ]]; then
    say "copying $BOOT to $STAGE"
    rm -rf -- "$STAGE"; mkdir -p "$STAGE"
    # not the config: it is handled below and must not linger in a copy
    tar -C "$BOOT" --exclude=./config.toml -cf - . | tar -C "$STAGE" -xf - --no-same-owner
elif [[ -f "$SCRIPT_DIR/install.sh" ]]; then
    STAGE="$(cd "$SCRIPT_DIR/.." && pwd)"
else
    say "no trigger-edge code found (set TRIGGER_EDGE_REPO or copy the bundle to the boot partition)"
    exit 1
fi

args=("$@")
if [[ -n "$BOOT" && -f "$BOOT/config.toml" ]]; then
    install -d -m 0750 /var/lib/trigger-edge
    install -m 0600 "$BOOT/config.toml" /var/lib/trigger-edge/boot-config.toml
    args+=(--config /var/lib/trigger-edge/boot-config.toml)
fi

ok=0
for attempt in 1 2 3; do
    say "running install.sh (attempt $attempt)"
    if bash "$STAGE/deploy/install.sh" "${args[@]}"; then ok=1; break; fi
    say "install.sh failed; retrying in 30 s"
    sleep 30
done
[[ $ok -eq 1 ]] || { say "install failed 3 times: see $LOG"; exit 1; }

if [[ -n "$BOOT" && -f "$BOOT/config.toml" ]]; then
    rm -f -- "$BOOT/config.toml" /var/lib/trigger-edge/boot-config.toml
    say "removed config.toml from the boot partition (it went to /etc/trigger-edge/config.toml unless one existed)"
fi
mkdir -p "$(dirname "$DONE")"
date > "$DONE"
say "done: systemctl status trigger-edge / journalctl -u trigger-edge -f"

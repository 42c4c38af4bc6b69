#!/usr/bin/env bash
# Builds (once) and caches the Debian 12 root file system that tests/vm/run boots with
# systemd-nspawn, then prints the path of the cached tarball.
#
#   rootfs.sh [FLAVOUR EXTRA_PACKAGES]
#
# A flavour is the same system with more packages (comma-separated), cached under its own
# name: tests/fleet/run asks for `fleet` with SSH, Python and Ansible. Flavours never evict
# one another, so the VM test and the fleet test each build theirs once.
#
# debootstrap takes about a minute and a half, the VM test a few minutes, so the tarball is
# kept outside the repo and reused. Its name carries a hash of everything that shapes it
# (suite, mirror, package list, this script), so changing any of them builds a new one
# instead of testing against a stale system.
#
# The packages the .deb depends on (nginx) and the ones e2e.sh uses (curl, jq) are baked in:
# the container then runs with a private network and never needs a mirror.
set -euo pipefail

SUITE=${BLUEGREEN_VM_SUITE:-bookworm}
CACHE_DIR=${BLUEGREEN_VM_CACHE:-/var/cache/bluegreen-vm}
# The host's own mirror when it has one, so the rootfs matches what apt sees here.
MIRROR=${BLUEGREEN_VM_MIRROR:-$(
    grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | head -n1 || true
)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# systemd-sysv: systemd as PID 1. dbus: systemctl/systemd-analyze as on a real host.
# nginx: the .deb's dependency. curl, jq, procps, iproute2: what e2e.sh uses; wrk: its
# load (16 keep-alive and 8 `Connection: close` clients at once, failures counted). man-db,
# bash-completion: `man bluegreen` and bash's completion of the installed package (issue 12).
PACKAGES=systemd,systemd-sysv,dbus,nginx,curl,jq,procps,iproute2,ca-certificates,wrk,man-db,bash-completion
FLAVOUR=${1:-}
EXTRA=
[[ -z $FLAVOUR ]] || EXTRA=${2:?rootfs.sh: a flavour needs its extra packages}

key=$(printf '%s\n' "$SUITE" "$MIRROR" "$PACKAGES" "$EXTRA" | cat - "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
name=rootfs-$SUITE${FLAVOUR:+-$FLAVOUR}
tarball="$CACHE_DIR/$name-$key.tar"

if [[ -s $tarball ]]; then
    echo "$tarball"
    exit 0
fi

mkdir -p "$CACHE_DIR"
work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT

start=$(date +%s)
echo "rootfs: building $SUITE from $MIRROR into $tarball (takes ~1.5 min)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/root" "$MIRROR" \
    > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

root=$work/root
# Same sources as the host, so `apt-get install` in the container (Vagrant too) resolves alike.
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > "$root/etc/apt/sources.list"
if [[ -n $EXTRA ]]; then
    # apt, not debootstrap --include: debootstrap's own resolver cannot configure some
    # dependency trees (python3-cryptography, under ansible-core, fails there).
    echo "rootfs: adding ${EXTRA//,/ }" >&2
    # Services (sshd) are not started while installing: the system is not running.
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    systemd-nspawn --quiet --register=no --keep-unit --directory="$root" --resolv-conf=copy-host \
        --timezone=off --setenv=DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends ${EXTRA//,/ }" \
        > "$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; exit 1; }
    rm -f "$root/usr/sbin/policy-rc.d"
fi
# A machine-id left empty makes systemd treat each boot as a first boot (ConditionFirstBoot,
# fresh machine-id); an id written now keeps reboots honest.
systemd-machine-id-setup --root="$root" >/dev/null
echo "bluegreen-${FLAVOUR:-vm}" > "$root/etc/hostname"
# Only a console: the units that expect real hardware or a network just slow the boot.
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages

tar -C "$root" --numeric-owner -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$tarball"
# Older keys of this flavour are dead weight once a new one exists (a key is 12 hex digits,
# so `rootfs-bookworm-????????????.tar` never matches another flavour's tarball).
find "$CACHE_DIR" -maxdepth 1 -name "$name-????????????.tar" ! -path "$tarball" -delete
echo "rootfs: built in $(( $(date +%s) - start )) s" >&2
echo "$tarball"

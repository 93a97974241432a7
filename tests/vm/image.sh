#!/usr/bin/env bash
# Builds the VM tier's base image (Debian 12, from Debian packages only) and prints its directory.
#
# The image is cached under $BOOTSTRAP_VM_CACHE (default /var/cache/bootstrap-vm), keyed on a hash of
# this file: change the recipe and the next run builds a new one. Run as root (debootstrap, chroot).
# The directory holds vmlinuz, initrd.img and base.qcow2 (ext4 on the whole disk, no partitions);
# every boot gets its own overlay on top of base.qcow2 (tests/vm/support.rs).
#
# What a cloud image has and the probe of issue 14 found necessary: cloud-init with the NoCloud
# datasource only, python3-cffi-backend named explicitly (cloud-init's crypto imports it), a
# generated locale (or cloud-init's locale module fails), no host keys and an empty machine-id (each
# boot is a first boot). The rootfs is upgraded from bookworm-security and -updates here, so that
# cloud-init's package_upgrade does not pull a new kernel at boot (that made a boot take ~9 min).
set -euo pipefail
cache=${BOOTSTRAP_VM_CACHE:-/var/cache/bootstrap-vm}
key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
out=$cache/$key
if [ -f "$out/done" ]; then echo "$out"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "tests/vm/image.sh: run as root (debootstrap and chroot); or run .ci/install" >&2; exit 2; }
mirror=${BOOTSTRAP_VM_MIRROR:-http://deb.debian.org/debian}
security=${BOOTSTRAP_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
root=$work/root
cleanup() {
  for m in proc sys; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
# No daemon starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
in_root() { chroot "$root" "$@"; }
in_root apt-get update -qq
in_root apt-get -y -qq upgrade >/dev/null
# The list of issue 14's probe, installed after the upgrade so that only the current kernel is there.
in_root apt-get -y -qq install --no-install-recommends \
  linux-image-cloud-amd64 systemd-sysv udev dbus cloud-init openssh-server sudo ifupdown \
  isc-dhcp-client locales ca-certificates python3-cffi-backend iproute2 procps netbase >/dev/null

# The packages the template installs at first boot (every variant's), downloaded into apt's cache but
# not installed: the boot still installs them itself, in cloud-init's order (after write_files,
# before runcmd), without fetching them through emulated networking. Recommends included, as
# cloud-init's apt install has them.
in_root apt-get -y -qq install --download-only \
  fail2ban nftables unattended-upgrades python3-systemd docker.io wireguard-tools >/dev/null

echo 'en_US.UTF-8 UTF-8' > "$root/etc/locale.gen"
in_root locale-gen >/dev/null
echo 'LANG=en_US.UTF-8' > "$root/etc/default/locale"
cat > "$root/etc/cloud/cloud.cfg.d/99-bootstrap-vm.cfg" <<'CFG'
# bootstrap's VM tier: the user-data comes from a NoCloud seed disk, nothing else is asked.
datasource_list: [NoCloud, None]
CFG
echo 'LABEL=root / ext4 defaults,errors=remount-ro 0 1' > "$root/etc/fstab"
printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' > "$root/etc/network/interfaces"
echo 'localhost' > "$root/etc/hostname"

# Every boot of an overlay is a first boot: no host keys, no machine-id, no cloud-init state.
rm -f "$root"/etc/ssh/ssh_host_* "$root/usr/sbin/policy-rc.d" "$root/var/lib/dbus/machine-id"
: > "$root/etc/machine-id"
rm -rf "$root"/var/lib/cloud/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
umount "$root/proc" "$root/sys"

kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
# 4 GiB of room for the packages the boot installs (Docker among them); sparse until written.
mkfs.ext4 -q -L root -d "$root" "$work/root.raw" 4G
qemu-img convert -f raw -O qcow2 "$work/root.raw" "$work/base.qcow2"
mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.img" "$work/base.qcow2" "$out/"
cp "${BASH_SOURCE[0]}" "$out/recipe.sh"
touch "$out/done"
echo "$out"

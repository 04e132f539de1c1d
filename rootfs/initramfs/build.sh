#!/usr/bin/env bash
# rootfs/initramfs/build.sh: builds the husk guest's test initramfs, a gzip'd
# newc cpio with busybox-static, a /dev/console node and rootfs/initramfs/init
# (which prints `HUSK_READY uptime=... cpus=...` and resets the VM).
#
# Usage: rootfs/initramfs/build.sh OUT_FILE [--agent PATH]
#   --agent PATH  also install PATH as /sbin/husk-agent (not started yet)
# Needs: busybox-static cpio gzip. Runs as any user (no mknod needed).
set -euo pipefail

die() { echo "initramfs/build.sh: error: $*" >&2; exit 1; }

usage="usage: $0 OUT_FILE [--agent PATH]"
out=""
agent=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --agent) [[ $# -ge 2 ]] || die "$usage"; agent=$2; shift 2 ;;
    --agent=*) agent=${1#--agent=}; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) die "unknown option $1; $usage" ;;
    *) [[ -z $out ]] || die "$usage"; out=$1; shift ;;
  esac
done
[[ -n $out ]] || die "$usage"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
busybox=${HUSK_BUSYBOX:-/bin/busybox}
[[ -x $busybox ]] || die "missing $busybox: install the Debian package busybox-static"
# A dynamically linked busybox (Debian package busybox) would not run in the guest.
if command -v file >/dev/null && ! file -b "$busybox" | grep -q 'statically linked'; then
  die "$busybox is not statically linked: install the Debian package busybox-static"
fi
[[ -z $agent || -f $agent ]] || die "agent $agent does not exist"

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging"/{bin,sbin,dev,proc,sys,tmp,root,etc}
cp "$busybox" "$staging/bin/busybox"
for applet in sh ash cat cp dmesg echo grep head ls mkdir mount mv ps rm sleep \
              stty setsid cttyhack tail umount uname; do
  ln -s busybox "$staging/bin/$applet"
done
for applet in reboot poweroff halt; do
  ln -s ../bin/busybox "$staging/sbin/$applet"
done
install -m 0755 "$here/init" "$staging/init"
[[ -z $agent ]] || install -m 0755 "$agent" "$staging/sbin/husk-agent"

mkdir -p "$(dirname "$out")"
"$here/mkcpio.sh" "$staging" "$out"
echo "initramfs/build.sh: wrote $out ($(stat -c %s "$out") bytes)" >&2

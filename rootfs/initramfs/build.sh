#!/usr/bin/env bash
# rootfs/initramfs/build.sh: builds the husk guest's initramfs, an uncompressed
# newc cpio with busybox-static and all its applets, a /dev/console node and
# rootfs/initramfs/init (which prints `HUSK_READY uptime=... cpus=...` and
# resets the VM, or starts the agent). The archive depends only on its
# inputs (mkcpio.sh: fixed owners, mtimes and order).
#
# Usage: rootfs/initramfs/build.sh OUT_FILE [--agent PATH]
#   --agent PATH  also install PATH, stripped, as /sbin/husk-agent
# Needs: busybox-static cpio. Runs as any user (no mknod needed).
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
mkdir -p "$staging"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc}
cp "$busybox" "$staging/bin/busybox"
# Every applet, each where busybox itself would install it (`--list-full`:
# bin/, sbin/, usr/bin/, usr/sbin/), as a relative symlink: a job finds
# `true`, `sha256sum` or `/usr/bin/env` as on any Linux. linuxrc (an
# initrd's /linuxrc) is left out: this initramfs starts /init.
applets=$("$busybox" --list-full | LC_ALL=C sort) || die "$busybox --list-full failed"
[[ $(wc -l <<<"$applets") -gt 100 ]] || die "$busybox lists too few applets (not the full busybox-static?)"
while read -r applet; do
  case $applet in
    linuxrc) continue ;;
    bin/busybox) continue ;;
    bin/*) target=busybox ;;
    sbin/*) target=../bin/busybox ;;
    usr/bin/* | usr/sbin/*) target=../../bin/busybox ;;
    *) die "unexpected applet location $applet" ;;
  esac
  ln -s "$target" "$staging/$applet"
done <<<"$applets"
install -m 0755 "$here/init" "$staging/init"
# Stripped: the symbols and debug info (three quarters of the file) would
# only slow the guest's unpacking of the initramfs, about 0.1 s of a nested
# boot; $agent itself keeps them for gdb and addr2line.
if [[ -n $agent ]]; then
  command -v strip >/dev/null || die "missing 'strip': install the Debian package binutils"
  strip --strip-all -o "$staging/sbin/husk-agent" "$agent"
  chmod 0755 "$staging/sbin/husk-agent"
fi

mkdir -p "$(dirname "$out")"
"$here/mkcpio.sh" "$staging" "$out"
echo "initramfs/build.sh: wrote $out ($(stat -c %s "$out") bytes)" >&2

#!/usr/bin/env bash
# rootfs/initramfs/mkcpio.sh: packs a staging folder into an uncompressed
# newc cpio archive usable as a Linux initramfs, and adds a /dev/console character node
# (5,1) without needing root or fakeroot: the node is written as a second,
# hand-made newc archive appended to the first (the kernel unpacks
# concatenated archives). Owners are 0:0, mtimes 0, inodes renumbered, so the
# output depends only on the staging folder's content and modes.
# Uncompressed: the guest then copies the archive into its page cache
# instead of inflating it first, which was a tenth of its boot (README.md,
# Cold start), for 1.5 MB more for the VMM to read.
#
# Usage: rootfs/initramfs/mkcpio.sh STAGING_DIR OUT_FILE
# Needs: cpio (Debian package cpio).
set -euo pipefail

die() { echo "mkcpio.sh: error: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 STAGING_DIR OUT_FILE"
staging=$1
out=$2
[[ -d $staging ]] || die "staging folder $staging does not exist"
command -v cpio >/dev/null || die "missing 'cpio': install the Debian package cpio"

# One newc header (see the kernel's Documentation/driver-api/early-userspace/
# buffer-format.rst): magic, then 13 fields of 8 hex digits, then the
# NUL-terminated name padded so that the header plus name is a multiple of 4.
# Args: name mode nlink rdevmajor rdevminor (no file data: nodes and trailer only).
newc_entry() {
  local name=$1 mode=$2 nlink=$3 rmaj=$4 rmin=$5
  local namesize=$((${#name} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    0 "$mode" 0 0 "$nlink" 0 0 0 0 "$rmaj" "$rmin" "$namesize" 0
  printf '%s\0' "$name"
  local pad=$(((4 - (110 + namesize) % 4) % 4))
  [[ $pad -eq 0 ]] || head -c "$pad" /dev/zero
}

tmp=$(mktemp "${out}.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT
find "$staging" -exec touch -h -d @0 {} +
{
  (cd "$staging" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet)
  newc_entry dev/console $((8#020600)) 1 5 1
  newc_entry TRAILER!!! 0 1 0 0
} >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$out"
trap - EXIT

#!/usr/bin/env bash
# rootfs/disk/debian.sh: builds a Debian 12 (bookworm) userland as an ext4
# image, for jobs that need a full distribution (python3, a compiler):
# debootstrap --variant=minbase plus PACKAGES below, from the mirror this
# machine's apt already uses (no other network), imaged with rootfs/disk/mkext4.
#
# Usage: rootfs/disk/debian.sh OUT_IMAGE [--agent PATH]
#   --agent PATH  also install PATH as /sbin/husk-agent in the output image
#                 (written with debugfs into a copy of the cached image, so a
#                 new agent never forces a new debootstrap). Without it the
#                 guest's initramfs provides its own agent (husk.root=).
#
# Cache: ${HUSK_CACHE:-$HOME/.cache/husk}/rootfs/debian-<key>/debian.ext4, the
# key a hash of this script, mkext4, the suite and the package list; the
# folder also keeps build.log and build-seconds of the build that made it.
# A cached image is copied, never rebuilt.
#
# Environment:
#   HUSK_DEBIAN_MIRROR  override the mirror (default: the first deb entry for
#                       the suite in /etc/apt/sources.list{,.d/*})
#   HUSK_DEBIAN_SUITE   default bookworm
# Needs: root (debootstrap chroots and makes device nodes), debootstrap,
# e2fsprogs. Takes minutes: it is not part of `make test`.
set -euo pipefail

die() { echo "debian.sh: error: $*" >&2; exit 1; }
note() { echo "debian.sh: $*" >&2; }

# Packages on top of minbase. Part of the cache key.
PACKAGES=(python3 gcc libc6-dev)

# Prints "URI KEYRING" of the first `deb` source that carries SUITE with the
# main component, from deb822 .sources files and one-line .list files.
find_mirror() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # deb822: stanzas separated by blank lines; keys are case-insensitive.
    awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") &&
            (" " comps " ") ~ / main / && uris != "") { split(uris, u, " "); print u[1], keyring; found = 1; exit }
        types = suites = comps = uris = keyring = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "");
        if (key == "types") types = $0; else if (key == "suites") suites = $0;
        else if (key == "components") comps = $0; else if (key == "uris") uris = $0;
        else if (key == "signed-by") keyring = $0; }
      END { if (!found) flush() }' "$f" | head -n1 | grep . && return 0
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    # deb [options] URI SUITE COMPONENT...
    awk -v suite="$suite" '
      $1 != "deb" { next }
      { keyring = ""; i = 2
        if ($2 ~ /^\[/) { while (i <= NF) { if ($i ~ /^signed-by=/) { keyring = $i; sub(/^signed-by=/, "", keyring); sub(/\]$/, "", keyring) }
                                            if ($i ~ /\]$/) { i++; break } i++ } }
        uri = $i; s = $(i + 1)
        if (s != suite) next
        for (j = i + 2; j <= NF; j++) if ($j == "main") { print uri, keyring; exit } }' "$f" | head -n1 | grep . && return 0
  done
  return 1
}

main() {
  local out="" agent=""
  local usage="usage: $0 OUT_IMAGE [--agent PATH]"
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
  [[ -z $agent || -f $agent ]] || die "agent $agent does not exist: run 'make build'"

  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  local suite=${HUSK_DEBIAN_SUITE:-bookworm}
  local cache_root=${HUSK_CACHE:-$HOME/.cache/husk}/rootfs
  local key
  key=$( { cat "$here/debian.sh" "$here/mkext4"; echo "$suite ${PACKAGES[*]}"; } | sha256sum | cut -c1-16)
  local cached=$cache_root/debian-$key
  mkdir -p "$cache_root" "$(dirname "$out")"

  # One build at a time per cache entry; a second caller waits, then copies.
  exec 9>"$cache_root/debian-$key.lock"
  flock 9
  if [[ ! -f $cached/debian.ext4 ]]; then
    build_image "$cached" "$suite" "$here"
  else
    note "cached image $cached/debian.ext4 (built in $(cat "$cached/build-seconds" 2>/dev/null || echo '?') s)"
  fi

  local tmp="$out.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  cp --sparse=always "$cached/debian.ext4" "$tmp"
  if [[ -n $agent ]]; then
    command -v debugfs >/dev/null || die "debugfs not found: install the Debian package e2fsprogs"
    # debugfs writes the file into the unmounted image (no root needed) and
    # takes the mode of the source; owner and mode are set explicitly.
    # debugfs does not follow symlinks: with merged /usr, /sbin -> usr/sbin.
    local dir=/sbin link log
    link=$(debugfs -R "stat /sbin" "$tmp" 2>/dev/null | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p')
    [[ -z $link ]] || dir=/${link#/}
    log=$(debugfs -w -f - "$tmp" 2>&1 <<EOF
rm $dir/husk-agent
write $agent $dir/husk-agent
set_inode_field $dir/husk-agent mode 0100755
set_inode_field $dir/husk-agent uid 0
set_inode_field $dir/husk-agent gid 0
EOF
) || die "debugfs could not install the agent: $log"
    debugfs -R "stat $dir/husk-agent" "$tmp" 2>/dev/null | grep -q 'Type: regular' ||
      die "the agent is missing from the image after debugfs: $log"
  fi
  mv -f "$tmp" "$out"
  trap - EXIT
  note "wrote $out ($(( $(stat -c %s "$out") >> 20 )) MiB${agent:+, agent $agent at /sbin/husk-agent})"
}

# Runs debootstrap into a scratch folder next to the cache entry and images it.
build_image() {
  local cached=$1 suite=$2 here=$3
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root (chroot, device nodes): run as root or with sudo"
  command -v debootstrap >/dev/null || die "debootstrap not found: install the Debian package debootstrap"
  local mirror keyring=""
  if [[ -n ${HUSK_DEBIAN_MIRROR:-} ]]; then
    mirror=$HUSK_DEBIAN_MIRROR
  else
    read -r mirror keyring < <(find_mirror "$suite") ||
      die "no 'deb' source for $suite (component main) in /etc/apt/sources.list{,.d/*}; set HUSK_DEBIAN_MIRROR"
  fi
  local keyopt=()
  if [[ -n $keyring && -f $keyring ]]; then
    keyopt=(--keyring="$keyring")
  fi

  local work=$cached.work
  rm -rf "$work" "$cached"
  mkdir -p "$work"
  local tree=$work/tree log=$work/build.log
  # A failed build leaves nothing behind but its log, next to the cache entry.
  trap 'cp -f "'"$log"'" "'"$cached"'.failed.log" 2>/dev/null; rm -rf "'"$work"'"' EXIT
  note "debootstrap --variant=minbase $suite from $mirror with ${PACKAGES[*]} (takes minutes; log: $log)"
  local start=$SECONDS
  local include
  include=$(IFS=,; echo "${PACKAGES[*]}")
  if ! debootstrap --variant=minbase --include="$include" "${keyopt[@]}" \
        "$suite" "$tree" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    [[ ! -f $tree/debootstrap/debootstrap.log ]] || tail -n 20 "$tree/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (log kept in $cached.failed.log)"
  fi
  local boot_seconds=$(( SECONDS - start ))

  # Trim what a sandbox job never reads, and forget the build machine.
  rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/cache/apt/*.bin \
         "$tree"/var/lib/apt/lists/* "$tree"/usr/share/man/* "$tree"/usr/share/info/* \
         "$tree"/var/log/* "$tree"/tmp/* "$tree"/root/.bash_history
  echo husk >"$tree/etc/hostname"
  : >"$tree/etc/resolv.conf"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\thusk\n' >"$tree/etc/hosts"
  mkdir -p "$tree"/{proc,sys,dev,tmp,run}
  chmod 1777 "$tree/tmp"

  "$here/mkext4" --label husk-debian "$work/debian.ext4" "$tree" >>"$log" 2>&1 ||
    { tail -n 5 "$log" >&2; die "mkext4 failed (log kept in $cached.failed.log)"; }
  mkdir -p "$cached"
  mv "$work/debian.ext4" "$cached/debian.ext4"
  {
    echo "suite=$suite mirror=$mirror packages=${PACKAGES[*]}"
    echo "debootstrap_seconds=$boot_seconds total_seconds=$(( SECONDS - start ))"
    du -sm "$tree" | awk '{ print "tree_mib=" $1 }'
    chroot "$tree" dpkg-query -W -f '${Package} ${Version}\n' 2>/dev/null | sort
  } >"$cached/manifest.txt"
  cp "$log" "$cached/build.log"
  echo $(( SECONDS - start )) >"$cached/build-seconds"
  rm -rf "$work" "$cached.failed.log"
  trap - EXIT
  note "built $cached/debian.ext4 in $(( SECONDS - start )) s (debootstrap $boot_seconds s)"
}

main "$@"

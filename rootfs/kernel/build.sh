#!/usr/bin/env bash
# rootfs/kernel/build.sh: builds the husk guest kernel (vmlinux and bzImage)
# from Debian's linux-source-6.1 with `make tinyconfig` plus husk.config.
#
# Usage: rootfs/kernel/build.sh OUT_DIR
#
# OUT_DIR receives vmlinux, bzImage and config. The result is cached in
# $HUSK_CACHE/kernel/<hash>/ (HUSK_CACHE defaults to ~/.cache/husk), keyed by
# a hash of husk.config, this script, sparse_text.py (the vmlinux is written
# with its text's alignment filler as holes) and the version of the
# linux-source-6.1 package: an unchanged kernel is never rebuilt, the cached
# files are copied.
# The source is extracted once per package version and built out of tree, so
# a changed config rebuilds incrementally. After `make olddefconfig` every
# option of the fragment is checked: a missing one of the "core" section fails
# the build, one of an "extra" section prints a warning.
# Needs: linux-source-6.1 build-essential flex bison bc libelf-dev xz-utils python3.
#
# Everything runs from main(), called on the last line: bash parses the whole
# file first, so editing this script does not disturb a build in progress.
set -euo pipefail

die() { echo "kernel/build.sh: error: $*" >&2; exit 1; }
log() { echo "kernel/build.sh: $*" >&2; }

elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Copies the cached kernel to OUT_DIR, each file through a rename so that a
# reader never sees a half-written file.
copy_out() {
  local out_dir=$1 f
  mkdir -p "$out_dir"
  for f in vmlinux bzImage config; do
    cp "$result/$f" "$out_dir/.$f.tmp"
    mv "$out_dir/.$f.tmp" "$out_dir/$f"
  done
}

kmake() { make -C "$src" O="$obj" ARCH=x86_64 "$@"; }

# Prints the fragment lines that did not come out as requested, prefixed
# with their section ("core" or "extra").
unmet_options() {
  local section=core line opt want
  while IFS= read -r line; do
    case $line in
      "# ---- extra"*) section=extra; continue ;;
      CONFIG_*=*) opt=${line%%=*}; want=$line ;;
      "# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; want="" ;;
      *) continue ;;
    esac
    if [[ -n $want ]]; then
      grep -qxF -- "$want" "$obj/.config" && continue
    else
      grep -q -- "^$opt=" "$obj/.config" || continue
    fi
    echo "$section $line"
  done <"$fragment"
}

configure() {
  log "configuring: tinyconfig + $fragment (log: $obj/config.log)"
  {
    kmake tinyconfig
    # -m: merge only; olddefconfig resolves the dependencies.
    (cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment")
    kmake olddefconfig
  } >"$obj/config.log" 2>&1 || { tail -n 20 "$obj/config.log" >&2; die "configuration failed"; }

  local section line n_core=0
  while read -r section line; do
    if [[ $section == core ]]; then
      log "error: core option not applied: $line"
      n_core=$((n_core + 1))
    else
      log "warning: optional option not applied: $line"
    fi
  done < <(unmet_options)
  [[ $n_core -eq 0 ]] ||
    die "$n_core core option(s) did not survive olddefconfig (check their dependencies)"
}

main() {
  [[ $# -eq 1 && $1 != -* ]] || die "usage: $0 OUT_DIR"
  local out_dir=$1
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  fragment=$here/husk.config
  local cache=${HUSK_CACHE:-$HOME/.cache/husk}
  local src_pkg=linux-source-6.1
  local src_tar=/usr/src/$src_pkg.tar.xz

  [[ -f $fragment ]] || die "missing config fragment $fragment"
  [[ -f $src_tar ]] || die "missing $src_tar: install the Debian package $src_pkg"
  local tool
  for tool in make gcc flex bison bc xz perl; do
    command -v "$tool" >/dev/null ||
      die "missing '$tool': install the Debian packages build-essential flex bison bc xz-utils libelf-dev"
  done
  local pkg_version
  pkg_version=$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null) ||
    die "cannot read the version of the Debian package $src_pkg"

  local hash
  hash=$({ cat "$fragment" "${BASH_SOURCE[0]}" "$here/sparse_text.py"; echo "$pkg_version"; } | sha256sum | cut -c1-16)
  result=$cache/kernel/$hash
  start=$(date +%s.%N)

  if [[ ! -f $result/vmlinux || ! -f $result/bzImage ]]; then
    mkdir -p "$cache/kernel"
    # One build at a time per cache: the out-of-tree object folder is shared.
    exec 9>"$cache/kernel/.lock"
    flock 9
  fi
  if [[ -f $result/vmlinux && -f $result/bzImage ]]; then
    copy_out "$out_dir"
    log "cached kernel $hash (linux-source $pkg_version) copied to $out_dir in $(elapsed) s"
    exit 0
  fi

  src=$cache/kernel/src-$pkg_version
  obj=$cache/kernel/obj-$pkg_version
  if [[ ! -f $src/.extracted ]]; then
    log "extracting $src_tar into $src"
    rm -rf "$src"
    mkdir -p "$src"
    tar -xJf "$src_tar" -C "$src" --strip-components=1
    touch "$src/.extracted"
  fi
  mkdir -p "$obj"
  configure

  log "building vmlinux and bzImage with $(nproc) jobs (from scratch: about 3.5 min on 2 idle cores; log: $obj/build.log)"
  kmake -j"$(nproc)" bzImage >"$obj/build.log" 2>&1 || {
    tail -n 40 "$obj/build.log" >&2
    die "kernel build failed; full log: $obj/build.log"
  }

  local tmp
  tmp=$(mktemp -d "$cache/kernel/.tmp.XXXXXX")
  # The text's int3 alignment filler as holes: what the VMM reads is what
  # the guest runs (sparse_text.py says why).
  python3 "$here/sparse_text.py" "$obj/vmlinux" "$tmp/vmlinux"
  cp "$obj/arch/x86/boot/bzImage" "$tmp/bzImage"
  cp "$obj/.config" "$tmp/config"
  rm -rf "$result"
  mv "$tmp" "$result"
  copy_out "$out_dir"
  log "built kernel $hash (linux-source $pkg_version) in $(elapsed) s; copied to $out_dir"
}

main "$@"

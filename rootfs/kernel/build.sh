#!/usr/bin/env bash
# rootfs/kernel/build.sh: builds the husk guest kernel (vmlinux and bzImage)
# from Debian's linux-source-6.1 with `make tinyconfig` plus husk.config.
#
# Usage: rootfs/kernel/build.sh OUT_DIR
#
# The result is cached in $HUSK_CACHE/kernel/<hash>/ (HUSK_CACHE defaults to
# ~/.cache/husk), keyed by a hash of husk.config, this script and the version
# of the linux-source-6.1 package. An unchanged kernel is never rebuilt: the
# cached files are copied to OUT_DIR. The source tree is extracted once per
# package version and built out of tree, so a changed config rebuilds
# incrementally. Needs: linux-source-6.1 flex bison bc libelf-dev xz-utils gcc make.
set -euo pipefail

die() { echo "kernel/build.sh: error: $*" >&2; exit 1; }
log() { echo "kernel/build.sh: $*" >&2; }

[[ $# -eq 1 ]] || die "usage: $0 OUT_DIR"
out_dir=$1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/husk.config
cache=${HUSK_CACHE:-$HOME/.cache/husk}
src_pkg=linux-source-6.1
src_tar=/usr/src/$src_pkg.tar.xz

[[ -f $fragment ]] || die "missing config fragment $fragment"
[[ -f $src_tar ]] || die "missing $src_tar: install the Debian package $src_pkg"
for tool in make gcc flex bison bc xz perl; do
  command -v "$tool" >/dev/null || die "missing '$tool': run 'make deps' (Debian packages: build-essential flex bison bc xz-utils libelf-dev)"
done
pkg_version=$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null) ||
  die "cannot read the version of the Debian package $src_pkg"

hash=$({ cat "$fragment" "${BASH_SOURCE[0]}"; echo "$pkg_version"; } | sha256sum | cut -c1-16)
result=$cache/kernel/$hash
start=$(date +%s.%N)

elapsed() { echo "$(date +%s.%N) - $start" | bc | xargs printf '%.1f'; }

copy_out() {
  mkdir -p "$out_dir"
  cp "$result/vmlinux" "$result/bzImage" "$result/config" "$out_dir/"
}

if [[ -f $result/vmlinux && -f $result/bzImage ]]; then
  copy_out
  log "cached kernel $hash (linux-source $pkg_version) copied to $out_dir in $(elapsed) s"
  exit 0
fi

mkdir -p "$cache/kernel"
# One build at a time per cache: the out-of-tree object dir is shared.
exec 9>"$cache/kernel/.lock"
flock 9

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

kmake() { make -C "$src" O="$obj" ARCH=x86_64 "$@"; }

log "configuring (tinyconfig + $fragment)"
kmake -s tinyconfig
# -m: merge only; olddefconfig below resolves dependencies.
(cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment") >/dev/null
kmake -s olddefconfig

# Check that every option of the fragment ended up as requested. A missing
# option of the core section fails the build; one of the extra section warns.
section=core
missing_core=()
missing_extra=()
while IFS= read -r line; do
  case $line in
    "# ---- extra"*) section=extra; continue ;;
    CONFIG_*=*) opt=${line%%=*}; want="$line" ;;
    "# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; want="" ;;
    *) continue ;;
  esac
  if [[ -n $want ]]; then
    grep -qxF -- "$want" "$obj/.config" && continue
  else
    grep -q -- "^$opt=" "$obj/.config" || continue
  fi
  if [[ $section == core ]]; then missing_core+=("$line"); else missing_extra+=("$line"); fi
done <"$fragment"
for line in "${missing_extra[@]}"; do log "warning: optional option not applied: $line"; done
for line in "${missing_core[@]}"; do log "error: core option not applied: $line"; done
[[ ${#missing_core[@]} -eq 0 ]] || die "${#missing_core[@]} core option(s) did not survive olddefconfig (check their dependencies)"

log "building vmlinux and bzImage with $(nproc) jobs (about 3.5 min on 2 cores from scratch)"
kmake -j"$(nproc)" bzImage >"$obj/build.log" 2>&1 || {
  tail -n 40 "$obj/build.log" >&2
  die "kernel build failed; full log: $obj/build.log"
}

tmp=$(mktemp -d "$cache/kernel/.tmp.XXXXXX")
cp "$obj/vmlinux" "$tmp/vmlinux"
cp "$obj/arch/x86/boot/bzImage" "$tmp/bzImage"
cp "$obj/.config" "$tmp/config"
rm -rf "$result"
mv "$tmp" "$result"
copy_out
log "built kernel $hash (linux-source $pkg_version) in $(elapsed) s; copied to $out_dir"

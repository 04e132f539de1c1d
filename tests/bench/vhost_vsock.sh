# tests/bench/vhost_vsock.sh: sourced by the benchmarks that run QEMU with
# vhost-vsock (tests/bench/vsock, tests/bench/boot via boot_bench.py).
# Loads vhost_vsock and what it needs from the running kernel's package in
# the cache; on failure prints the reason on stdout and returns non-zero.
load_vhost_vsock() {
  [[ -e /dev/vhost-vsock ]] && return 0
  local rel moddir m f msg
  rel=$(uname -r)
  moddir=$(find "${HUSK_CACHE:-$HOME/.cache/husk}/testhost" -maxdepth 5 -type d -path "*/lib/modules/$rel" 2>/dev/null | head -n1)
  if [[ -z $moddir ]]; then
    modprobe vhost_vsock 2>/dev/null && [[ -e /dev/vhost-vsock ]] && return 0
    echo "no modules for kernel $rel in the cache and modprobe vhost_vsock failed"
    return 1
  fi
  for m in drivers/vhost/vhost_iotlb drivers/vhost/vhost net/vmw_vsock/vsock \
           net/vmw_vsock/vmw_vsock_virtio_transport_common drivers/vhost/vhost_vsock; do
    [[ -d /sys/module/$(basename "$m") ]] && continue
    f=$moddir/kernel/$m.ko
    [[ -f $f ]] || { echo "$f missing"; return 1; }
    if ! msg=$(insmod "$f" 2>&1); then
      echo "insmod $(basename "$m"): $msg"
      return 1
    fi
  done
  for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -e /dev/vhost-vsock ]] && return 0; sleep 0.2; done
  echo "vhost_vsock loaded but /dev/vhost-vsock did not appear"
  return 1
}

// The host's KVM_GET_SUPPORTED_CPUID, kept in a small file between VMs.
//
// KVM answers that ioctl by running the CPUID instruction for every leaf
// and subleaf it knows, a hundred-odd times. On bare metal that is a few
// microseconds; where husk itself runs in a VM every CPUID is an exit to
// the hypervisor below, 13 us each on the machines husk is developed on
// (1.4 to 2 ms of a VM start's 8 CPU ms; docs/boot-timeline.md). The
// answer depends only on the host's CPU and kernel and on the KVM module
// loaded, so husk asks once and keeps it: for this boot of the host
// (/proc/sys/kernel/random/boot_id), this microcode revision (a late load
// can take a feature away, as TSX was) and this /dev/kvm node (its device,
// inode and change time, all new when the kvm module is loaded again).
// A file written for another boot or node is not used: husk asks KVM and
// writes the file again.
//
// The file lives in a folder of the user's own that the host clears at
// boot: $HUSK_RUNTIME_DIR, else $XDG_RUNTIME_DIR/husk, else /run/husk for
// root; without one of them (or with HUSK_RUNTIME_DIR=off) every VM asks
// KVM. A folder or file that is not the user's own, or that others may
// write, is not read.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/common/result.h"

namespace husk::kvm {

class Kvm;

// Where the cache file goes (see above); empty: nowhere.
[[nodiscard]] std::string default_cpuid_cache_path();

// What a cache file must have been written for: this boot, this microcode,
// and the device node at `kvm_path` as it is now.
[[nodiscard]] Result<std::string> cpuid_cache_key(const std::string& kvm_path);

// The file's bytes: a magic, the key and the entries.
[[nodiscard]] std::vector<uint8_t> encode_cpuid_cache(const std::string& key,
                                                      std::span<const kvm_cpuid_entry2> entries);
// The entries of a file written for `key`; an error for anything else (a
// file for another key, truncated, with trailing bytes, or more entries
// than KVM takes: kMaxCpuidEntries).
[[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> decode_cpuid_cache(std::span<const uint8_t> bytes,
                                                                       const std::string& key);

// KVM_GET_SUPPORTED_CPUID of the KVM at `kvm_path`, from the cache file at
// `cache_path` when it was written for this boot and node; otherwise asked
// of `kvm` (opened from kvm_path when null) and written there for the next
// VM. An empty `cache_path` turns the cache off. Failing to read or write
// the cache is never an error: KVM is asked instead.
[[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> host_cpuid(const std::string& kvm_path,
                                                               const std::string& cache_path,
                                                               const Kvm* kvm = nullptr);

}  // namespace husk::kvm

#include "runtime/kvm/cpuid_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/common/file.h"
#include "runtime/common/unique_fd.h"
#include "runtime/kvm/kvm.h"

namespace husk::kvm {

namespace {

constexpr char kMagic[8] = {'H', 'U', 'S', 'K', 'C', 'P', 'U', '1'};
// A key is a line of a few hundred bytes, and a file holds at most
// kMaxCpuidEntries (kvm.h): anything larger is a damaged file.
constexpr uint32_t kMaxKey = 4096;
constexpr uint64_t kMaxFile = sizeof(kMagic) + 4 + kMaxKey + 4 + uint64_t{kMaxCpuidEntries} * sizeof(kvm_cpuid_entry2);
constexpr const char* kFileName = "kvm-cpuid";

// Appends `n` bytes at `from` to `out` at `at`, advancing it.
void put(std::vector<uint8_t>& out, size_t& at, const void* from, size_t n) {
  if (n != 0) std::memcpy(out.data() + at, from, n);
  at += n;
}

// Reads a u32 at `at`, advancing it; false when the bytes end first.
bool take_u32(std::span<const uint8_t> bytes, size_t& at, uint32_t& v) {
  if (bytes.size() - at < sizeof(v)) return false;
  std::memcpy(&v, bytes.data() + at, sizeof(v));
  at += sizeof(v);
  return true;
}

void trim_end(std::string& s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
}

// Ours, and written by nobody else: owned by this user, not group or world
// writable.
bool owned_and_private(const struct stat& st) {
  return st.st_uid == ::geteuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

// The folder that holds the cache file, created (0700) when missing;
// false when it cannot be used.
bool usable_folder(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return false;
  struct stat st{};
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && owned_and_private(st);
}

std::optional<std::vector<kvm_cpuid_entry2>> read_cache(const std::string& path, const std::string& key) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return std::nullopt;
  struct stat st{};
  if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode) || !owned_and_private(st) ||
      static_cast<uint64_t>(st.st_size) > kMaxFile) {
    return std::nullopt;
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  if (!read_exact_at(fd.get(), bytes, 0)) return std::nullopt;
  auto entries = decode_cpuid_cache(bytes, key);
  if (!entries) {
    spdlog::debug("KVM CPUID cache {} not used: {}", path, entries.error().message);
    return std::nullopt;
  }
  return std::move(*entries);
}

// Written whole under a temporary name, then renamed over the old file: a
// reader sees the old file or the new one.
void write_cache(const std::string& path, const std::string& key, std::span<const kvm_cpuid_entry2> entries) {
  const std::string dir = path.substr(0, path.rfind('/'));
  if (dir.empty() || !usable_folder(dir)) return;
  const std::string tmp = fmt::format("{}.{}.tmp", path, ::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return;
  const std::vector<uint8_t> bytes = encode_cpuid_cache(key, entries);
  const bool written = ::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  fd.reset();
  if (!written || ::rename(tmp.c_str(), path.c_str()) < 0) ::unlink(tmp.c_str());
}

}  // namespace

std::string default_cpuid_cache_path() {
  if (const char* dir = std::getenv("HUSK_RUNTIME_DIR"); dir != nullptr && *dir != '\0') {
    return std::string_view(dir) == "off" ? std::string() : fmt::format("{}/{}", dir, kFileName);
  }
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg == '/') {
    return fmt::format("{}/husk/{}", xdg, kFileName);
  }
  if (::geteuid() == 0) return fmt::format("/run/husk/{}", kFileName);
  return {};
}

Result<std::string> cpuid_cache_key(const std::string& kvm_path) {
  HUSK_TRY_ASSIGN(std::string boot_id, read_text_file("/proc/sys/kernel/random/boot_id", 128));
  trim_end(boot_id);
  // A late microcode load can take features away (TSX) or add
  // mitigation bits; a host that is itself a VM has no such file.
  std::string microcode = "none";
  if (auto v = read_text_file("/sys/devices/system/cpu/cpu0/microcode/version", 64)) microcode = std::move(*v);
  trim_end(microcode);
  struct stat st{};
  if (::stat(kvm_path.c_str(), &st) < 0) return fail_errno("stat " + kvm_path);
  return fmt::format("boot_id={} microcode={} kvm={}:{}:{}:{}.{:09} entry_size={}", boot_id, microcode, st.st_rdev,
                     st.st_dev, st.st_ino, st.st_ctim.tv_sec, st.st_ctim.tv_nsec, sizeof(kvm_cpuid_entry2));
}

std::vector<uint8_t> encode_cpuid_cache(const std::string& key, std::span<const kvm_cpuid_entry2> entries) {
  const auto key_size = static_cast<uint32_t>(key.size());
  const auto count = static_cast<uint32_t>(entries.size());
  std::vector<uint8_t> out(sizeof(kMagic) + sizeof(key_size) + key.size() + sizeof(count) + entries.size_bytes());
  size_t at = 0;
  put(out, at, kMagic, sizeof(kMagic));
  put(out, at, &key_size, sizeof(key_size));
  put(out, at, key.data(), key.size());
  put(out, at, &count, sizeof(count));
  put(out, at, entries.data(), entries.size_bytes());
  return out;
}

Result<std::vector<kvm_cpuid_entry2>> decode_cpuid_cache(std::span<const uint8_t> bytes, const std::string& key) {
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return fail("not a husk KVM CPUID cache");
  }
  size_t at = sizeof(kMagic);
  uint32_t key_size = 0;
  if (!take_u32(bytes, at, key_size) || key_size > kMaxKey) return fail("no believable key size");
  if (bytes.size() - at < key_size) return fail("the key is cut short");
  if (std::string_view(reinterpret_cast<const char*>(bytes.data() + at), key_size) != key) {
    return fail("written for another boot of the host or another /dev/kvm");
  }
  at += key_size;
  uint32_t count = 0;
  if (!take_u32(bytes, at, count) || count == 0 || count > kMaxCpuidEntries) return fail("no believable entry count");
  if (bytes.size() - at != uint64_t{count} * sizeof(kvm_cpuid_entry2)) {
    return fail(fmt::format("{} bytes for {} entries", bytes.size() - at, count));
  }
  std::vector<kvm_cpuid_entry2> entries(count);
  // Safe: exactly count entries' bytes remain (checked above), and any
  // byte pattern is a kvm_cpuid_entry2.
  std::memcpy(entries.data(), bytes.data() + at, bytes.size() - at);
  return entries;
}

Result<std::vector<kvm_cpuid_entry2>> host_cpuid(const std::string& kvm_path, const std::string& cache_path,
                                                 const Kvm* kvm) {
  std::string key;
  if (!cache_path.empty()) {
    if (auto k = cpuid_cache_key(kvm_path)) key = std::move(*k);
  }
  if (!key.empty()) {
    if (auto cached = read_cache(cache_path, key)) return std::move(*cached);
  }
  std::optional<Kvm> opened;
  if (kvm == nullptr) {
    HUSK_TRY_ASSIGN(opened, Kvm::open(kvm_path));
    kvm = &*opened;
  }
  HUSK_TRY_ASSIGN(std::vector<kvm_cpuid_entry2> entries, kvm->supported_cpuid());
  if (!key.empty() && !entries.empty()) write_cache(cache_path, key, entries);
  return entries;
}

}  // namespace husk::kvm

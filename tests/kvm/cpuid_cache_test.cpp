// The KVM CPUID cache (runtime/kvm/cpuid_cache.h) on the machine's own
// /dev/kvm: the first VM's answer is written and the next VMs read it; a
// file for another boot or node, or one that others may write, is not
// believed. The format's own tests are tests/unit/kvm/cpuid_cache_test.cpp.
#include "runtime/kvm/cpuid_cache.h"

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/kvm/kvm.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_elf.h"

using namespace husk;
using namespace husk::kvm;
using husk::test::TempDir;
using namespace husk::test;

namespace {

// KVM passes some of the host's CPUID through as the CPU that runs the
// ioctl sees it: the APIC ID in leaf 1 and the x2APIC ID in leaves 0xb and
// 0x1f (and AMD's 0x8000001e) differ between two answers on two CPUs.
// husk writes its own there (x86_64::normalize_cpuid); the rest must match.
std::vector<kvm_cpuid_entry2> without_apic_ids(std::vector<kvm_cpuid_entry2> entries) {
  for (kvm_cpuid_entry2& e : entries) {
    if (e.function == 1) e.ebx &= 0x00ffffff;
    if (e.function == 0xb || e.function == 0x1f) e.edx = 0;
    if (e.function == 0x8000001e) e.eax = 0;
  }
  return entries;
}

bool same(const std::vector<kvm_cpuid_entry2>& x, const std::vector<kvm_cpuid_entry2>& y) {
  const auto a = without_apic_ids(x);
  const auto b = without_apic_ids(y);
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
}

std::vector<uint8_t> bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What KVM itself says.
std::vector<kvm_cpuid_entry2> kvm_answer() {
  auto kvm = Kvm::open();
  REQUIRE(kvm);
  auto entries = kvm->supported_cpuid();
  REQUIRE(entries);
  REQUIRE_FALSE(entries->empty());
  return *entries;
}

// KVM's answer with one leaf changed: read back, it proves the cache was used.
std::vector<kvm_cpuid_entry2> marked(std::vector<kvm_cpuid_entry2> entries) {
  entries[0].ebx ^= 0x5a5a5a5a;
  return entries;
}

}  // namespace

TEST_CASE("cpuid cache: the first VM writes KVM's answer, the next ones read it", "[kvm][cpuid-cache]") {
  TempDir dir;
  const std::string cache = dir.file("run/kvm-cpuid");  // the folder is made, 0700
  const auto truth = kvm_answer();

  auto first = host_cpuid(kDefaultKvmPath, cache);
  REQUIRE(first);
  CHECK(same(*first, truth));
  struct stat st{};
  REQUIRE(::stat(dir.file("run").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat(cache.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto key = cpuid_cache_key(kDefaultKvmPath);
  REQUIRE(key);
  auto stored = decode_cpuid_cache(bytes_of(cache), *key);
  REQUIRE(stored);
  CHECK(same(*stored, truth));

  // A file for this boot and node is believed: KVM is not asked.
  const auto fake = marked(truth);
  dir.write("run/kvm-cpuid", encode_cpuid_cache(*key, fake));
  auto cached = host_cpuid(kDefaultKvmPath, cache);
  REQUIRE(cached);
  CHECK(same(*cached, fake));

  // An open Kvm is used on a miss, and the cache is not read when off.
  auto kvm = Kvm::open();
  REQUIRE(kvm);
  auto off = host_cpuid(kDefaultKvmPath, "", &*kvm);
  REQUIRE(off);
  CHECK(same(*off, truth));
}

TEST_CASE("cpuid cache: a file for another boot or node, or open to others, is replaced by KVM's answer",
          "[kvm][cpuid-cache]") {
  TempDir dir;
  const std::string cache = dir.file("kvm-cpuid");
  const auto truth = kvm_answer();
  auto key = cpuid_cache_key(kDefaultKvmPath);
  REQUIRE(key);

  SECTION("another boot") {
    dir.write("kvm-cpuid", encode_cpuid_cache("boot_id=00000000 " + key->substr(key->find(' ') + 1), marked(truth)));
  }
  SECTION("another node") { dir.write("kvm-cpuid", encode_cpuid_cache(*key + "0", marked(truth))); }
  SECTION("garbage") { dir.write("kvm-cpuid", {1, 2, 3}); }
  SECTION("group-writable") {
    dir.write("kvm-cpuid", encode_cpuid_cache(*key, marked(truth)));
    REQUIRE(::chmod(cache.c_str(), 0620) == 0);
  }
  SECTION("a symbolic link") {
    dir.write("elsewhere", encode_cpuid_cache(*key, marked(truth)));
    std::filesystem::create_symlink(dir.file("elsewhere"), cache);
  }
  auto got = host_cpuid(kDefaultKvmPath, cache);
  REQUIRE(got);
  CHECK(same(*got, truth));
  // Written again, whole and private.
  auto stored = decode_cpuid_cache(bytes_of(cache), *key);
  REQUIRE(stored);
  CHECK(same(*stored, truth));
  struct stat st{};
  REQUIRE(::lstat(cache.c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("cpuid cache: a folder open to others is neither read nor written", "[kvm][cpuid-cache]") {
  TempDir dir;
  REQUIRE(std::filesystem::create_directory(dir.file("shared")));
  REQUIRE(::chmod(dir.file("shared").c_str(), 0777) == 0);
  const std::string cache = dir.file("shared/kvm-cpuid");
  auto got = host_cpuid(kDefaultKvmPath, cache);
  REQUIRE(got);
  CHECK(same(*got, kvm_answer()));
  CHECK_FALSE(std::filesystem::exists(cache));
}

TEST_CASE("husk boot keeps KVM's answer in HUSK_RUNTIME_DIR and boots from it the next time", "[kvm][cpuid-cache]") {
  TempDir dir;
  const std::string kernel = dir.write("c.elf", make_tiny_elf(Asm().print("c").reset().bytes));
  const std::vector<std::string> boot{"env", "HUSK_RUNTIME_DIR=" + dir.file("rt"), HUSK_BIN, "boot", "--kernel",
                                      kernel, "--no-input", "--seccomp=enforce"};
  auto first = run_process(boot, 60);
  INFO(first.err);
  CHECK(first.exit_code == 0);
  CHECK(first.out == "c");
  const std::string cache = dir.file("rt/kvm-cpuid");
  auto key = cpuid_cache_key(kDefaultKvmPath);
  REQUIRE(key);
  auto stored = decode_cpuid_cache(bytes_of(cache), *key);
  REQUIRE(stored);
  CHECK(same(*stored, kvm_answer()));
  struct stat before{};
  REQUIRE(::stat(cache.c_str(), &before) == 0);

  auto second = run_process(boot, 60);
  INFO(second.err);
  CHECK(second.exit_code == 0);
  CHECK(second.out == "c");
  struct stat after{};
  REQUIRE(::stat(cache.c_str(), &after) == 0);
  // Read, not written again.
  CHECK(after.st_ino == before.st_ino);
  CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
}

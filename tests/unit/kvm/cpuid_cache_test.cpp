// The KVM CPUID cache's file format and location (runtime/kvm/
// cpuid_cache.h): what is written reads back for its own key only, and
// every damaged file is refused. The cache against a real /dev/kvm is
// tests/kvm/cpuid_cache_test.cpp.
#include "runtime/kvm/cpuid_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/kvm/kvm.h"
#include "tests/support/temp_dir.h"

using namespace husk;
using namespace husk::kvm;
using husk::test::TempDir;

namespace {

std::vector<kvm_cpuid_entry2> sample_entries() {
  std::vector<kvm_cpuid_entry2> e(3);
  for (uint32_t i = 0; i < e.size(); ++i) {
    std::memset(&e[i], 0, sizeof(e[i]));
    e[i].function = i;
    e[i].index = 0;
    e[i].eax = 0x1000 + i;
    e[i].ebx = 0x2000 + i;
  }
  return e;
}

bool same(const std::vector<kvm_cpuid_entry2>& a, const std::vector<kvm_cpuid_entry2>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("cpuid cache: a file reads back for its own key, and only for it", "[kvm][cpuid-cache]") {
  const auto entries = sample_entries();
  const auto bytes = encode_cpuid_cache("boot_id=a kvm=1", entries);
  auto back = decode_cpuid_cache(bytes, "boot_id=a kvm=1");
  REQUIRE(back);
  CHECK(same(*back, entries));
  auto other = decode_cpuid_cache(bytes, "boot_id=b kvm=1");
  REQUIRE_FALSE(other);
  CHECK(other.error().message.find("another boot") != std::string::npos);
  CHECK_FALSE(decode_cpuid_cache(bytes, "boot_id=a kvm="));
}

TEST_CASE("cpuid cache: every truncation, trailing byte and bad header is refused", "[kvm][cpuid-cache]") {
  const std::string key = "boot_id=a kvm=1";
  const auto bytes = encode_cpuid_cache(key, sample_entries());
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO("cut to " << n << " bytes");
    CHECK_FALSE(decode_cpuid_cache(std::span(bytes.data(), n), key));
  }
  auto longer = bytes;
  longer.push_back(0);
  CHECK_FALSE(decode_cpuid_cache(longer, key));
  auto magic = bytes;
  magic[0] = 'X';
  CHECK_FALSE(decode_cpuid_cache(magic, key));
  // The key's length says more than the file holds.
  auto key_size = bytes;
  key_size[8] = 0xff;
  key_size[9] = 0xff;
  CHECK_FALSE(decode_cpuid_cache(key_size, key));
  // No entries, and more than any KVM has: both refused.
  const auto none = encode_cpuid_cache(key, {});
  CHECK_FALSE(decode_cpuid_cache(none, key));
  std::vector<kvm_cpuid_entry2> many(husk::kvm::kMaxCpuidEntries + 1);
  CHECK_FALSE(decode_cpuid_cache(encode_cpuid_cache(key, many), key));
  std::vector<kvm_cpuid_entry2> most(husk::kvm::kMaxCpuidEntries);
  CHECK(decode_cpuid_cache(encode_cpuid_cache(key, most), key));
}

TEST_CASE("cpuid cache: the key names this boot and the device node as it is", "[kvm][cpuid-cache]") {
  TempDir dir;
  const std::string node = dir.write("kvm", {});
  auto first = cpuid_cache_key(node);
  REQUIRE(first);
  CHECK(first->rfind("boot_id=", 0) == 0);
  auto again = cpuid_cache_key(node);
  REQUIRE(again);
  CHECK(*again == *first);
  // A node made again (a reloaded module) has another inode or change time.
  REQUIRE(::unlink(node.c_str()) == 0);
  dir.write("other", {});  // keeps the old inode number from coming back at once
  dir.write("kvm", {});
  auto remade = cpuid_cache_key(node);
  REQUIRE(remade);
  CHECK(*remade != *first);
  auto missing = cpuid_cache_key(dir.file("absent"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find(dir.file("absent")) != std::string::npos);
}

TEST_CASE("cpuid cache: where the file goes", "[kvm][cpuid-cache]") {
  {
    ScopedEnv husk("HUSK_RUNTIME_DIR", "/somewhere/husk");
    CHECK(default_cpuid_cache_path() == "/somewhere/husk/kvm-cpuid");
  }
  {
    ScopedEnv husk("HUSK_RUNTIME_DIR", "off");
    CHECK(default_cpuid_cache_path().empty());
  }
  {
    ScopedEnv husk("HUSK_RUNTIME_DIR", nullptr);
    ScopedEnv xdg("XDG_RUNTIME_DIR", "/run/user/1000");
    CHECK(default_cpuid_cache_path() == "/run/user/1000/husk/kvm-cpuid");
  }
  {
    ScopedEnv husk("HUSK_RUNTIME_DIR", nullptr);
    ScopedEnv xdg("XDG_RUNTIME_DIR", nullptr);
    CHECK(default_cpuid_cache_path() == (::geteuid() == 0 ? "/run/husk/kvm-cpuid" : ""));
  }
}

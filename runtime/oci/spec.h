// The part of an OCI bundle's config.json that husk-oci reads, as plain
// data (opencontainers/runtime-spec config.md, config-linux.md; runc's
// `exec --process` file is config.md's `process` object on its own).
//
// The file comes from whoever calls the runtime (containerd, Podman, a
// user), so it is untrusted input: nothing here throws, every value is
// type- and range-checked, and an error names the field's JSON path
// ("process.args: expected an array of strings", "mounts[3].destination:
// expected a string", "linux.resources.memory.limit: -5 is negative").
//
// What the spec says and this reader decides:
// - Required: ociVersion (1.x), root.path, and process.args (non-empty,
//   config.md: "at least one entry is REQUIRED") when process is present.
//   A missing process is an error only for create (plan.h checks it).
// - A JSON null reads as absent (Go's encoding/json does the same).
// - Unsigned fields (uid, gid, rlimits, consoleSize, cpu period/shares)
//   refuse negative numbers, fractions and values past their type.
//   memory.limit and cpu.quota are int64 where -1 means unlimited
//   (config-linux.md); -1 and 0 read as "no limit" (Docker and Kubernetes
//   leave 0 for unset), other negatives are errors. pids.limit is kept as
//   given: zero or negative means unlimited (runc's reading).
// - No string husk passes on may hold a NUL: the agent refuses one
//   (tests/fuzz/README.md, findings), so it is refused here, by field.
// - Fields that husk does not map are not dropped: their names land in
//   Process::moot, Resources::other, Spec::hooks or Spec::linux_other,
//   and plan.h turns each into a note. Empty arrays, objects and strings
//   ask for nothing and are not listed. Unknown top-level fields are
//   ignored (the spec allows extensions), and so are the contents of the
//   fields that are only listed.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/common/result.h"

namespace husk::oci {

struct Mount {
  std::string destination;
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

struct Rlimit {
  std::string type;  // "RLIMIT_NOFILE"
  uint64_t soft = 0;
  uint64_t hard = 0;
};

struct Process {
  bool terminal = false;
  uint16_t console_rows = 0, console_cols = 0;  // consoleSize; 0 unset
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additional_gids;
  std::optional<uint32_t> umask;
  std::vector<std::string> args;
  std::vector<std::string> env;  // "KEY=VALUE" as given
  std::string cwd = "/";         // absolute (checked)
  std::vector<Rlimit> rlimits;   // each type once (checked), soft <= hard
  bool no_new_privileges = false;
  // Fields present that husk does not apply, by JSON name: "capabilities",
  // "apparmorProfile", "selinuxLabel", "oomScoreAdj", "user.username",
  // "scheduler", "ioPriority", "execCPUAffinity", "commandLine".
  std::vector<std::string> moot;
};

struct Resources {
  std::optional<int64_t> memory_limit;  // bytes, > 0 (-1 and 0 read as unset)
  std::optional<int64_t> cpu_quota;     // microseconds per period, > 0 (likewise)
  std::optional<uint64_t> cpu_period;   // microseconds
  std::optional<uint64_t> cpu_shares;
  std::string cpuset_cpus;
  std::optional<int64_t> pids_limit;    // as given; <= 0 unlimited
  // Present and not mapped: "blockIO", "hugepageLimits", "devices",
  // "memory.swap", "cpu.mems", "unified", ...
  std::vector<std::string> other;
};

struct Namespace {
  std::string type;  // "pid", "network", ...
  std::string path;  // empty: a new one
};

struct Spec {
  std::string oci_version;
  std::string root_path;  // absolute after load_bundle (relative paths resolve against the bundle)
  bool root_readonly = false;
  std::optional<Process> process;
  std::string hostname;
  std::string domainname;  // not mapped (the agent sets a hostname only)
  std::vector<Mount> mounts;
  std::map<std::string, std::string> annotations;
  Resources resources;
  std::vector<Namespace> namespaces;
  std::string cgroups_path;
  std::vector<std::string> hooks;        // "prestart", "createRuntime", ... one entry per hook kind present
  std::vector<std::string> linux_other;  // linux.* fields present and not mapped: "seccomp", "maskedPaths", ...
};

// `s` as it may stand in a message or a log line: control characters
// escaped ("\x0a"), at most `max` bytes of it, then "...". The spec's
// strings are the caller's, and a newline in one must not split an error
// or forge a log line.
[[nodiscard]] std::string printable(std::string_view s, size_t max = 200);

// The biggest config.json load_bundle reads. Real ones are a few KiB to a
// few hundred (a seccomp profile is the bulk).
inline constexpr uint64_t kMaxConfigBytes = 16u << 20;

// A whole config.json.
[[nodiscard]] Result<Spec> parse_spec(std::string_view json);
// A process object on its own (`runc exec --process process.json`); paths
// in errors are relative to it ("args: ...", "user.uid: ...").
[[nodiscard]] Result<Process> parse_process(std::string_view json);
// Reads <bundle_dir>/config.json and resolves root.path against the bundle
// (the result is absolute and lexically normal). Errors start with the
// file's path: "/b/config.json: root.path: missing".
[[nodiscard]] Result<Spec> load_bundle(const std::string& bundle_dir);

}  // namespace husk::oci

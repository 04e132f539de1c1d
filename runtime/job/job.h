// Job: one validated unit of work for a VM, as plain data. A job file
// (docs/job-file.md) or `husk exec`'s flags fill it; job_runner.h runs it.
//
// Everything here is already checked: paths are absolute (host paths were
// resolved against the job file's folder and exist), limits are in range,
// and a job has at least one thing to run. The runner trusts these values.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/net/network_spec.h"
#include "runtime/vmm/vm_config.h"

namespace husk::job {

inline constexpr int kJobFormatVersion = 1;

// How a job's VM starts: booted, or restored from a snapshot of a booted
// one whose agent was ready (runtime/snapshot/snapshot_cache.h: made on
// first use, one per kernel, images, configuration and husk build).
enum class StartMode { kBoot, kSnapshot };

// The VM a job runs in. Empty kernel/initramfs mean the guest `make` built.
struct VmSpec {
  StartMode start = StartMode::kBoot;
  std::string kernel;
  std::string initramfs;
  // The initramfs is the one `make guest` built (not named by the job or a
  // flag): the kernel starts its agent as PID 1 (SessionOptions::agent_as_init).
  bool stock_initramfs = true;
  // A root disk: booted with husk.root=/dev/vda (the initramfs switches to it).
  std::optional<vmm::DiskConfig> root_disk;
  std::vector<vmm::DiskConfig> disks;  // more disks, after the root disk
  std::string cmdline;                 // empty: husk's default for jobs
  uint32_t vcpus = 1;
  uint64_t memory_mib = 256;
  std::chrono::milliseconds boot_timeout{120'000};
  // Guest RAM advised for transparent huge pages (vmm::VmConfig::huge_pages).
  bool huge_pages = true;
};

// Limits for one program run. Unset values mean no limit (or the default).
struct Limits {
  std::optional<std::chrono::milliseconds> wall_time;
  std::optional<std::chrono::milliseconds> cpu_time;
  std::optional<uint64_t> memory;      // bytes, cgroup memory.max
  std::optional<uint32_t> processes;   // cgroup pids.max
  std::optional<uint64_t> open_files;  // RLIMIT_NOFILE
  std::optional<uint64_t> file_size;   // RLIMIT_FSIZE, bytes
  std::optional<uint64_t> stdout_max;  // bytes kept; past it the run is OL
  std::optional<uint64_t> stderr_max;
  std::optional<int> kill_signal;      // sent at the wall deadline (SIGKILL)
  std::optional<std::chrono::milliseconds> kill_grace;  // then SIGKILL

  // Values of `over` win; the rest come from this.
  [[nodiscard]] Limits merged_with(const Limits& over) const;
};

// Where a program's stdin comes from.
struct Stdin {
  enum class Kind { kNone, kInline, kFile, kRequest };  // kRequest: --input
  Kind kind = Kind::kNone;
  std::string value;  // the text (kInline) or an absolute host path (kFile)
};

// One program run: a build or CI step, the job's process, or a case's run.
struct Step {
  std::string name;
  std::vector<std::string> argv;   // `run = "..."` becomes {"sh", "-c", "..."}
  std::map<std::string, std::string> env;  // exactly the environment (PATH added)
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  Stdin stdin;
  Limits limits;                   // already merged with the job's [limits]
  bool continue_on_error = false;
  bool is_process = false;         // the job's [process] (results say "process")
};

struct FileUpload {
  std::string source;       // absolute host path: a file or a folder
  std::string destination;  // absolute guest path
  std::optional<uint32_t> mode;  // unset: the source's permission bits
};

struct Outputs {
  std::vector<std::string> paths;  // absolute guest paths or shell globs
  std::string dir;                 // absolute host folder (created)
  uint64_t max_total = 64ull << 20;
};

enum class Compare { kExact, kTrailingWhitespace, kTokens, kChecker };

struct Case {
  std::string name;
  Stdin stdin;
  std::optional<std::string> expected;  // the text; unset: no comparison
  Compare compare = Compare::kTrailingWhitespace;
  Limits limits;                        // merged: job, [judge], then the case
};

// Judge settings: cases run `program` (a fresh process each, same VM).
struct Judge {
  Step program;                 // argv/env/cwd/user of each case's run
  Compare compare = Compare::kTrailingWhitespace;
  std::vector<std::string> checker;  // argv run in the guest for kChecker
  bool stop_on_failure = false;
};

enum class ResultFormat { kHuman, kJson };

struct ResultSpec {
  ResultFormat format = ResultFormat::kHuman;
  std::string path;  // empty: stderr (human) or stdout (json)
};

struct Job {
  std::string source;  // the job file (or "exec"), for messages
  VmSpec vm;
  std::vector<FileUpload> files;
  std::vector<Step> steps;      // in order; [process] is the last one
  std::optional<Judge> judge;   // with cases
  std::vector<Case> cases;
  std::optional<Outputs> outputs;
  net::NetworkSpec network;     // mode none: no network device
  ResultSpec result;
  std::string hostname;         // empty: "husk"
};

}  // namespace husk::job

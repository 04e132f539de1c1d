// Helpers for the `husk run` end-to-end tests (tests/e2e/run_test.cpp): a
// private TMPDIR per test, `husk run` with a JSON result, what a run left
// behind (husk-vm-* folders, processes), the JSON results kept for one
// schema check, and small accessors for the result's runs.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/e2e/guest_session.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace husk::test::run {

using nlohmann::json;
namespace fs = std::filesystem;

// Seconds allowed for one `husk run`: boot plus the job, generously.
inline constexpr double kRunTimeoutS = 240;

// This header's folder, tests/e2e/ (an absolute path: CMake compiles with
// absolute source paths, and the test host shares the repository at the same
// path).
inline const fs::path kE2eDir = fs::path(__FILE__).parent_path();

inline fs::path jobs_dir() {
  const fs::path dir = kE2eDir / "jobs";
  INFO("the job files live beside this test: " << dir);
  REQUIRE(fs::is_directory(dir));
  return dir;
}

inline fs::path source_root() { return kE2eDir.parent_path().parent_path(); }

inline std::string job_path(const std::string& name) { return (jobs_dir() / name).string(); }

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

// The last `n` bytes of a (long) stderr, for failure messages.
inline std::string tail(const std::string& s, size_t n = 1500) { return s.size() <= n ? s : s.substr(s.size() - n); }

// One test's private place: a temporary folder, and in it the folder given
// to husk as TMPDIR (where its husk-vm-* folder goes), so each test sees
// exactly what its own runs leave behind.
struct Sandbox {
  TempDir dir;
  std::string tmp = dir.file("tmp");
  int runs = 0;
  // More NAME=VALUE settings for husk's environment.
  std::vector<std::string> env;

  Sandbox() { fs::create_directory(tmp); }

  // Copies tests/e2e/jobs/NAME (a folder) here, so that outputs and
  // generated files stay out of the source tree.
  std::string copy_job(const std::string& name) const {
    const std::string to = dir.file(name);
    fs::copy(jobs_dir() / name, to, fs::copy_options::recursive);
    return to;
  }
};

// Every JSON result the cases wrote, kept past their sandboxes for one
// schema check at the end (python3 and jsonschema take about 8 s to start
// in the nested test host: once, not once per case).
struct ResultStore {
  TempDir dir;
  std::vector<std::string> files;

  void keep(const std::string& result, const std::string& job) {
    const std::string to =
        dir.file(std::to_string(files.size() + 1) + "-" + fs::path(job).stem().string() + ".json");
    fs::copy_file(result, to);
    files.push_back(to);
  }
};

inline ResultStore& results() {
  static ResultStore store;
  return store;
}

struct HuskRun {
  ProcessResult proc;
  json result;  // null when husk wrote none
};

// `env TMPDIR=SANDBOX husk run JOB --kernel --initrd [--json --result FILE]
// EXTRA...`. `env` execs husk, so a signal sent by run_process reaches husk.
inline HuskRun husk_run(Sandbox& sb, const std::string& job, const std::vector<std::string>& extra = {},
                        const std::string& stdin_data = "", int signal_after_ms = -1, int signal = 0,
                        bool json_result = true) {
  std::vector<std::string> argv{"env", "TMPDIR=" + sb.tmp};
  argv.insert(argv.end(), sb.env.begin(), sb.env.end());
  argv.insert(argv.end(), {husk_bin(), "run", job, "--kernel", guest_file("vmlinux"), "--initrd",
                           guest_file("initramfs.cpio")});
  std::string result_path;
  if (json_result) {
    result_path = sb.dir.file("result-" + std::to_string(++sb.runs) + ".json");
    argv.insert(argv.end(), {"--json", "--result", result_path});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  HuskRun run;
  run.proc = run_process(argv, kRunTimeoutS, stdin_data, signal_after_ms, signal);
  INFO("husk stderr (tail): " << tail(run.proc.err));
  REQUIRE_FALSE(run.proc.timed_out);
  if (json_result && fs::exists(result_path)) {
    run.result = json::parse(read_file(result_path), nullptr, false);
    INFO("result file: " << read_file(result_path).substr(0, 3000));
    REQUIRE_FALSE(run.result.is_discarded());
    results().keep(result_path, job);
  }
  return run;
}

// The husk-vm-* folders in a TMPDIR.
inline std::vector<std::string> vm_folders(const std::string& tmp) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(tmp)) {
    if (e.path().filename().string().rfind("husk-vm-", 0) == 0) out.push_back(e.path().string());
  }
  return out;
}

// Processes that run with this sandbox's TMPDIR (husk and anything it
// started), other than this test program: none may outlive a run.
inline std::vector<std::string> processes_of(const Sandbox& sb) {
  const std::string marker = "TMPDIR=" + sb.tmp;
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit) || pid == std::to_string(::getpid())) continue;
    const std::string env = read_file(e.path() / "environ");
    size_t start = 0;
    while (start < env.size()) {
      const size_t end = std::min(env.find('\0', start), env.size());
      if (env.compare(start, end - start, marker) == 0) {
        std::string cmd = read_file(e.path() / "cmdline");
        std::replace(cmd.begin(), cmd.end(), '\0', ' ');
        out.push_back(pid + ": " + cmd);
        break;
      }
      start = end + 1;
    }
  }
  return out;
}

// Nothing of the sandbox's runs is left: no husk-vm-* folder, no process.
inline void check_nothing_left(const Sandbox& sb) {
  const std::vector<std::string> folders = vm_folders(sb.tmp);
  CAPTURE(folders);
  CHECK(folders.empty());
  const std::vector<std::string> procs = processes_of(sb);
  CAPTURE(procs);
  CHECK(procs.empty());
}

// A result for failure messages, each run's stdout and stderr cut short.
inline std::string brief(json result) {
  for (const char* list : {"steps", "cases"}) {
    if (!result.contains(list)) continue;
    for (json& run : result[list]) {
      for (const char* stream : {"stdout", "stderr"}) {
        const std::string text = run.value(stream, "");
        if (text.size() > 200) run[stream] = text.substr(0, 200) + "...";
      }
    }
  }
  return result.dump(1, ' ', false, json::error_handler_t::replace);
}

// The run named `name` in an array of runs.
inline const json& run_named(const json& runs, const std::string& name) {
  for (const json& r : runs) {
    if (r.at("name") == name) return r;
  }
  FAIL("no run named '" << name << "' in " << runs.dump().substr(0, 2000));
  static const json none;
  return none;
}

inline std::vector<std::string> names_of(const json& runs) {
  std::vector<std::string> out;
  for (const json& r : runs) out.push_back(r.at("name").get<std::string>());
  return out;
}

inline std::string str(const json& j, const char* key) { return j.at(key).get<std::string>(); }

// A run's own fields: ordered times, and its stdout/stderr counts against
// the text kept (both whole when under 64 KiB and not cut).
inline void check_run_shape(const json& r) {
  INFO("run: " << r.dump().substr(0, 1500));
  CHECK(r.at("start_ms").get<double>() > 0);
  CHECK(r.at("end_ms").get<double>() >= r.at("start_ms").get<double>());
  CHECK(r.at("wall_ms").get<double>() <= r.at("end_ms").get<double>() - r.at("start_ms").get<double>() + 1);
  if (!r.at("stdout_truncated").get<bool>() && r.at("stdout_bytes").get<size_t>() < 65536) {
    CHECK(r.at("stdout_bytes").get<size_t>() == str(r, "stdout").size());
  }
  if (!r.at("stderr_truncated").get<bool>() && r.at("stderr_bytes").get<size_t>() < 65536) {
    CHECK(r.at("stderr_bytes").get<size_t>() == str(r, "stderr").size());
  }
}

// The first `n` bytes of `line` repeated.
inline std::string repeated_prefix(const std::string& line, size_t n) {
  std::string out;
  while (out.size() < n) out += line;
  out.resize(n);
  return out;
}

}  // namespace husk::test::run

// The e2e tier's progress log and per-case time limit.
//
// Progress: with HUSK_E2E_PROGRESS=FILE, every test case appends
// "start<TAB>NAME" before it runs and "end<TAB>ok|failed<TAB>NAME" after, each
// line flushed at once. tests/e2e/launch reads the file when the nested test
// host dies under the tier (a test host fault) to rerun only the cases that
// had not finished.
//
// Fault injection, for the test of that rerun (tests/testhost/selftest):
// with HUSK_E2E_INJECT_FAULT=TEXT, the first HUSK_E2E_INJECT_FAULT_MAX (1)
// cases whose names contain TEXT crash the test host's kernel as they start
// (sysrq 'c'), counted across sessions in HUSK_E2E_PROGRESS.injected. Only
// inside the nested test host (its command line says husk.testhost=1): on
// any other machine the request is refused.
//
// Time limit: a case that runs longer than HUSK_E2E_CASE_TIMEOUT seconds
// (default 300) ends the program with a message naming it and exit code 124.
// Each boot inside a case has its own, shorter limit (run_process); this one
// catches a case stuck anywhere else.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

namespace {

double case_timeout_s() {
  const char* v = std::getenv("HUSK_E2E_CASE_TIMEOUT");
  if (v == nullptr || *v == '\0') return 300;
  const double s = std::atof(v);
  return s > 0 ? s : 300;
}

// One watchdog thread for the program; armed per test case.
class CaseWatchdog {
 public:
  CaseWatchdog() : thread_([this] { loop(); }) {}
  ~CaseWatchdog() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  CaseWatchdog(const CaseWatchdog&) = delete;
  CaseWatchdog& operator=(const CaseWatchdog&) = delete;

  void arm(const std::string& name, double seconds) {
    std::lock_guard lock(mutex_);
    name_ = name;
    limit_s_ = seconds;
    deadline_ = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                        std::chrono::duration<double>(seconds));
    armed_ = true;
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard lock(mutex_);
    armed_ = false;
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!quit_) {
      if (!armed_) {
        cv_.wait(lock);
        continue;
      }
      if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && armed_ &&
          std::chrono::steady_clock::now() >= deadline_) {
        std::fprintf(stderr, "\ne2e: test case \"%s\" ran over HUSK_E2E_CASE_TIMEOUT=%.0f s; ending the tier\n",
                     name_.c_str(), limit_s_);
        std::fflush(stderr);
        ::_exit(124);
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::string name_;
  double limit_s_ = 0;
  std::chrono::steady_clock::time_point deadline_{};
  bool armed_ = false;
  bool quit_ = false;
  std::thread thread_;
};

std::string read_file(const std::string& path) {
  std::string text;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

void maybe_inject_fault(const std::string& name) {
  const char* want = std::getenv("HUSK_E2E_INJECT_FAULT");
  const char* progress = std::getenv("HUSK_E2E_PROGRESS");
  if (want == nullptr || *want == '\0' || name.find(want) == std::string::npos) return;
  if (progress == nullptr || *progress == '\0') return;
  if (read_file("/proc/cmdline").find("husk.testhost=1") == std::string::npos) {
    std::fprintf(stderr, "e2e: HUSK_E2E_INJECT_FAULT refused: not inside the nested test host\n");
    return;
  }
  const char* max_env = std::getenv("HUSK_E2E_INJECT_FAULT_MAX");
  const int max = max_env != nullptr && *max_env != '\0' ? std::atoi(max_env) : 1;
  const std::string counter = std::string(progress) + ".injected";
  const int done = std::atoi(read_file(counter).c_str());
  if (done >= max) return;
  if (FILE* f = std::fopen(counter.c_str(), "w")) {
    std::fprintf(f, "%d\n", done + 1);
    std::fflush(f);
    ::fsync(fileno(f));
    std::fclose(f);
  }
  std::fprintf(stderr, "e2e: injecting a test host fault (%d of %d) at \"%s\"\n", done + 1, max, name.c_str());
  std::fflush(stderr);
  if (FILE* sysrq = std::fopen("/proc/sysrq-trigger", "w")) {
    std::fputc('c', sysrq);
    std::fclose(sysrq);
  }
}

class ProgressListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    write("start\t" + info.name);
    watchdog().arm(info.name, case_timeout_s());
    maybe_inject_fault(info.name);
  }
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    watchdog().disarm();
    write(std::string("end\t") + (stats.totals.assertions.allOk() ? "ok" : "failed") + "\t" +
          stats.testInfo.name);
  }

 private:
  static CaseWatchdog& watchdog() {
    static CaseWatchdog dog;
    return dog;
  }
  static void write(const std::string& line) {
    const char* path = std::getenv("HUSK_E2E_PROGRESS");
    if (path == nullptr || *path == '\0') return;
    if (FILE* f = std::fopen(path, "a")) {
      std::fprintf(f, "%s\n", line.c_str());
      std::fflush(f);
      ::fsync(fileno(f));
      std::fclose(f);
    }
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(ProgressListener)

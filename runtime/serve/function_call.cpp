#include "runtime/serve/function_call.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "runtime/common/joining_thread.h"
#include "runtime/job/units.h"

namespace husk::serve {

namespace {

// Kills the VMM process through `pidfd` at the deadline unless disarmed
// first. Its own thread (the request's is inside run_job_on meanwhile);
// what it does at expiry is one pidfd_send_signal, safe whenever it comes:
// a pidfd never names another process, and a reaped one gives ESRCH.
class RequestTimer {
 public:
  RequestTimer(Deadline deadline, int pidfd) : deadline_(deadline), pidfd_(pidfd) {}
  ~RequestTimer() { (void)disarm(); }
  RequestTimer(const RequestTimer&) = delete;
  RequestTimer& operator=(const RequestTimer&) = delete;

  [[nodiscard]] Result<void> start() {
    HUSK_TRY_ASSIGN(thread_, JoiningThread::start("request timer", [this] {
                      ::pthread_setname_np(::pthread_self(), "husk-req-timer");
                      std::unique_lock lock(mutex_);
                      if (cv_.wait_until(lock, deadline_.time(), [this] { return disarmed_; })) return;
                      fired_ = true;
                      (void)::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
                    }));
    return {};
  }

  // Stops the clock; whether it had fired.
  bool disarm() {
    {
      std::lock_guard lock(mutex_);
      disarmed_ = true;
    }
    cv_.notify_all();
    thread_.join();
    return fired_;
  }

 private:
  const Deadline deadline_;
  const int pidfd_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;
  JoiningThread thread_;
};

Result<std::string> read_all(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno("fstat of the response buffer");
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pread(fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read the response buffer");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  return data;
}

}  // namespace

Result<std::unique_ptr<PooledVm>> start_pooled_vm(const job::Job& job, const job::RunnerOptions& options) {
  HUSK_TRY_ASSIGN(std::unique_ptr<agent::VmSession> session, job::start_vm(job, options));
  auto vm = std::make_unique<PooledVm>();
  // Nothing has waited for the process yet (only the session's owner
  // reaps it, and that is this thread): the pid still names it. (glibc
  // 2.36's <sys/pidfd.h> lacks extern "C": the calls are made directly.)
  vm->pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, session->vmm().pid(), 0)));
  if (!vm->pidfd) return fail_errno("pidfd_open of the VMM process");
  vm->session = std::move(session);
  return vm;
}

bool pooled_vm_usable(PooledVm& vm) { return !vm.session->vm_stopped(); }

CallOutcome no_vm_outcome(const job::Job& job, job::Verdict verdict, std::string message) {
  CallOutcome out;
  out.result.job = job.source;
  out.result.verdict = verdict;
  out.result.message = std::move(message);
  return out;
}

CallOutcome call_function(const job::Job& job, std::unique_ptr<PooledVm> vm, std::string request,
                          Deadline deadline, std::chrono::milliseconds timeout) {
  UniqueFd out_file(::memfd_create("husk-serve-stdout", MFD_CLOEXEC));
  if (!out_file) {
    return no_vm_outcome(job, job::Verdict::kInternal, fail_errno("memfd_create for the response").value().message);
  }
  RequestTimer timer(deadline, vm->pidfd.get());
  if (auto started = timer.start(); !started) {
    return no_vm_outcome(job, job::Verdict::kInternal, started.error().message);
  }

  job::RunnerOptions options;
  options.stdout_fd = out_file.get();
  options.stderr_fd = -1;  // kept in the result only
  options.request = std::move(request);
  CallOutcome out;
  out.ran = true;
  out.result = job::run_job_on(job, std::move(vm->session), options);
  out.timed_out = timer.disarm();
  if (out.timed_out) {
    // The run ended because its VM was killed: whatever it reports (a lost
    // agent, a VMM killed by SIGKILL) is that.
    out.result.verdict = job::Verdict::kTimeout;
    out.result.message = fmt::format("the request ran past --request-timeout ({}): its VM was killed",
                                     job::format_duration(timeout));
  }
  auto data = read_all(out_file.get());
  if (data) {
    out.stdout_data = std::move(*data);
  } else if (out.result.verdict == job::Verdict::kOk) {
    out.result.verdict = job::Verdict::kInternal;
    out.result.message = data.error().message;
  }
  return out;
}

}  // namespace husk::serve

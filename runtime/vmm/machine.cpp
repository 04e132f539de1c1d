#include "runtime/vmm/machine.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/common/joining_thread.h"
#include "runtime/vmm/vcpu_loop.h"

namespace husk::vmm {

namespace {

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT for the calling thread (and so
// for the threads it starts) while the VM runs, and restores the old mask
// afterwards. The signals are then read from a signalfd: the first three as
// an ordinary stop reason, SIGQUIT as a request for a state dump.
class BlockedStopSignals {
 public:
  BlockedStopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    sigaddset(&set_, SIGQUIT);
    ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
    fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
  }
  ~BlockedStopSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockedStopSignals(const BlockedStopSignals&) = delete;
  BlockedStopSignals& operator=(const BlockedStopSignals&) = delete;
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  sigset_t set_{};
  sigset_t old_{};
  UniqueFd fd_;
};

}  // namespace

Machine::Machine(kvm::Kvm kvm, kvm::Vm vm, GuestMemory memory, std::unique_ptr<StopState> stop,
                 EventLoop loop)
    : kvm_(std::move(kvm)),
      vm_(std::move(vm)),
      memory_(std::move(memory)),
      stop_(std::move(stop)),
      loop_(std::move(loop)) {}

Machine::~Machine() {
  // The loop's handlers keep the transports alive: take them off the loop
  // while it still exists, not from inside its destruction.
  for (auto& transport : virtio_) transport->detach();
}

BootTimeline Machine::timeline() const {
  BootTimeline t = timeline_;
  t.first_run_ns = first_run_ns_.load();
  t.first_run_cpu_ns = first_run_cpu_ns_.load();
  return t;
}

void Machine::stop_vcpus(std::vector<pthread_t>& threads) {
  // Kick until every loop has returned: one kick is enough in theory
  // (immediate_exit), repeating it costs nothing and rules out a lost one.
  for (;;) {
    bool all_exited = true;
    for (size_t i = 0; i < vcpus_.size(); ++i) {
      if (vcpu_exited_[i].load()) continue;
      all_exited = false;
      kick_vcpu(vcpus_[i], threads[i]);
    }
    if (all_exited) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Result<VmExit> Machine::run() {
  if (ran_) return fail("a Machine runs only once");
  ran_ = true;
  install_kick_handler();
  BlockedStopSignals signals;
  if (signals.fd() < 0) return fail_errno("signalfd for SIGINT/SIGTERM");

  if (console_input_fd_ >= 0) {
    auto added = loop_.add(console_input_fd_, EPOLLIN, [this](uint32_t) {
      std::array<uint8_t, 256> buf{};
      const ssize_t n = ::read(console_input_fd_, buf.data(), buf.size());
      if (n > 0) {
        serial_->enqueue_input(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        loop_.remove(console_input_fd_);  // end of input: the guest sees no more
      }
    });
    // A regular file or /dev/null cannot be polled; the console then has no
    // input, which is what such a stdin means anyway.
    if (!added) spdlog::debug("console input not pollable: {}", added.error().message);
  }

  Result<void> loop_result;
  HUSK_TRY_ASSIGN(JoiningThread loop_thread, JoiningThread::start("device event loop", [this, &loop_result] {
    loop_result = loop_.run(stop_->eventfd());
    if (!loop_result) {
      stop_->request(VmExit{ExitReason::kVcpuError, "device event loop: " + loop_result.error().message, -1});
    }
  }));

  std::vector<JoiningThread> vcpu_threads;
  std::vector<pthread_t> handles;
  vcpu_threads.reserve(vcpus_.size());
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    VcpuContext ctx{&vcpus_[i], &pio_bus_, &mmio_bus_, stop_.get(), &vcpu_exited_[i],
                    &vcpu_dump_requested_[i], i == 0 ? &first_run_ns_ : nullptr,
                    i == 0 ? &first_run_cpu_ns_ : nullptr};
    auto thread = JoiningThread::start("vCPU", [ctx] { run_vcpu_loop(ctx); });
    if (!thread) {
      // The VM stops before it really ran; the vCPUs never started count
      // as exited, so stopping the others does not wait for them.
      stop_->request(VmExit{ExitReason::kVcpuError, thread.error().message, static_cast<int>(i)});
      for (size_t j = i; j < vcpus_.size(); ++j) vcpu_exited_[j].store(true);
      break;
    }
    vcpu_threads.push_back(std::move(*thread));
    handles.push_back(vcpu_threads.back().native_handle());
  }

  // The control thread waits for a stop request or a stop signal.
  std::array<pollfd, 2> fds{pollfd{stop_->eventfd(), POLLIN, 0}, pollfd{signals.fd(), POLLIN, 0}};
  // It also writes out the console's partial line (a prompt) every 100 ms.
  while (!stop_->stopped()) {
    const int ready = ::poll(fds.data(), fds.size(), 100);
    if (console_) console_->try_flush();
    if (ready < 0 && errno != EINTR) {
      stop_->request(VmExit{ExitReason::kVcpuError, fail_errno("poll").value().message, -1});
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(signals.fd(), &info, sizeof(info)) == sizeof(info) && info.ssi_signo == SIGQUIT) {
        for (size_t i = 0; i < handles.size(); ++i) {
          vcpu_dump_requested_[i].store(true);
          kick_vcpu(vcpus_[i], handles[i]);
        }
      } else if (info.ssi_signo != 0) {
        stop_->request(VmExit{ExitReason::kSignal,
                              fmt::format("husk received {}", ::sigabbrev_np(static_cast<int>(info.ssi_signo))),
                              -1});
      }
    }
  }
  timeline_.stop_ns = monotonic_ns();
  // A vCPU waiting for a console nobody reads must see the stop too.
  if (console_) console_->abandon();
  stop_vcpus(handles);
  for (JoiningThread& t : vcpu_threads) t.join();
  loop_thread.join();
  console_->flush();

  VmExit exit = *stop_->exit();
  // With panic=-1 a panicking kernel resets at once; the console tells the
  // two apart.
  if (auto panic = console_->panic_line(); panic && exit.reason == ExitReason::kGuestReset) {
    exit = VmExit{ExitReason::kGuestPanic, *panic, exit.vcpu};
  }
  return exit;
}

}  // namespace husk::vmm

#include "runtime/vmm/machine.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/common/joining_thread.h"
#include "runtime/common/signals.h"
#include "runtime/common/thread.h"
#include "runtime/vmm/boot_images.h"
#include "runtime/vmm/vcpu_loop.h"

namespace husk::vmm {

namespace {

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

const char* boot_phase_name(BootPhase p) {
  switch (p) {
    case BootPhase::kProcessStart: return "process_start";
    case BootPhase::kArgsParsed: return "args_parsed";
    case BootPhase::kKvmOpened: return "kvm_opened";
    case BootPhase::kMemoryReady: return "memory_ready";
    case BootPhase::kDevicesReady: return "devices_ready";
    case BootPhase::kKernelLoaded: return "kernel_loaded";
    case BootPhase::kInitrdLoaded: return "initrd_loaded";
    case BootPhase::kVcpusReady: return "vcpus_ready";
    case BootPhase::kJailEntered: return "jail_entered";
    case BootPhase::kFiltersCompiled: return "filters_compiled";
    case BootPhase::kThreadsStarted: return "threads_started";
    case BootPhase::kSeccompInstalled: return "seccomp_installed";
    case BootPhase::kCount: break;
  }
  return "?";
}

PhaseStamp stamp_now() {
  timespec cpu{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  return PhaseStamp{monotonic_ns(), static_cast<int64_t>(cpu.tv_sec) * 1'000'000'000 + cpu.tv_nsec};
}

PhaseStamp process_start_stamp() {
  static const PhaseStamp start = stamp_now();
  return start;
}

Machine::Machine(kvm::Kvm kvm, kvm::Vm vm, GuestMemory memory, std::unique_ptr<StopState> stop)
    : kvm_(std::move(kvm)), vm_(std::move(vm)), memory_(std::move(memory)), stop_(std::move(stop)) {}

Machine::~Machine() {
  // The loop's handlers keep the transports alive: take them off the loop
  // while it still exists, not from inside its destruction.
  for (auto& transport : virtio_) transport->detach();
}

Result<EventLoop*> Machine::add_io_loop(seccomp::ThreadClass cls, std::string name) {
  HUSK_TRY_ASSIGN(EventLoop loop, EventLoop::create());
  io_loops_.push_back(IoLoop{cls, std::move(name), std::make_unique<EventLoop>(std::move(loop))});
  return io_loops_.back().loop.get();
}

EventLoop* Machine::io_loop(seccomp::ThreadClass cls) const {
  for (const IoLoop& l : io_loops_) {
    if (l.cls == cls) return l.loop.get();
  }
  return nullptr;
}

std::optional<net::NetReport> Machine::net_report() const {
  if (!net_) return std::nullopt;
  return net_->report();
}

BootTimeline Machine::timeline() const {
  BootTimeline t = timeline_;
  if (images_ && t.at(BootPhase::kInitrdLoaded).ns == 0) t.at(BootPhase::kInitrdLoaded) = images_->initrd_loaded();
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

Result<std::vector<JoiningThread>> Machine::start_io_threads() {
  if (console_input_fd_ >= 0) {
    HUSK_TRY_ASSIGN(EventLoop * input, add_io_loop(seccomp::ThreadClass::kConsole, "husk-console"));
    auto added = input->add(console_input_fd_, EPOLLIN, [this, input](uint32_t) {
      std::array<uint8_t, 256> buf{};
      const ssize_t n = ::read(console_input_fd_, buf.data(), buf.size());
      if (n > 0) {
        serial_->enqueue_input(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        input->remove(console_input_fd_);  // end of input: the guest sees no more
      }
    });
    // A regular file or /dev/null cannot be polled; the console then has no
    // input, which is what such a stdin means anyway.
    if (!added) spdlog::debug("console input not pollable: {}", added.error().message);
  }
  // A snapshot's pause: the I/O threads park at the gate between events.
  for (IoLoop& l : io_loops_) {
    HUSK_TRY(l.loop->add(pause_fd_.get(), EPOLLIN, [this](uint32_t) { pause_gate_.park(*stop_); }));
  }
  std::vector<JoiningThread> threads;
  threads.reserve(io_loops_.size());
  for (IoLoop& l : io_loops_) {
    EventLoop* loop = l.loop.get();
    const std::string name = l.name;
    auto thread = spawn_thread(l.cls, name, [this, loop, name] {
      if (auto ran = loop->run(stop_->eventfd()); !ran) {
        stop_->request(VmExit{ExitReason::kVcpuError, name + " event loop: " + ran.error().message, -1});
      }
    });
    if (!thread) {
      stop_->request(VmExit{ExitReason::kVcpuError, thread.error().message, -1});
      return Unexpected(thread.error());
    }
    threads.push_back(std::move(*thread));
  }
  return threads;
}

void Machine::request_dump() {
  for (size_t i = 0; i < vcpu_threads_.size(); ++i) {
    vcpu_dump_requested_[i].store(true);
    kick_vcpu(vcpus_[i], vcpu_threads_[i]);
  }
}

void Machine::control_loop(const StopSignals& signals) {
  if (signals.fd() < 0) {
    stop_->request(VmExit{ExitReason::kVcpuError, fail_errno("signalfd for SIGINT/SIGTERM").value().message, -1});
  }
  std::array<pollfd, 3> fds{pollfd{stop_->eventfd(), POLLIN, 0}, pollfd{signals.fd(), POLLIN, 0},
                            pollfd{watch_fd_, POLLIN, 0}};
  // It also writes out the console's partial line (a prompt) every 100 ms.
  while (!stop_->stopped()) {
    const int ready = ::poll(fds.data(), fds.size(), 100);
    if (console_) console_->try_flush();
    if (ready < 0 && errno != EINTR) {
      stop_->request(VmExit{ExitReason::kVcpuError, fail_errno("poll").value().message, -1});
    }
    if (fds[1].revents & POLLIN) {
      const int signo = signals.take();
      if (signo == SIGQUIT) {
        request_dump();
      } else if (signo != 0) {
        stop_->request(VmExit{ExitReason::kSignal, fmt::format("husk received {}", ::sigabbrev_np(signo)), -1});
      }
    }
    if (fds[2].revents != 0 && on_watch_) on_watch_();
  }
}

Result<VmExit> Machine::run() {
  if (ran_) return fail("a Machine runs only once");
  ran_ = true;
  install_signal_handlers();
  // glibc reads /etc/localtime the first time a time is formatted (spdlog's
  // timestamps): here, not in a filtered thread that may not open files.
  ::tzset();
  // Signals go to the control thread's signalfd: the threads started below
  // inherit the mask.
  const StopSignals signals;

  auto io_threads = start_io_threads();
  std::vector<JoiningThread> vcpu_threads;
  vcpu_threads.reserve(vcpus_.size());
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    if (!io_threads) {
      // The VM stops before it really ran; the vCPUs never started count
      // as exited, so stopping the others does not wait for them.
      for (size_t j = i; j < vcpus_.size(); ++j) vcpu_exited_[j].store(true);
      break;
    }
    VcpuContext ctx{&vcpus_[i], &pio_bus_, &mmio_bus_, stop_.get(), &vcpu_exited_[i],
                    &vcpu_dump_requested_[i], i == 0 ? &first_run_ns_ : nullptr,
                    i == 0 ? &first_run_cpu_ns_ : nullptr, &pause_gate_, {}};
    if (save_to_) {
      ctx.on_pause = [this, i] {
        PausedVcpu& p = paused_vcpus_[i];
        auto saved = kvm::save_vcpu_state(kvm_, vcpus_[i], msr_indices_);
        p.state.reset();
        p.error.clear();
        if (saved) {
          p.state = std::move(*saved);
        } else {
          p.error = saved.error().message;
        }
      };
    }
    auto thread = spawn_thread(seccomp::ThreadClass::kVcpu, fmt::format("husk-vcpu{}", i), [this, ctx] {
      {
        std::unique_lock lock(release_mutex_);
        release_cv_.wait(lock, [this] { return vcpus_released_; });
      }
      run_vcpu_loop(ctx);
    });
    if (!thread) {
      stop_->request(VmExit{ExitReason::kVcpuError, thread.error().message, static_cast<int>(i)});
      for (size_t j = i; j < vcpus_.size(); ++j) vcpu_exited_[j].store(true);
      break;
    }
    vcpu_threads.push_back(std::move(*thread));
    vcpu_threads_.push_back(vcpu_threads.back().native_handle());
  }

  // A held-back initrd's loader, waiting for the guest's start.
  if (images_ && !stop_->stopped()) images_->start_initrd_copy();
  timeline_.mark(BootPhase::kThreadsStarted);
  // Every thread has its own filter now; this one takes its own last.
  if (control_filter_ && !stop_->stopped()) {
    if (auto entered = control_filter_(); !entered) {
      stop_->request(VmExit{ExitReason::kVcpuError, "the control thread's seccomp filter: " + entered.error().message});
    }
  }
  timeline_.mark(BootPhase::kSeccompInstalled);
  // Open, then drop, then run: the guest's first instruction comes after
  // the last filter. A VM that stopped meanwhile releases its vCPUs too:
  // their loops see the stop.
  {
    std::lock_guard lock(release_mutex_);
    vcpus_released_ = true;
  }
  release_cv_.notify_all();
  if (images_) images_->copy_initrd_now();
  // The control thread waits for a stop request or a stop signal.
  control_loop(signals);
  timeline_.stop_ns = monotonic_ns();
  // A vCPU waiting for a console nobody reads must see the stop too.
  if (console_) console_->abandon();
  stop_vcpus(vcpu_threads_);
  for (JoiningThread& t : vcpu_threads) t.join();
  if (io_threads) {
    for (JoiningThread& t : *io_threads) t.join();
  }
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

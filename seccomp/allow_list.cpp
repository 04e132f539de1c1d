// The allow-lists of husk's thread classes, written from the code each
// class runs (named in every reason) for glibc 2.36 on x86_64 (Debian 12).
// How to add a system call: docs/seccomp.md. Firecracker's lists
// (resources/seccomp/x86_64-unknown-linux-musl.json) were read for facts
// only: musl and Rust call the kernel differently from glibc and C++.
#include "seccomp/allow_list.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <array>
#include <cerrno>

#include "runtime/kvm/flex_array_ioctls.h"

namespace husk::seccomp {

namespace {

// {__NR_name, "name"}: a misspelt system call does not compile.
#define HUSK_SYSCALL(name) __NR_##name, #name
// A constant and its UAPI name, for the argument conditions.
#define HUSK_VALUE(constant) Value{static_cast<uint64_t>(constant), #constant}

// The vCPU kick signal (runtime/vmm/vcpu_loop.h, kick_signal()): SIGRTMIN
// is glibc's function call, so the lists are built at run time.
Value kick_signal_value() { return Value{static_cast<uint64_t>(SIGRTMIN + 1), "SIGRTMIN+1 (the vCPU kick)"}; }

ArgCheck arg_in(uint8_t index, std::vector<Value> values) {
  return ArgCheck{index, ArgCheck::kWholeArgument, {}, std::move(values), true};
}

ArgCheck arg_masked(uint8_t index, uint64_t mask, std::string_view mask_name, std::vector<Value> values) {
  return ArgCheck{index, mask, mask_name, std::move(values), true};
}

// socket(2)'s type: a stream, whatever its NONBLOCK and CLOEXEC flags.
ArgCheck unix_stream_type() {
  return arg_masked(1, ~static_cast<uint32_t>(SOCK_NONBLOCK | SOCK_CLOEXEC), "~(SOCK_NONBLOCK|SOCK_CLOEXEC)",
                    {HUSK_VALUE(SOCK_STREAM)});
}

// Collects a class's rules. The same call with the same conditions added
// twice (a shared group, then the class) is one rule with both reasons; a
// single-condition rule on the same argument merges its values.
class Builder {
 public:
  explicit Builder(ThreadClass c, std::string_view runs) { list_.cls = c; list_.runs = runs; }

  Builder& allow(int nr, std::string_view name, std::string_view reason, std::vector<ArgCheck> checks = {}) {
    return add(Rule{nr, name, std::string(reason), std::move(checks), Action::kAllow, 0});
  }
  Builder& refuse(int nr, std::string_view name, int err, std::string_view reason) {
    return add(Rule{nr, name, std::string(reason), {}, Action::kErrno, err});
  }
  AllowList take() { return std::move(list_); }

 private:
  static bool same_shape(const ArgCheck& a, const ArgCheck& b) {
    return a.index == b.index && a.mask == b.mask && a.width32 == b.width32;
  }
  Builder& add(Rule rule) {
    for (Rule& r : list_.rules) {
      if (r.name != rule.name || r.action != rule.action) continue;
      const bool plain = r.checks.empty() && rule.checks.empty();
      const bool mergeable = r.checks.size() == 1 && rule.checks.size() == 1 && same_shape(r.checks[0], rule.checks[0]);
      if (!plain && !mergeable) continue;
      if (mergeable) {
        for (const Value& v : rule.checks[0].values) r.checks[0].values.push_back(v);
      }
      r.reason += "; " + rule.reason;
      return *this;
    }
    list_.rules.push_back(std::move(rule));
    return *this;
  }
  AllowList list_;
};

// Sanitizer builds only (make test-asan, make tsan): the sanitizer's own
// runtime calls the kernel from every thread, behind husk's back.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
void add_sanitizer_runtime(Builder& b) {
  b.allow(HUSK_SYSCALL(madvise), "sanitizer runtime: the shadow of new memory is kept off huge pages and out of cores",
          {arg_in(2, {HUSK_VALUE(MADV_NOHUGEPAGE), HUSK_VALUE(MADV_DONTDUMP)})})
      .allow(HUSK_SYSCALL(sigaltstack), "sanitizer runtime: each thread's alternate signal stack, set and taken away")
      .allow(HUSK_SYSCALL(pipe2), "sanitizer runtime: UBSan's vptr check probes memory by writing it into a pipe")
      .allow(HUSK_SYSCALL(close), "sanitizer runtime: the probe's pipe");
}
#else
void add_sanitizer_runtime(Builder&) {}
#endif

// What every thread does, whatever its class: glibc's malloc, thread
// exit and abort, C++ locks, spdlog, and the violation report itself.
void add_every_thread(Builder& b) {
  b.allow(HUSK_SYSCALL(write), "the seccomp violation report (violation.h) and spdlog's lines go to stderr")
      .allow(HUSK_SYSCALL(exit_group), "the violation report ends husk with exit code 200; _exit")
      .allow(HUSK_SYSCALL(exit), "the thread ends (glibc's start_thread)")
      .allow(HUSK_SYSCALL(rt_sigreturn), "returns from a signal handler (the vCPU kick's, or one the kernel hands this thread)")
      .allow(HUSK_SYSCALL(rt_sigprocmask), "glibc blocks every signal while a thread ends, in pthread_kill and in abort()")
      .allow(HUSK_SYSCALL(futex),
             "std::mutex, std::condition_variable, std::call_once, thread joins; no PI, requeue or wake-op operations",
             {arg_masked(1, static_cast<uint32_t>(FUTEX_CMD_MASK), "FUTEX_CMD_MASK",
                         {HUSK_VALUE(FUTEX_WAIT), HUSK_VALUE(FUTEX_WAKE), HUSK_VALUE(FUTEX_WAIT_BITSET),
                          HUSK_VALUE(FUTEX_WAKE_BITSET)})})
      .allow(HUSK_SYSCALL(brk), "malloc's main arena grows and shrinks")
      .allow(HUSK_SYSCALL(mmap), "malloc maps thread arenas and large blocks, pthread_create stacks; never executable",
             {arg_masked(2, PROT_EXEC, "PROT_EXEC", {Value{0, "0"}})})
      .allow(HUSK_SYSCALL(mprotect), "malloc opens a thread arena's reserved pages as it grows; never executable",
             {arg_masked(2, PROT_EXEC, "PROT_EXEC", {Value{0, "0"}})})
      .allow(HUSK_SYSCALL(munmap), "free() of large blocks, arena trims")
      .allow(HUSK_SYSCALL(madvise), "free() returns heap pages, glibc drops a finished thread's stack",
             {arg_in(2, {HUSK_VALUE(MADV_DONTNEED)})})
      .allow(HUSK_SYSCALL(clock_gettime),
             "clocks the vDSO does not serve (CPU-time clocks; every clock on a clock source without vDSO)")
      .allow(HUSK_SYSCALL(restart_syscall), "the kernel resumes a wait that a stop and continue interrupted")
      .allow(HUSK_SYSCALL(getpid), "pthread_kill and abort() address their own process (tgkill)")
      .allow(HUSK_SYSCALL(gettid), "abort() addresses its own thread; spdlog's thread id")
      .allow(HUSK_SYSCALL(tgkill),
             "abort() on a broken internal invariant raises SIGABRT in its own thread, so husk ends as an abort "
             "with its message, not as a violation",
             {arg_in(2, {HUSK_VALUE(SIGABRT)})})
      .allow(HUSK_SYSCALL(sched_getaffinity), "glibc's malloc counts the CPUs once, when a ninth arena is needed");
  add_sanitizer_runtime(b);
}

// A class that opens no file still meets one open: glibc's malloc reads
// /proc/sys/vm/overcommit_memory the first time any thread arena shrinks.
void refuse_opens(Builder& b) {
  b.refuse(HUSK_SYSCALL(openat), EACCES,
           "refused, not fatal: glibc's malloc reads /proc/sys/vm/overcommit_memory once, when a thread arena first "
           "shrinks, and keeps its default on EACCES; this thread opens no file");
}

// A class whose threads start threads: the new thread runs glibc's start
// code and seccomp::enter() still under this class's filter (a filter is
// inherited), and the kernel applies both filters to it from then on.
void add_thread_start(Builder& b) {
  b.allow(HUSK_SYSCALL(clone), "pthread_create (once clone3 says ENOSYS): threads only (CLONE_THREAD), never a fork",
          {arg_masked(0, CLONE_THREAD, "CLONE_THREAD", {HUSK_VALUE(CLONE_THREAD)})})
      .refuse(HUSK_SYSCALL(clone3), ENOSYS,
              "refused, not fatal: glibc's pthread_create tries clone3 first; its flags are in memory a filter "
              "cannot read, so it gets ENOSYS and glibc falls back to clone, whose flags are checked")
      .allow(HUSK_SYSCALL(rt_sigaction),
             "the process's first pthread_create installs glibc's own SIGCANCEL and SIGSETXID handlers (late_init)",
             {arg_in(0, {Value{32, "32 (glibc's SIGCANCEL)"}, Value{33, "33 (glibc's SIGSETXID)"}})})
      .allow(HUSK_SYSCALL(set_robust_list), "a new thread registers its robust futex list (glibc's start_thread)")
      .allow(HUSK_SYSCALL(rseq), "a new thread registers its restartable sequence (glibc 2.35 and later)")
      .allow(HUSK_SYSCALL(prctl), "a new thread names itself and enters its class (spawn_thread, seccomp::enter)",
             {arg_in(0, {HUSK_VALUE(PR_SET_NAME), HUSK_VALUE(PR_GET_NAME), HUSK_VALUE(PR_SET_NO_NEW_PRIVS)})})
      .allow(HUSK_SYSCALL(seccomp), "a new thread installs its own class's filter (seccomp::enter)",
             {arg_in(0, {HUSK_VALUE(SECCOMP_SET_MODE_FILTER)})});
}

// runtime/common/event_loop.cpp, EventLoop::run, with a virtio device's
// transport (mmio_transport.cpp) on it: the shape of every device thread.
void add_device_loop(Builder& b) {
  b.allow(HUSK_SYSCALL(epoll_wait), "EventLoop::run waits for its fds")
      .allow(HUSK_SYSCALL(epoll_ctl),
             "EventLoop::run adds the stop fd; the device adds, changes and removes its fds; a failed device's fds "
             "come off the loop")
      .allow(HUSK_SYSCALL(read), "drains the queue notifications' ioeventfds and the transport's self-kick eventfd")
      .allow(HUSK_SYSCALL(write), "interrupts through irqfd eventfds; the transport's self-kick; stop requests")
      .allow(HUSK_SYSCALL(eventfd2),
             "the transport makes its self-kick eventfd when a queue first uses up its budget (schedule())");
}

AllowList main_list() {
  Builder b(ThreadClass::kMain,
            "husk's main thread once the VM is built: the agent client, the job's files, output, the VMM process's "
            "end (runtime/job, runtime/agent, cli/)");
  add_every_thread(b);
  add_thread_start(b);
  b.allow(HUSK_SYSCALL(write), "output to stdout, result files, the agent socket")
      .allow(HUSK_SYSCALL(writev), "iostreams (result and output files) write their buffer and new data at once")
      .allow(HUSK_SYSCALL(read), "the agent's frames, input files, the console log's tail")
      .allow(HUSK_SYSCALL(openat), "input files, output files, the console log, folder walks (opendir)")
      .allow(HUSK_SYSCALL(close), "every file and socket it opens")
      .allow(HUSK_SYSCALL(newfstatat), "stat, lstat and fstat (glibc 2.36 makes all three newfstatat); std::filesystem")
      .allow(HUSK_SYSCALL(lseek), "ifstream seeks (the console log's tail)")
      .allow(HUSK_SYSCALL(getdents64), "folder listings: input folders, removing the VM's private folder")
      .allow(HUSK_SYSCALL(mkdir), "create_directories for output files")
      .allow(HUSK_SYSCALL(unlinkat), "removing the VM's private folder (PrivateDir)")
      .allow(HUSK_SYSCALL(unlink), "std::filesystem::remove_all of the VM's private folder (remove(3))")
      .allow(HUSK_SYSCALL(rmdir), "std::filesystem::remove_all of the VM's private folder")
      .allow(HUSK_SYSCALL(fcntl), "folder walks: fdopendir checks its fd's flags, PrivateDir duplicates it",
             {arg_in(1, {HUSK_VALUE(F_DUPFD_CLOEXEC), HUSK_VALUE(F_GETFD), HUSK_VALUE(F_SETFD), HUSK_VALUE(F_GETFL),
                         HUSK_VALUE(F_SETFL)})})
      .allow(HUSK_SYSCALL(getcwd), "std::filesystem::relative and absolute (input folders)")
      .allow(HUSK_SYSCALL(readlink), "std::filesystem::canonical resolves symbolic links (realpath)")
      .allow(HUSK_SYSCALL(ioctl), "isatty() on stdout and stdin (stdio's buffering); RawTerminal restores the terminal",
             {arg_in(1, {HUSK_VALUE(TCGETS), HUSK_VALUE(TCSETS)})})
      .allow(HUSK_SYSCALL(socket), "the agent client's connection to the vsock socket (AgentClient::connect_vsock_uds)",
             {arg_in(0, {HUSK_VALUE(AF_UNIX)}), unix_stream_type()})
      .allow(HUSK_SYSCALL(connect), "the agent client's connection to the vsock socket")
      .allow(HUSK_SYSCALL(sendto), "agent frames and requests to the VMM process (send(2) is sendto on x86_64)")
      .allow(HUSK_SYSCALL(recvfrom), "messages from the VMM process's channel (recv(2))")
      .allow(HUSK_SYSCALL(shutdown), "ends the agent's stream (VmSession::finish)")
      .allow(HUSK_SYSCALL(poll), "every wait on the agent and the VMM channel has a deadline (Deadline, poll_until)")
      .allow(HUSK_SYSCALL(clock_nanosleep), "sleep_for between agent connection attempts and while the VM shuts down")
      .allow(HUSK_SYSCALL(wait4), "waitpid of the VMM process")
      .allow(HUSK_SYSCALL(kill), "kills a VMM process that does not stop when asked; a passt that has no pidfd",
             {arg_in(1, {HUSK_VALUE(SIGKILL), HUSK_VALUE(SIGTERM)})})
      .allow(HUSK_SYSCALL(pidfd_send_signal),
             "stops the VM's passt through its pidfd (SIGTERM, then SIGKILL: runtime/net/passt.cpp)",
             {arg_in(1, {HUSK_VALUE(SIGKILL), HUSK_VALUE(SIGTERM)})});
  return b.take();
}

AllowList vmm_list() {
  Builder b(ThreadClass::kVmm,
            "the VMM's control thread: Machine::run's control loop (stop requests, stop signals, husk's channel, "
            "the console's flush), then the VM's teardown (runtime/vmm/machine.cpp). It enters its class after "
            "every other thread of the VM has started, so it starts none, installs no handler and opens no signalfd "
            "under this filter; a snapshot's VM state (runtime/kvm/vcpu_state.cpp) and its files");
  add_every_thread(b);
  refuse_opens(b);
  b.allow(HUSK_SYSCALL(poll), "the control loop waits for a stop request, a signal or husk's channel (100 ms ticks)")
      .allow(HUSK_SYSCALL(read), "the stop signals' signalfd (StopSignals::take)")
      .allow(HUSK_SYSCALL(write), "the console's partial line every 100 ms (ConsoleSink::try_flush)")
      .allow(HUSK_SYSCALL(recvfrom), "husk's stop and dump requests on the VMM channel (recv(2))")
      .allow(HUSK_SYSCALL(sendto), "the VM's exit and timeline to husk over the channel (send(2))")
      .allow(HUSK_SYSCALL(tgkill), "kicks vCPU threads out of KVM_RUN (pthread_kill, kick_vcpu), for a stop or a dump",
             {arg_in(2, {kick_signal_value()})})
      .allow(HUSK_SYSCALL(epoll_ctl), "teardown (husk boot): the transports' fds come off their loops")
      .allow(HUSK_SYSCALL(clock_nanosleep), "stop_vcpus sleeps 1 ms between kicks")
      .allow(HUSK_SYSCALL(close), "teardown: the VM's eventfds, signalfd, loops, disk images and sockets")
      .allow(HUSK_SYSCALL(ioctl),
             "snapshot: reads the VM's in-kernel irqchips, PIT and kvmclock, never sets them (save_vm_state, "
             "runtime/kvm/vcpu_state.cpp)",
             {arg_in(1, {HUSK_VALUE(KVM_GET_IRQCHIP), HUSK_VALUE(KVM_GET_PIT2), HUSK_VALUE(KVM_GET_CLOCK)})})
      .allow(HUSK_SYSCALL(pwrite64), "snapshot: writes the state and memory files husk opened")
      .allow(HUSK_SYSCALL(lseek), "snapshot: writes the state and memory files husk opened (a file's offset)")
      .allow(HUSK_SYSCALL(ftruncate), "snapshot: writes the state and memory files husk opened (a file's size)")
      .allow(HUSK_SYSCALL(fsync), "snapshot: writes the state and memory files husk opened (on disk before done)")
      .allow(HUSK_SYSCALL(unlink),
             "teardown (husk boot): ~Vsock removes the socket file it bound; a jailed VMM process ends with _exit, "
             "and its folder is root's (0711), so it has nothing it may unlink");
  return b.take();
}

AllowList vcpu_list() {
  Builder b(ThreadClass::kVcpu,
            "run_vcpu_loop (runtime/vmm/vcpu_loop.cpp): KVM_RUN and every port and MMIO exit: the serial port "
            "and i8042 (runtime/devices/legacy), the virtio-mmio registers, activation and reset of devices; a "
            "paused vCPU's own state for a snapshot (runtime/kvm/vcpu_state.cpp)");
  add_every_thread(b);
  refuse_opens(b);
  // KVM_GET_XSAVE, KVM_GET_XSAVE2 and KVM_GET_MSRS as runtime/kvm sends
  // them: <linux/kvm.h>'s numbers for them are wrong in C++
  // (runtime/kvm/flex_array_ioctls.h), and the filter must match the call.
  b.allow(HUSK_SYSCALL(ioctl),
          "KVM_RUN; the fault report and the SIGQUIT state dump read registers and events (vcpu_fault_report.cpp); "
          "snapshot: a paused vCPU reads its own state, never sets it (save_vcpu_state, runtime/kvm/vcpu_state.cpp)",
          {arg_in(1, {HUSK_VALUE(KVM_RUN), HUSK_VALUE(KVM_GET_REGS), HUSK_VALUE(KVM_GET_SREGS),
                      HUSK_VALUE(KVM_GET_VCPU_EVENTS), HUSK_VALUE(KVM_GET_MP_STATE),
                      Value{kvm::kKvmGetXsave, "KVM_GET_XSAVE"}, Value{kvm::kKvmGetXsave2, "KVM_GET_XSAVE2"},
                      HUSK_VALUE(KVM_GET_XCRS), HUSK_VALUE(KVM_GET_DEBUGREGS), HUSK_VALUE(KVM_GET_LAPIC),
                      Value{kvm::kKvmGetMsrs, "KVM_GET_MSRS"}})})
      .allow(HUSK_SYSCALL(write),
             "serial output to the console (ConsoleSink); interrupts through irqfd eventfds; stop requests "
             "(StopState's eventfd: HLT, i8042 reset, a failure)")
      .allow(HUSK_SYSCALL(poll), "the console sink waits, in 100 ms slices, for a slow console reader (backpressure)")
      .allow(HUSK_SYSCALL(epoll_ctl),
             "a driver's DRIVER_OK activates its device here, which adds the device's fds to its loop; a reset "
             "takes them off")
      .allow(HUSK_SYSCALL(timerfd_create), "vsock's activation (at DRIVER_OK, on this thread) makes its handshake timer")
      .allow(HUSK_SYSCALL(close), "a driver's reset (status 0) closes the device's host sockets and timer (vsock)");
  return b.take();
}

AllowList block_list() {
  Builder b(ThreadClass::kBlock,
            "a virtio-blk device's event loop: its queue and the disk image (runtime/devices/virtio/block)");
  add_every_thread(b);
  refuse_opens(b);
  add_device_loop(b);
  b.allow(HUSK_SYSCALL(preadv), "reads of the disk image and its copy-on-write overlay (DiskImage::read)")
      .allow(HUSK_SYSCALL(pwritev), "writes to the disk image or its overlay (DiskImage::write)")
      .allow(HUSK_SYSCALL(fdatasync), "VIRTIO_BLK_T_FLUSH on a persistent disk (DiskImage::flush)");
  return b.take();
}

AllowList rng_list() {
  Builder b(ThreadClass::kRng, "the virtio-rng device's event loop: its queue (runtime/devices/virtio/rng)");
  add_every_thread(b);
  refuse_opens(b);
  add_device_loop(b);
  b.allow(HUSK_SYSCALL(getrandom), "the guest's entropy requests (Rng::process_queue)");
  return b.take();
}

AllowList vsock_list() {
  Builder b(ThreadClass::kVsock,
            "the virtio-vsock device's event loop: its queues and the host side on Unix sockets "
            "(runtime/devices/virtio/vsock)");
  add_every_thread(b);
  refuse_opens(b);
  add_device_loop(b);
  b.allow(HUSK_SYSCALL(accept4), "host clients connect to the VM's socket (Vsock::on_listener)")
      .allow(HUSK_SYSCALL(socket), "a guest connection to host port P connects to <socket>_P (Vsock::handle_request)",
             {arg_in(0, {HUSK_VALUE(AF_UNIX)}), unix_stream_type()})
      .allow(HUSK_SYSCALL(connect), "a guest connection to host port P connects to <socket>_P")
      .allow(HUSK_SYSCALL(read), "a host client's CONNECT line, byte by byte")
      .allow(HUSK_SYSCALL(readv), "host bytes straight into the guest's receive buffers (send_host_data)")
      .allow(HUSK_SYSCALL(sendto), "guest bytes to host sockets (send(2) is sendto on x86_64)")
      .allow(HUSK_SYSCALL(shutdown), "passes the guest's SHUTDOWN of its sending side on (SHUT_WR)")
      .allow(HUSK_SYSCALL(close), "connections end, refused clients; a reset closes them all and the timer")
      .allow(HUSK_SYSCALL(timerfd_settime), "arms and disarms the handshake timer");
  return b.take();
}

AllowList net_list() {
  Builder b(ThreadClass::kNet,
            "the virtio-net device's event loop: its queues, the egress filter and the backend's socket or tap, "
            "opened by husk before the VM (runtime/devices/virtio/net, runtime/net)");
  add_every_thread(b);
  refuse_opens(b);
  add_device_loop(b);
  b.allow(HUSK_SYSCALL(read), "frames from a tap; the passt stream; the rate limit's timer")
      .allow(HUSK_SYSCALL(write), "frames to a tap or the passt stream")
      .allow(HUSK_SYSCALL(recvfrom), "the passt stream (recv(2))")
      .allow(HUSK_SYSCALL(sendto), "the rest of a frame the passt stream took in part (send(2) is sendto on x86_64)")
      .allow(HUSK_SYSCALL(sendmsg), "a frame to the passt stream: its length and the frame in one call")
      .allow(HUSK_SYSCALL(timerfd_settime), "arms the rate limit's timer (a guest over its rate waits)");
  return b.take();
}

AllowList console_list() {
  Builder b(ThreadClass::kConsole,
            "the serial console's input: an event loop reading the host's stdin into the 8250 (Machine::run)");
  add_every_thread(b);
  refuse_opens(b);
  add_device_loop(b);
  b.allow(HUSK_SYSCALL(read), "the host's stdin (a terminal or a pipe)");
  return b.take();
}

AllowList watchdog_list() {
  Builder b(ThreadClass::kWatchdog,
            "a job's host-side deadline (runtime/job/watchdog.h): a condition-variable wait, then a stop request");
  add_every_thread(b);
  refuse_opens(b);
  b.allow(HUSK_SYSCALL(write), "the expiry's stop request (StopState's eventfd)")
      .allow(HUSK_SYSCALL(sendto), "the expiry's stop request to a VMM process over its channel (send(2))");
  return b.take();
}

AllowList loader_list() {
  Builder b(ThreadClass::kLoader,
            "the guest image copy (runtime/vmm/boot_images.cpp): reads the kernel and the initrd, files husk "
            "opened, into the new VM's memory, then gives KVM the initrd's memory slot; it reads nothing of the "
            "guest's and goes on beside the guest only until the initrd is in");
  add_every_thread(b);
  refuse_opens(b);
  b.allow(HUSK_SYSCALL(pread64),
          "the kernel's and the initrd's data, at offsets found before the thread started (x86_64::read_pieces)")
      .allow(HUSK_SYSCALL(ioctl), "the initrd's memory slot, once the initrd is in it (BootImages, held-back RAM)",
             {arg_in(1, {HUSK_VALUE(KVM_SET_USER_MEMORY_REGION)})});
  return b.take();
}

std::array<AllowList, kAllThreadClasses.size()> build_all() {
  std::array<AllowList, kAllThreadClasses.size()> all;
  for (ThreadClass c : kAllThreadClasses) {
    AllowList list;
    switch (c) {
      case ThreadClass::kMain: list = main_list(); break;
      case ThreadClass::kVmm: list = vmm_list(); break;
      case ThreadClass::kVcpu: list = vcpu_list(); break;
      case ThreadClass::kBlock: list = block_list(); break;
      case ThreadClass::kRng: list = rng_list(); break;
      case ThreadClass::kVsock: list = vsock_list(); break;
      case ThreadClass::kNet: list = net_list(); break;
      case ThreadClass::kConsole: list = console_list(); break;
      case ThreadClass::kWatchdog: list = watchdog_list(); break;
      case ThreadClass::kLoader: list = loader_list(); break;
    }
    all[static_cast<size_t>(c)] = std::move(list);
  }
  return all;
}

#undef HUSK_SYSCALL
#undef HUSK_VALUE

}  // namespace

const AllowList& allow_list(ThreadClass c) {
  static const std::array<AllowList, kAllThreadClasses.size()> all = build_all();
  return all[static_cast<size_t>(c)];
}

}  // namespace husk::seccomp

#include "runtime/vmm/vcpu_loop.h"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <iterator>
#include <span>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/common/signals.h"

namespace husk::vmm {

namespace {

int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void request(const VcpuContext& ctx, ExitReason reason, std::string detail) {
  ctx.stop->request(VmExit{reason, std::move(detail), static_cast<int>(ctx.vcpu->id())});
}

// A stop whose cause is inside the guest or KVM: the report carries the
// vCPU's registers and last exits so the failure explains itself.
void request_with_state(const VcpuContext& ctx, const ExitHistory& history, ExitReason reason,
                        std::string detail) {
  VmExit exit{reason, std::move(detail), static_cast<int>(ctx.vcpu->id())};
  exit.diagnostics = vcpu_fault_report(*ctx.vcpu, history);
  spdlog::debug("{}: {}\n{}", exit_reason_name(reason), exit.detail, exit.diagnostics);
  ctx.stop->request(std::move(exit));
}

std::string internal_error_detail(const kvm_run* run) {
  std::string detail =
      fmt::format("KVM internal error, suberror {}{}", run->internal.suberror,
                  run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                      ? " (instruction emulation failed; see `husk doctor`)"
                      : "");
  // Safe: ndata is KVM's, and clamped to the array it describes.
  const uint32_t n = std::min<uint32_t>(run->internal.ndata, std::size(run->internal.data));
  for (uint32_t i = 0; i < n; ++i) detail += fmt::format("{}{:#x}", i == 0 ? "; data " : " ", run->internal.data[i]);
  return detail;
}

void handle_io(const VcpuContext& ctx, kvm_run* run) {
  // Safe: KVM, not the guest, sets data_offset, size and count; the data
  // lies inside the kvm_run mapping (api.rst, KVM_EXIT_IO).
  auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  const size_t size = run->io.size;
  for (uint32_t i = 0; i < run->io.count; ++i) {
    std::span<uint8_t> chunk(data + i * size, size);
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      ctx.pio_bus->write(run->io.port, chunk);
    } else {
      ctx.pio_bus->read(run->io.port, chunk);
    }
  }
}

void handle_mmio(const VcpuContext& ctx, kvm_run* run) {
  // mmio.len is at most 8, the size of mmio.data (api.rst, KVM_EXIT_MMIO);
  // clamp anyway so a surprise cannot index past the array.
  const size_t len = std::min<size_t>(run->mmio.len, sizeof(run->mmio.data));
  std::span<uint8_t> data(run->mmio.data, len);
  if (run->mmio.is_write) {
    ctx.mmio_bus->write(run->mmio.phys_addr, data);
  } else {
    ctx.mmio_bus->read(run->mmio.phys_addr, data);
  }
}

// Returns false when the loop must end.
bool handle_exit(const VcpuContext& ctx, const ExitHistory& history, kvm_run* run) {
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      handle_io(ctx, run);
      return true;
    case KVM_EXIT_MMIO:
      handle_mmio(ctx, run);
      return true;
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_HLT:
      request(ctx, ExitReason::kGuestShutdown, "the guest halted");
      return false;
    case KVM_EXIT_SHUTDOWN:
      request_with_state(ctx, history, ExitReason::kTripleFault, "triple fault (KVM_EXIT_SHUTDOWN)");
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_RESET:
          request(ctx, ExitReason::kGuestReset, "reset (KVM system event)");
          return false;
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          request(ctx, ExitReason::kGuestShutdown, "power off (KVM system event)");
          return false;
        default:
          request(ctx, ExitReason::kGuestPanic,
                  fmt::format("KVM system event {}", run->system_event.type));
          return false;
      }
    case KVM_EXIT_INTERNAL_ERROR:
      request_with_state(ctx, history, ExitReason::kInternalError, internal_error_detail(run));
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      request_with_state(ctx, history, ExitReason::kEntryFailure,
              fmt::format("VM entry failed, hardware reason {:#x}",
                          run->fail_entry.hardware_entry_failure_reason));
      return false;
    default:
      request_with_state(ctx, history, ExitReason::kVcpuError,
                         fmt::format("unhandled KVM exit reason {}", run->exit_reason));
      return false;
  }
}

}  // namespace

void kick_vcpu(kvm::Vcpu& vcpu, pthread_t thread) {
  // immediate_exit closes the window between the loop's stop check and its
  // KVM_RUN: a KVM_RUN entered after this returns EINTR at once.
  __atomic_store_n(&vcpu.run_state()->immediate_exit, 1, __ATOMIC_SEQ_CST);
  ::pthread_kill(thread, kick_signal());
}

void run_vcpu_loop(VcpuContext ctx) {
  kvm_run* run = ctx.vcpu->run_state();
  ExitHistory history;
  bool first = true;
  while (!ctx.stop->stopped()) {
    if (first && ctx.first_run_ns != nullptr) {
      ctx.first_run_cpu_ns->store(clock_ns(CLOCK_PROCESS_CPUTIME_ID));
      ctx.first_run_ns->store(clock_ns(CLOCK_MONOTONIC));
    }
    first = false;
    auto result = ctx.vcpu->run();
    if (!result) {
      if (ctx.dump_requested != nullptr && ctx.dump_requested->exchange(false)) {
        // A state dump, not a stop: clear the kick's immediate_exit and go
        // on (a stop kick racing with this one repeats until it is seen).
        if (!ctx.stop->stopped()) __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        spdlog::warn("state dump requested (SIGQUIT); the VM keeps running\n{}",
                     vcpu_fault_report(*ctx.vcpu, history));
      }
      if (ctx.pause != nullptr && ctx.pause->closed() && !ctx.stop->stopped()) {
        if (ctx.on_pause) ctx.on_pause();
        ctx.pause->park(*ctx.stop);
        // The kick's immediate_exit, unless a stop came meanwhile.
        if (!ctx.stop->stopped()) __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        continue;
      }
      if (result.error().code == EINTR || result.error().code == EAGAIN) continue;
      request(ctx, ExitReason::kVcpuError, result.error().message);
      break;
    }
    history.record(*run);
    if (!handle_exit(ctx, history, run)) break;
  }
  ctx.exited->store(true);
}

}  // namespace husk::vmm

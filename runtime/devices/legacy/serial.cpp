#include "runtime/devices/legacy/serial.h"

#include <linux/serial_reg.h>

namespace husk::devices {

namespace {
constexpr uint8_t kIerMask = 0x0f;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kMsrDefault = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
}  // namespace

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
  // Wider accesses read the first register and zero-fill: Linux only uses
  // byte accesses on an 8250 (regshift 0).
  std::fill(data.begin(), data.end(), 0);
  if (data.empty()) return;
  std::lock_guard lock(mutex_);
  data[0] = read_register(offset);
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty()) return;
  std::lock_guard lock(mutex_);
  write_register(offset, data[0]);
}

bool Serial::loopback() const { return (mcr_ & UART_MCR_LOOP) != 0; }

uint8_t Serial::line_status() const {
  uint8_t lsr = UART_LSR_THRE | UART_LSR_TEMT;  // output is never backed up
  if (!input_.empty()) lsr |= UART_LSR_DR;
  return lsr;
}

uint8_t Serial::modem_status() const {
  if (!loopback()) return kMsrDefault;
  // In loopback the modem outputs feed the modem inputs (data sheet 8.6).
  uint8_t msr = 0;
  if (mcr_ & UART_MCR_DTR) msr |= UART_MSR_DSR;
  if (mcr_ & UART_MCR_RTS) msr |= UART_MSR_CTS;
  if (mcr_ & UART_MCR_OUT1) msr |= UART_MSR_RI;
  if (mcr_ & UART_MCR_OUT2) msr |= UART_MSR_DCD;
  return msr;
}

uint8_t Serial::interrupt_id() const {
  const uint8_t fifo = (fcr_ & UART_FCR_ENABLE_FIFO) ? kIirFifoEnabled : 0;
  if ((ier_ & UART_IER_RDI) && !input_.empty()) return fifo | UART_IIR_RDI;
  if ((ier_ & UART_IER_THRI) && thr_interrupt_pending_) return fifo | UART_IIR_THRI;
  return fifo | UART_IIR_NO_INT;
}

void Serial::update_interrupt(bool thr_became_empty) {
  if (thr_became_empty && (ier_ & UART_IER_THRI)) thr_interrupt_pending_ = true;
  if ((interrupt_id() & UART_IIR_NO_INT) == 0) irq_->trigger();
}

uint8_t Serial::read_register(uint64_t offset) {
  const bool dlab = (lcr_ & UART_LCR_DLAB) != 0;
  switch (offset) {
    case UART_RX:
      if (dlab) return divisor_low_;
      if (input_.empty()) return 0;
      {
        const uint8_t byte = input_.front();
        input_.pop_front();
        update_interrupt(false);
        return byte;
      }
    case UART_IER:
      return dlab ? divisor_high_ : ier_;
    case UART_IIR: {
      const uint8_t iir = interrupt_id();
      // Reading IIR while THRE is the reported source clears it (data sheet
      // table IV).
      if ((iir & UART_IIR_ID) == UART_IIR_THRI) thr_interrupt_pending_ = false;
      return iir;
    }
    case UART_LCR:
      return lcr_;
    case UART_MCR:
      return mcr_;
    case UART_LSR:
      return line_status();
    case UART_MSR:
      return modem_status();
    case UART_SCR:
      return scratch_;
    default:
      return 0;
  }
}

void Serial::write_register(uint64_t offset, uint8_t value) {
  const bool dlab = (lcr_ & UART_LCR_DLAB) != 0;
  switch (offset) {
    case UART_TX:
      if (dlab) {
        divisor_low_ = value;
        return;
      }
      if (loopback()) {
        if (input_.size() < kInputCapacity) input_.push_back(value);
      } else {
        out_->write(&value, 1);
      }
      update_interrupt(true);
      return;
    case UART_IER: {
      if (dlab) {
        divisor_high_ = value;
        return;
      }
      const bool thri_enabled_now = (value & UART_IER_THRI) && !(ier_ & UART_IER_THRI);
      ier_ = value & kIerMask;
      // Enabling THRI with an empty holding register raises it at once, as
      // real UARTs do; Linux's THRE test relies on that.
      update_interrupt(thri_enabled_now);
      return;
    }
    case UART_FCR:
      fcr_ = value;
      if (value & UART_FCR_CLEAR_RCVR) input_.clear();
      return;
    case UART_LCR:
      lcr_ = value;
      return;
    case UART_MCR:
      mcr_ = value;
      return;
    case UART_SCR:
      scratch_ = value;
      return;
    default:
      return;  // LSR and MSR are read-only
  }
}

size_t Serial::enqueue_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  size_t taken = 0;
  for (uint8_t b : bytes) {
    if (input_.size() >= kInputCapacity) break;
    input_.push_back(b);
    ++taken;
  }
  if (taken > 0) update_interrupt(false);
  return taken;
}

Serial::State Serial::state() {
  std::lock_guard lock(mutex_);
  return State{ier_, lcr_, mcr_, scratch_, fcr_, divisor_low_, divisor_high_, thr_interrupt_pending_};
}

void Serial::restore(const State& state) {
  std::lock_guard lock(mutex_);
  ier_ = state.ier;
  lcr_ = state.lcr;
  mcr_ = state.mcr;
  scratch_ = state.scratch;
  fcr_ = state.fcr;
  divisor_low_ = state.divisor_low;
  divisor_high_ = state.divisor_high;
  thr_interrupt_pending_ = state.thr_interrupt_pending;
  input_.clear();
}

}  // namespace husk::devices

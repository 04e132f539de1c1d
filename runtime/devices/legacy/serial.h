// Serial: a 16550A-compatible UART (the "8250" Linux drives), enough for the
// guest's console at 0x3f8 with IRQ 4.
//
// State: the divisor latch, IER, LCR, MCR, scratch, a bounded receive queue
// fed from the host, and the two interrupt sources the console needs
// (receive data available, transmitter holding register empty).
// Follows the PC16550D data sheet register map via <linux/serial_reg.h>.
// Missing on purpose: line-status and modem-status interrupts, baud timing
// (bytes go out as fast as the guest writes them), a real FIFO trigger level.
// Ignored bits: FCR except FIFO enable, LCR except DLAB.
// Loopback (MCR bit 4) is emulated because Linux probes the UART with it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>

#include "runtime/devices/bus.h"
#include "runtime/devices/interrupt.h"
#include "runtime/devices/legacy/console_sink.h"

namespace husk::devices {

class Serial final : public BusDevice {
 public:
  static constexpr uint64_t kCom1Base = 0x3f8;
  static constexpr uint64_t kPortCount = 8;
  static constexpr uint32_t kCom1Irq = 4;
  // Host input waiting for the guest. Bytes beyond this are dropped (typed
  // console input never gets near it; bulk data goes through the agent).
  static constexpr size_t kInputCapacity = 4096;

  Serial(std::shared_ptr<InterruptLine> irq, std::shared_ptr<ConsoleSink> out)
      : irq_(std::move(irq)), out_(std::move(out)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Host input for the guest; returns how many bytes were taken.
  size_t enqueue_input(std::span<const uint8_t> bytes);

  // The registers, as a snapshot saves them (pending host input is not
  // kept: a restored VM's console starts with none).
  struct State {
    uint8_t ier = 0;
    uint8_t lcr = 0;
    uint8_t mcr = 0;
    uint8_t scratch = 0;
    uint8_t fcr = 0;
    uint8_t divisor_low = 0x0c;
    uint8_t divisor_high = 0;
    bool thr_interrupt_pending = false;
    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state();
  void restore(const State& state);

 private:
  uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value);
  uint8_t interrupt_id() const;
  uint8_t line_status() const;
  uint8_t modem_status() const;
  bool loopback() const;
  void update_interrupt(bool thr_became_empty);

  std::shared_ptr<InterruptLine> irq_;
  std::shared_ptr<ConsoleSink> out_;

  std::mutex mutex_;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t scratch_ = 0;
  uint8_t fcr_ = 0;
  uint8_t divisor_low_ = 0x0c;  // 9600 baud, as a PC BIOS leaves it
  uint8_t divisor_high_ = 0;
  bool thr_interrupt_pending_ = false;
  std::deque<uint8_t> input_;
};

}  // namespace husk::devices

#include "runtime/devices/legacy/serial.h"

#include <linux/serial_reg.h>
#include <unistd.h>

#include <catch2/catch.hpp>

using namespace husk::devices;

namespace {
class CountingLine : public InterruptLine {
 public:
  void trigger() override { ++count; }
  int count = 0;
};

struct Fixture {
  Fixture() {
    REQUIRE(::pipe(fds) == 0);
    sink = std::make_shared<ConsoleSink>(fds[1]);
    irq = std::make_shared<CountingLine>();
    serial = std::make_shared<Serial>(irq, sink);
  }
  ~Fixture() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  uint8_t in(uint64_t reg) {
    uint8_t v = 0;
    serial->read(reg, std::span(&v, 1));
    return v;
  }
  void out(uint64_t reg, uint8_t v) { serial->write(reg, std::span<const uint8_t>(&v, 1)); }
  std::string output() {
    sink->flush();  // the sink buffers partial lines
    char buf[256];
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  int fds[2];
  std::shared_ptr<ConsoleSink> sink;
  std::shared_ptr<CountingLine> irq;
  std::shared_ptr<Serial> serial;
};
}  // namespace

TEST_CASE("serial: THR bytes go to the console", "[unit]") {
  Fixture f;
  f.out(UART_TX, 'h');
  f.out(UART_TX, 'i');
  CHECK(f.output() == "hi");
  CHECK((f.in(UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT)) == (UART_LSR_THRE | UART_LSR_TEMT));
  CHECK(f.irq->count == 0);  // THRI not enabled
}

TEST_CASE("serial: the divisor latch hides THR and IER", "[unit]") {
  Fixture f;
  f.out(UART_LCR, UART_LCR_DLAB);
  f.out(UART_DLL, 0x01);
  f.out(UART_DLM, 0x02);
  CHECK(f.in(UART_DLL) == 0x01);
  CHECK(f.in(UART_DLM) == 0x02);
  f.out(UART_LCR, 0x03);
  CHECK(f.in(UART_IER) == 0);
}

TEST_CASE("serial: THR-empty interrupt when enabled, cleared by reading IIR", "[unit]") {
  Fixture f;
  f.out(UART_IER, UART_IER_THRI);
  CHECK(f.irq->count == 1);  // enabling with an empty THR raises it
  CHECK((f.in(UART_IIR) & UART_IIR_ID) == UART_IIR_THRI);
  CHECK((f.in(UART_IIR) & UART_IIR_NO_INT) == UART_IIR_NO_INT);
  f.out(UART_TX, 'x');
  CHECK(f.irq->count == 2);
  CHECK((f.in(UART_IIR) & UART_IIR_ID) == UART_IIR_THRI);
}

TEST_CASE("serial: host input sets DR and raises RDI", "[unit]") {
  Fixture f;
  f.out(UART_IER, UART_IER_RDI);
  const uint8_t bytes[] = {'a', 'b'};
  CHECK(f.serial->enqueue_input(bytes) == 2);
  CHECK(f.irq->count == 1);
  CHECK((f.in(UART_LSR) & UART_LSR_DR) != 0);
  CHECK((f.in(UART_IIR) & UART_IIR_ID) == UART_IIR_RDI);
  CHECK(f.in(UART_RX) == 'a');
  CHECK(f.in(UART_RX) == 'b');
  CHECK((f.in(UART_LSR) & UART_LSR_DR) == 0);
  CHECK((f.in(UART_IIR) & UART_IIR_NO_INT) == UART_IIR_NO_INT);
}

TEST_CASE("serial: input beyond the capacity is refused, not buffered", "[unit]") {
  Fixture f;
  std::vector<uint8_t> lots(Serial::kInputCapacity + 10, 'z');
  CHECK(f.serial->enqueue_input(lots) == Serial::kInputCapacity);
}

TEST_CASE("serial: loopback feeds output back and mirrors the modem lines", "[unit]") {
  Fixture f;
  f.out(UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
  CHECK((f.in(UART_MSR) & 0xf0) == (UART_MSR_DCD | UART_MSR_CTS));
  f.out(UART_TX, 'q');
  CHECK(f.in(UART_RX) == 'q');
  f.out(UART_MCR, 0);
  CHECK((f.in(UART_MSR) & UART_MSR_DCD) != 0);
}

TEST_CASE("serial: scratch register and FIFO bits in IIR", "[unit]") {
  Fixture f;
  f.out(UART_SCR, 0x5a);
  CHECK(f.in(UART_SCR) == 0x5a);
  f.out(UART_FCR, UART_FCR_ENABLE_FIFO);
  CHECK((f.in(UART_IIR) & 0xc0) == 0xc0);
}

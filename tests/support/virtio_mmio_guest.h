// GuestProgram and MmioGuestDriver: tiny hand-assembled guests that program
// virtio-mmio devices themselves (virtio 1.2, 4.2 "Virtio Over MMIO", 2.7
// "Split Virtqueues"), so KVM tests go through real MMIO exits, the real
// bus, the real transport and the real devices.
//
// A GuestProgram is machine code (64-bit, CPL0, as the boot state leaves a
// vmlinux: identity-mapped 4 GiB, interrupts off) at kGuestCodeBase plus a
// data image from kGuestDataBase on; both become one PT_LOAD of a tiny
// vmlinux ELF. Rings and descriptors are usually placed in the data image
// (GuestQueue), and the code makes them visible at run time (avail index
// stores, QueueNotify writes), reads registers back and prints them on COM1
// as "label=hex" lines for the host to parse (parse_guest_report). Every
// loop the code runs is bounded, so a device that never answers makes the
// guest report what it saw instead of hanging.
//
// Costs on a CPL0-emulating /dev/kvm (docs/host-kvm.md): about 1 us per
// guest instruction and tens of us per MMIO exit; a poll iteration is 4-6
// instructions. Keep programs short.
#pragma once

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/tiny_elf.h"

namespace husk::test {

inline constexpr uint64_t kGuestCodeBase = 0x1000000;  // where the ELF's code runs
inline constexpr uint64_t kGuestDataBase = 0x1100000;  // 1 MiB of code room, then data
// The virtio-mmio windows as runtime/arch/x86_64/layout.h places them.
inline constexpr uint64_t kVirtioMmioBase = 0xd0000000;
inline constexpr uint64_t kVirtioMmioWindow = 0x1000;
// Serial port COM1.
inline constexpr uint16_t kCom1 = 0x3f8;

class GuestProgram {
 public:
  // ---- The data image -------------------------------------------------
  // Bytes the ELF loads at `gpa` (kGuestDataBase <= gpa); later writes to
  // the same bytes win.
  void place(uint64_t gpa, std::span<const uint8_t> bytes) {
    if (gpa < kGuestDataBase) throw std::logic_error("guest data below kGuestDataBase");
    const uint64_t off = gpa - kGuestDataBase;
    if (data_.size() < off + bytes.size()) data_.resize(off + bytes.size(), 0);
    std::memcpy(data_.data() + off, bytes.data(), bytes.size());
  }
  template <typename T>
  void place_obj(uint64_t gpa, const T& value) {
    place(gpa, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

  // The tiny vmlinux: code at kGuestCodeBase, the data image after it.
  [[nodiscard]] std::vector<uint8_t> elf() const {
    if (code_.bytes.size() > kGuestDataBase - kGuestCodeBase) throw std::logic_error("guest code too large");
    std::vector<uint8_t> image = code_.bytes;
    if (!data_.empty()) {
      image.resize(kGuestDataBase - kGuestCodeBase, 0x90);
      image.insert(image.end(), data_.begin(), data_.end());
    }
    return make_tiny_elf(image, kGuestCodeBase);
  }
  [[nodiscard]] size_t code_size() const { return code_.bytes.size(); }

  // ---- Stores and loads (addresses below 4 GiB: RAM or MMIO) ----------
  GuestProgram& store32(uint64_t gpa, uint32_t v) {
    return addr(gpa).raw({0xc7, 0x00}).imm32(v);  // mov dword [rax], v
  }
  GuestProgram& store16(uint64_t gpa, uint16_t v) {
    return addr(gpa).raw({0x66, 0xc7, 0x00}).imm16(v);  // mov word [rax], v
  }
  GuestProgram& store8(uint64_t gpa, uint8_t v) { return addr(gpa).raw({0xc6, 0x00, v}); }
  // One 8-byte store of `v` sign-extended to 64 bits.
  GuestProgram& store64(uint64_t gpa, int32_t v) {
    return addr(gpa).raw({0x48, 0xc7, 0x00}).imm32(static_cast<uint32_t>(v));  // mov qword [rax], v
  }
  GuestProgram& add16(uint64_t gpa, uint16_t v) {
    return addr(gpa).raw({0x66, 0x81, 0x00}).imm16(v);  // add word [rax], v
  }
  GuestProgram& add32(uint64_t gpa, uint32_t v) {
    return addr(gpa).raw({0x81, 0x00}).imm32(v);  // add dword [rax], v
  }

  // ---- COM1 output ----------------------------------------------------
  GuestProgram& print(const std::string& s) {
    raw({0x66, 0xba, uint8_t(kCom1), uint8_t(kCom1 >> 8)});  // mov dx, 0x3f8
    for (char c : s) raw({0xb0, static_cast<uint8_t>(c), 0xee});  // mov al, c; out dx, al
    return *this;
  }
  // Prints "label=XXXXXXXX\n" with the 32-bit value at `gpa` (one read).
  GuestProgram& report32(const std::string& label, uint64_t gpa) {
    addr(gpa).raw({0x8b, 0x18});  // mov ebx, [rax]
    return print(label + "=").hex_ebx(8).print("\n");
  }
  GuestProgram& report16(const std::string& label, uint64_t gpa) {
    addr(gpa).raw({0x0f, 0xb7, 0x18});  // movzx ebx, word [rax]
    raw({0xc1, 0xe3, 16});              // shl ebx, 16
    return print(label + "=").hex_ebx(4).print("\n");
  }
  // One 8-byte load, printed as 16 hex digits.
  GuestProgram& report64(const std::string& label, uint64_t gpa) {
    addr(gpa).raw({0x48, 0x8b, 0x18});  // mov rbx, [rax]
    print(label + "=");
    raw({0xb9, 16, 0, 0, 0});  // mov ecx, 16
    raw({0x66, 0xba, uint8_t(kCom1), uint8_t(kCom1 >> 8)});
    const size_t top = here();
    raw({0x48, 0xc1, 0xc3, 0x04});  // rol rbx, 4
    hex_digit_of_ebx();
    jcc_back(0x85, top);
    return print("\n");
  }
  GuestProgram& report8(const std::string& label, uint64_t gpa) {
    addr(gpa).raw({0x0f, 0xb6, 0x18});  // movzx ebx, byte [rax]
    raw({0xc1, 0xe3, 24});              // shl ebx, 24
    return print(label + "=").hex_ebx(2).print("\n");
  }

  // ---- Bounded waits (each iteration: one load, a test, a count) ------
  // Until (dword [gpa] & mask) != 0, at most `iterations` reads.
  GuestProgram& wait_any_bits32(uint64_t gpa, uint32_t mask, uint32_t iterations) {
    raw({0xb9}).imm32(iterations);  // mov ecx, n
    addr(gpa);
    const size_t top = here();
    raw({0x8b, 0x18});               // mov ebx, [rax]
    raw({0xf7, 0xc3}).imm32(mask);   // test ebx, mask
    const size_t done = jcc_forward(0x85);  // jnz done
    raw({0xff, 0xc9});               // dec ecx
    jcc_back(0x85, top);             // jnz top
    bind(done);
    return *this;
  }
  // Until word [gpa] == value, at most `iterations` reads.
  GuestProgram& wait_eq16(uint64_t gpa, uint16_t value, uint32_t iterations) {
    raw({0xb9}).imm32(iterations);
    addr(gpa);
    const size_t top = here();
    raw({0x0f, 0xb7, 0x18});             // movzx ebx, word [rax]
    raw({0x81, 0xfb}).imm32(value);      // cmp ebx, value
    const size_t done = jcc_forward(0x84);  // je done
    raw({0xff, 0xc9});
    jcc_back(0x85, top);
    bind(done);
    return *this;
  }
  // Until word [a] == word [b], at most `iterations` rounds.
  GuestProgram& wait_eq16_mem(uint64_t a, uint64_t b, uint32_t iterations) {
    raw({0xb9}).imm32(iterations);
    const size_t top = here();
    addr(a).raw({0x0f, 0xb7, 0x18});  // movzx ebx, word [a]
    addr(b).raw({0x0f, 0xb7, 0x10});  // movzx edx, word [b]
    raw({0x39, 0xd3});                // cmp ebx, edx
    const size_t done = jcc_forward(0x84);
    raw({0xff, 0xc9});
    jcc_back(0x85, top);
    bind(done);
    return *this;
  }
  // Spins `iterations` times (about 2 instructions each).
  GuestProgram& delay(uint32_t iterations) {
    raw({0xb9}).imm32(iterations);
    const size_t top = here();
    raw({0xff, 0xc9});
    jcc_back(0x85, top);
    return *this;
  }

  // ---- A counted loop (esi; not nestable) -----------------------------
  GuestProgram& repeat(uint32_t count) {
    if (loop_top_ != kNone) throw std::logic_error("repeat() does not nest");
    raw({0xbe}).imm32(count);  // mov esi, count
    loop_top_ = here();
    return *this;
  }
  // Leaves the loop when (dword [gpa] & mask) != 0.
  GuestProgram& break_if_bits32(uint64_t gpa, uint32_t mask) {
    addr(gpa).raw({0x8b, 0x18}).raw({0xf7, 0xc3}).imm32(mask);
    loop_breaks_.push_back(jcc_forward(0x85));
    return *this;
  }
  // Inside repeat(): spins (counter << shift) times, the counter being the
  // rounds left, so each round waits a different while.
  GuestProgram& delay_by_round(uint8_t shift) {
    if (loop_top_ == kNone) throw std::logic_error("delay_by_round() outside repeat()");
    raw({0x89, 0xf1});         // mov ecx, esi
    raw({0xc1, 0xe1, shift});  // shl ecx, shift
    const size_t top = here();
    raw({0xff, 0xc9});
    jcc_back(0x85, top);
    return *this;
  }
  GuestProgram& end_repeat() {
    raw({0xff, 0xce});  // dec esi
    jcc_back(0x85, loop_top_);
    for (size_t b : loop_breaks_) bind(b);
    loop_breaks_.clear();
    loop_top_ = kNone;
    return *this;
  }

  // ---- Endings --------------------------------------------------------
  // Prints "DONE\n" and halts with interrupts off: the vCPU sleeps in KVM
  // and the host measures an idle VM until it stops it.
  GuestProgram& finish() { return print("DONE\n").raw({0xfa, 0xf4, 0xeb, 0xfd}); }

  GuestProgram& raw(std::initializer_list<uint8_t> b) {
    code_.raw(b);
    return *this;
  }

 private:
  static constexpr size_t kNone = ~size_t{0};

  GuestProgram& imm32(uint32_t v) {
    return raw({uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)});
  }
  GuestProgram& imm16(uint16_t v) { return raw({uint8_t(v), uint8_t(v >> 8)}); }
  GuestProgram& addr(uint64_t gpa) {
    if (gpa > 0xffffffffull) throw std::logic_error("guest address above 4 GiB");
    return raw({0xb8}).imm32(static_cast<uint32_t>(gpa));  // mov eax, gpa (zero-extends)
  }
  [[nodiscard]] size_t here() const { return code_.bytes.size(); }
  // jcc rel32 (0f 8x) back to `target`.
  void jcc_back(uint8_t cc, size_t target) {
    raw({0x0f, cc});
    const int32_t rel = static_cast<int32_t>(static_cast<int64_t>(target) - static_cast<int64_t>(here() + 4));
    imm32(static_cast<uint32_t>(rel));
  }
  // jcc rel32 to a later bind(); returns the place to patch.
  size_t jcc_forward(uint8_t cc) {
    raw({0x0f, cc}).imm32(0);
    return here() - 4;
  }
  void bind(size_t patch) {
    const int32_t rel = static_cast<int32_t>(here() - (patch + 4));
    std::memcpy(code_.bytes.data() + patch, &rel, 4);
  }
  // Prints the top `digits` nibbles of ebx in hex (clobbers eax, ecx, edx).
  GuestProgram& hex_ebx(uint8_t digits) {
    raw({0xb9, digits, 0, 0, 0});  // mov ecx, digits
    raw({0x66, 0xba, uint8_t(kCom1), uint8_t(kCom1 >> 8)});
    const size_t top = here();
    raw({0xc1, 0xc3, 0x04});  // rol ebx, 4
    hex_digit_of_ebx();
    jcc_back(0x85, top);
    return *this;
  }
  // Prints the low nibble of ebx as a hex digit on port dx; then dec ecx.
  void hex_digit_of_ebx() {
    raw({0x89, 0xd8});           // mov eax, ebx
    raw({0x24, 0x0f});           // and al, 0xf
    raw({0x04, '0'});            // add al, '0'
    raw({0x3c, '9'});            // cmp al, '9'
    raw({0x76, 0x02});           // jbe +2
    raw({0x04, 'a' - '9' - 1});  // add al, 'a' - ('9' + 1)
    raw({0xee});                 // out dx, al
    raw({0xff, 0xc9});           // dec ecx
  }

  Asm code_;
  std::vector<uint8_t> data_;
  size_t loop_top_ = kNone;
  std::vector<size_t> loop_breaks_;
};

// One split virtqueue laid out in the guest's data image, as Linux lays it
// out: descriptor table, available ring (used_event at its end), then the
// used ring (avail_event at its end) at 4-byte alignment.
class GuestQueue {
 public:
  GuestQueue(GuestProgram& program, uint64_t base, uint16_t size)
      : p_(&program), size_(size), desc_(base), avail_(base + 16ull * size),
        used_((avail_ + 6 + 2ull * size + 3) & ~uint64_t{3}) {
    // Zeroed in the image, so the rings start empty whatever was there.
    std::vector<uint8_t> zero(used_ + 6 + 8ull * size - base, 0);
    p_->place(base, zero);
  }

  [[nodiscard]] uint16_t size() const { return size_; }
  [[nodiscard]] uint64_t desc_table() const { return desc_; }
  [[nodiscard]] uint64_t avail_ring() const { return avail_; }
  [[nodiscard]] uint64_t used_ring() const { return used_; }
  [[nodiscard]] uint64_t desc_addr(uint16_t i) const { return desc_ + 16ull * i; }
  [[nodiscard]] uint64_t avail_idx_addr() const { return avail_ + 2; }
  [[nodiscard]] uint64_t used_idx_addr() const { return used_ + 2; }
  [[nodiscard]] uint64_t used_id_addr(uint16_t slot) const { return used_ + 4 + 8ull * (slot % size_); }
  [[nodiscard]] uint64_t used_len_addr(uint16_t slot) const { return used_id_addr(slot) + 4; }
  // A footprint that leaves room for any queue of up to `size` entries.
  static constexpr uint64_t footprint(uint16_t size) { return 16ull * size + 6 + 2ull * size + 3 + 6 + 8ull * size; }

  // Descriptor `i` in the image (any index: hostile tests write past the
  // table on purpose).
  void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags = 0, uint16_t next = 0) const {
    struct {
      uint64_t addr;
      uint32_t len;
      uint16_t flags;
      uint16_t next;
    } d{addr, len, flags, next};
    p_->place_obj(desc_addr(i), d);
  }
  // Avail ring entry `slot` (mod size) names chain `head`, in the image.
  void avail_entry(uint16_t slot, uint16_t head) const { p_->place_obj(avail_ + 4 + 2ull * (slot % size_), head); }
  // Code: publish avail->idx = idx (the entries must be in place).
  void publish(uint16_t idx) const { p_->store16(avail_idx_addr(), idx); }

 private:
  GuestProgram* p_;
  uint16_t size_;
  uint64_t desc_;
  uint64_t avail_;
  uint64_t used_;
};

// The driver side of one virtio-mmio slot, as code: register writes and
// read-backs through the slot's 4 KiB window (register names from
// <linux/virtio_mmio.h>).
class MmioGuestDriver {
 public:
  MmioGuestDriver(GuestProgram& program, uint32_t slot, std::string name)
      : p_(&program), base_(kVirtioMmioBase + uint64_t{slot} * kVirtioMmioWindow), name_(std::move(name)) {}

  [[nodiscard]] uint64_t reg(uint32_t offset) const { return base_ + offset; }
  [[nodiscard]] const std::string& name() const { return name_; }

  void write(uint32_t offset, uint32_t value) const { p_->store32(reg(offset), value); }
  void status(uint32_t value) const { write(VIRTIO_MMIO_STATUS, value); }
  // Prints "<name>.<label>=XXXXXXXX" with the register's value.
  void report(const std::string& label, uint32_t offset) const { p_->report32(name_ + "." + label, reg(offset)); }

  // Reset, ACKNOWLEDGE, DRIVER, the features, FEATURES_OK (3.1.1, 1-6).
  void negotiate(uint64_t features) const {
    status(0);
    status(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    write(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features));
    write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    write(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features >> 32));
    status(kFeaturesOk);
  }
  // QueueSel, QueueNum (`num`, the ring's size unless overridden), the
  // ring addresses and QueueReady (4.2.3.2).
  void setup_queue(uint32_t index, const GuestQueue& q, int64_t num = -1) const {
    write(VIRTIO_MMIO_QUEUE_SEL, index);
    write(VIRTIO_MMIO_QUEUE_NUM, num >= 0 ? static_cast<uint32_t>(num) : q.size());
    write(VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(q.desc_table()));
    write(VIRTIO_MMIO_QUEUE_DESC_HIGH, static_cast<uint32_t>(q.desc_table() >> 32));
    write(VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<uint32_t>(q.avail_ring()));
    write(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, static_cast<uint32_t>(q.avail_ring() >> 32));
    write(VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<uint32_t>(q.used_ring()));
    write(VIRTIO_MMIO_QUEUE_USED_HIGH, static_cast<uint32_t>(q.used_ring() >> 32));
    write(VIRTIO_MMIO_QUEUE_READY, 1);
  }
  void driver_ok() const { status(kFeaturesOk | VIRTIO_CONFIG_S_DRIVER_OK); }
  // The QueueNotify write: KVM hands it to the queue's ioeventfd.
  void notify(uint32_t queue) const { write(VIRTIO_MMIO_QUEUE_NOTIFY, queue); }
  // Polls Status until DEVICE_NEEDS_RESET shows (bounded).
  void wait_needs_reset(uint32_t iterations = 20000) const {
    p_->wait_any_bits32(reg(VIRTIO_MMIO_STATUS), VIRTIO_CONFIG_S_NEEDS_RESET, iterations);
  }

  static constexpr uint32_t kFeaturesOk =
      VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;

 private:
  GuestProgram* p_;
  uint64_t base_;
  std::string name_;
};

// The "label=hex" lines of a guest's console.
inline std::map<std::string, uint64_t> parse_guest_report(const std::string& console) {
  std::map<std::string, uint64_t> values;
  size_t pos = 0;
  while (pos < console.size()) {
    size_t end = console.find('\n', pos);
    if (end == std::string::npos) end = console.size();
    const std::string line = console.substr(pos, end - pos);
    pos = end + 1;
    const size_t eq = line.find('=');
    if (eq == std::string::npos || eq + 1 >= line.size()) continue;
    try {
      values[line.substr(0, eq)] = std::stoull(line.substr(eq + 1), nullptr, 16);
    } catch (const std::exception&) {
      // not a report line
    }
  }
  return values;
}

}  // namespace husk::test

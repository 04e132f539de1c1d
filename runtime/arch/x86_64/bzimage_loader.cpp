#include "runtime/arch/x86_64/bzimage_loader.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "runtime/arch/x86_64/kernel_writer.h"
#include "runtime/arch/x86_64/layout.h"
#include "runtime/arch/x86_64/units.h"

namespace husk::x86_64 {

namespace {

constexpr uint64_t kSectorSize = 512;
// boot.rst, setup_sects: "if the setup_sects field contains 0, the real
// value is 4".
constexpr uint8_t kLegacySetupSects = 4;
// The setup header's end is given by the jump at 0x200: 0x202 plus its
// 8-bit displacement (boot.rst, "64-bit Boot Protocol").
constexpr uint64_t kJumpEnd = 0x202;

Result<setup_header> read_setup_header(std::span<const uint8_t> file) {
  if (file.size() < kSetupHeaderOffset + sizeof(setup_header)) {
    return fail(fmt::format("bzImage is truncated: {} bytes, too short for a setup header",
                            file.size()));
  }
  setup_header hdr;
  // Safe: the size was checked above; setup_header is packed plain integers,
  // so any bytes are a valid value, and each field used is validated below.
  std::memcpy(&hdr, file.data() + kSetupHeaderOffset, sizeof(hdr));

  // Bytes past the header's declared end are setup code, not fields: zero
  // them so boot_params never hands the kernel code bytes as field values.
  const uint64_t header_end = kJumpEnd + (hdr.jump >> 8);
  const uint64_t kept = header_end - kSetupHeaderOffset;
  if (kept < sizeof(hdr)) {
    std::memset(reinterpret_cast<uint8_t*>(&hdr) + kept, 0, sizeof(hdr) - kept);
  }
  return hdr;
}

Result<void> check_setup_header(const setup_header& hdr) {
  // Copies: fmt binds references, which packed fields cannot give.
  const uint16_t boot_flag = hdr.boot_flag;
  const uint32_t magic = hdr.header;
  const uint16_t version = hdr.version;
  const uint32_t alignment = hdr.kernel_alignment;
  if (boot_flag != kBootFlagMagic) {
    return fail(fmt::format("bzImage boot_flag is {:#x}, not {:#x}", boot_flag, kBootFlagMagic));
  }
  if (magic != kHdrsMagic) return fail("bzImage has no \"HdrS\" setup header");
  if (version < kMinBootProtocol) {
    return fail(fmt::format("bzImage speaks boot protocol {}.{:02}; 2.12 or newer is needed for "
                            "the 64-bit entry point",
                            version >> 8, version & 0xff));
  }
  // The end of the header must cover init_size, the last field we rely on.
  const uint64_t header_end = kJumpEnd + (hdr.jump >> 8);
  if (header_end < kSetupHeaderOffset + offsetof(setup_header, init_size) + sizeof(uint32_t)) {
    return fail(fmt::format("bzImage setup header ends at {:#x}, before its init_size field",
                            header_end));
  }
  if ((hdr.xloadflags & XLF_KERNEL_64) == 0) {
    return fail("bzImage has no 64-bit entry point (XLF_KERNEL_64 is clear)");
  }
  // boot.rst, init_size: a kernel that is not relocatable runs at
  // pref_address whatever the load address, so it must name a usable one.
  const uint64_t pref = hdr.pref_address;
  if (hdr.relocatable_kernel == 0 && (pref < kHighMemStart || pref >= kMmioGapStart)) {
    return fail(fmt::format("bzImage is not relocatable and its pref_address {:#x} is not in low "
                            "RAM above 1 MiB",
                            pref));
  }
  if (hdr.relocatable_kernel != 0 && !is_power_of_two(alignment)) {
    return fail(fmt::format("bzImage kernel_alignment {:#x} is not a power of two", alignment));
  }
  return {};
}

struct Placement {
  uint64_t addr;
  uint64_t alignment;
};

// boot.rst, min_alignment: the loader may go down to 1 << min_alignment.
uint64_t smallest_alignment(const setup_header& hdr) {
  const uint64_t alignment = hdr.kernel_alignment;
  if (hdr.min_alignment == 0 || hdr.min_alignment >= 64) return alignment;
  return std::min(uint64_t{1} << hdr.min_alignment, alignment);
}

// The lowest address place_kernel could pick, for the "needs N MiB" error.
uint64_t lowest_start(const setup_header& hdr) {
  if (hdr.relocatable_kernel == 0) return hdr.pref_address;
  return align_up(kHighMemStart, smallest_alignment(hdr));
}

// Where the kernel goes. boot.rst, init_size: the kernel runs at
// align_up(load address, kernel_alignment) when relocatable, else at
// pref_address, and needs init_size bytes from there. Loading it at that
// runtime start makes [start, start + init_size) the whole footprint (the
// decompressor works in place within it). A relocatable kernel gets
// pref_address when it fits, then each power-of-two alignment from
// kernel_alignment down to the smallest, lowest address first so the rest
// of RAM stays free for the initrd.
std::optional<Placement> place_kernel(const GuestMemory& memory, const setup_header& hdr,
                                      uint64_t footprint) {
  const uint64_t pref = hdr.pref_address;
  const uint64_t alignment = hdr.kernel_alignment;
  if (hdr.relocatable_kernel == 0) {
    if (memory.valid_range(pref, footprint)) return Placement{pref, alignment};
    return std::nullopt;
  }
  // Above the gap a bzImage would need XLF_CAN_BE_LOADED_ABOVE_4G and a
  // 64-bit code32_start; husk keeps the kernel in low RAM.
  if (pref >= kHighMemStart && pref < kMmioGapStart && memory.valid_range(pref, footprint)) {
    return Placement{pref, alignment};
  }
  for (uint64_t align = alignment; align >= smallest_alignment(hdr); align >>= 1) {
    const uint64_t addr = align_up(kHighMemStart, align);
    if (memory.valid_range(addr, footprint)) return Placement{addr, align};
    if (align == 1) break;
  }
  return std::nullopt;
}

}  // namespace

Result<KernelPlan> plan_bzimage(const GuestMemory& memory, std::span<const uint8_t> file) {
  HUSK_TRY_ASSIGN(setup_header hdr, read_setup_header(file));
  HUSK_TRY(check_setup_header(hdr));

  const uint64_t setup_sects = hdr.setup_sects == 0 ? kLegacySetupSects : hdr.setup_sects;
  const uint64_t kernel_offset = (setup_sects + 1) * kSectorSize;
  if (file.size() <= kernel_offset) {
    return fail(fmt::format("bzImage is truncated: {} bytes, but its setup code alone takes {}",
                            file.size(), kernel_offset));
  }
  const uint64_t payload = file.size() - kernel_offset;
  // syssize is the protected-mode kernel's length in 16-byte paragraphs; the
  // kernel's build pads the file to exactly that, so less means truncation.
  const uint64_t declared = uint64_t{hdr.syssize} * 16;
  if (payload < declared) {
    return fail(fmt::format("bzImage is truncated: its header declares {} kernel bytes, the file "
                            "holds {}",
                            declared, payload));
  }

  // init_size covers decompression in place; a kernel file bigger than it
  // would be malformed, but its bytes still have to fit.
  const uint64_t footprint = std::max<uint64_t>(hdr.init_size, payload);
  const std::optional<Placement> placement = place_kernel(memory, hdr, footprint);
  if (!placement) {
    return fail(fmt::format("kernel needs {} MiB of guest memory, the VM has {} MiB",
                            mib_rounded_up(lowest_start(hdr) + footprint),
                            memory.total_size() / kMiB));
  }

  // boot.rst: the loader sets code32_start to the loaded code and may lower
  // kernel_alignment to the alignment it actually used.
  hdr.code32_start = static_cast<uint32_t>(placement->addr);
  hdr.kernel_alignment = static_cast<uint32_t>(placement->alignment);

  KernelPlan plan;
  // Safe: kernel_offset < file.size() was checked, and place_kernel proved
  // [addr, addr + footprint) lies in guest memory with payload <= footprint.
  plan.segments.push_back({placement->addr, kernel_offset, payload, payload});
  KernelImage& image = plan.image;
  image.entry = placement->addr + kStartup64Offset;
  image.load_start = placement->addr;
  image.load_end = placement->addr + footprint;
  image.bzimage = true;
  image.setup = hdr;
  image.initrd_addr_max = hdr.initrd_addr_max;
  return plan;
}

Result<KernelImage> load_bzimage(const GuestMemory& memory, std::span<const uint8_t> file, int fd,
                                 Destination dest) {
  HUSK_TRY_ASSIGN(const KernelPlan plan, plan_bzimage(memory, file));
  return write_kernel(memory, plan, file, fd, dest);
}

}  // namespace husk::x86_64

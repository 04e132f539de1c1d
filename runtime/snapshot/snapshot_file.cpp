#include "runtime/snapshot/snapshot_file.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "runtime/common/sha256.h"
#include "runtime/common/unique_fd.h"
#include "runtime/snapshot/byte_codec.h"
#include "runtime/snapshot/snapshot_codec.h"

namespace husk::snapshot {

namespace {

constexpr std::string_view kHexDigits = "0123456789abcdef";

std::string to_hex(std::span<const uint8_t> bytes) {
  std::string out;
  for (uint8_t b : bytes) {
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 15];
  }
  return out;
}

std::string_view as_chars(std::span<const uint8_t> bytes) {
  // Safe: char and uint8_t have the same size and any bytes are both.
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// A value from a file, fit for one line of an error message: anything but
// printable ASCII as \xNN, so a file cannot forge lines.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

// --- build id ---

// The GNU build-id note of the first object dl_iterate_phdr reports, which
// is the main program (glibc reports it first).
int find_build_id(dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::optional<std::string>*>(data);
  for (ElfW(Half) i = 0; i < info->dlpi_phnum && !*out; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    // Safe: the loader mapped this segment (notes lie in the first PT_LOAD)
    // and the walk below stays inside its p_memsz bytes.
    const auto* p = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
    size_t left = ph.p_memsz;
    const size_t align = ph.p_align == 8 ? 8 : 4;
    const auto up = [align](size_t n) { return (n + align - 1) & ~(align - 1); };
    while (left >= sizeof(ElfW(Nhdr))) {
      ElfW(Nhdr) nh;
      std::memcpy(&nh, p, sizeof nh);
      const size_t desc_at = up(sizeof nh + nh.n_namesz);
      const size_t next = up(desc_at + nh.n_descsz);
      if (desc_at + nh.n_descsz > left) break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(p + sizeof nh, "GNU", 4) == 0 &&
          nh.n_descsz > 0) {
        *out = to_hex({p + desc_at, nh.n_descsz});
        break;
      }
      if (next >= left) break;
      p += next;
      left -= next;
    }
  }
  return 1;  // only the main program
}

std::optional<std::string> exe_sha256() {
  UniqueFd fd(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  Sha256 h;
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) return h.hex();
    h.update({buf.data(), static_cast<size_t>(n)});
  }
}

// --- writing ---

// A little-endian writer into a fixed buffer: write_state_file may not
// allocate (its thread's filter allows no mmap or brk).
class FixedWriter {
 public:
  explicit FixedWriter(std::span<uint8_t> out) : out_(out) {}
  void le(uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out_[pos_++] = static_cast<uint8_t>(v >> (8 * i));
  }
  void bytes(std::span<const uint8_t> b) {
    std::copy(b.begin(), b.end(), out_.begin() + static_cast<ptrdiff_t>(pos_));
    pos_ += b.size();
  }
  void string(std::string_view s) {
    le(s.size(), 4);
    // Safe: as as_chars, the other way.
    bytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  [[nodiscard]] size_t size() const { return pos_; }

 private:
  std::span<uint8_t> out_;
  size_t pos_ = 0;
};

Result<void> pwrite_all(int fd, std::span<const uint8_t> data, uint64_t offset) {
  while (!data.empty()) {
    const size_t chunk = std::min<size_t>(data.size(), size_t{1} << 30);
    const ssize_t n = ::pwrite(fd, data.data(), chunk, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("write the snapshot state file");
    if (n == 0) return fail("write the snapshot state file: the write made no progress");
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

// --- reading ---

std::array<uint8_t, kStateChecksumBytes> checksum(std::span<const uint8_t> header_fields,
                                                  std::span<const uint8_t> state) {
  Sha256 h;
  h.update(as_chars(header_fields));
  h.update(as_chars(state));
  return h.digest();
}

// "key=value" lines in order; a line without '=' is a key with no value.
std::vector<std::pair<std::string_view, std::string_view>> config_lines(std::string_view config) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  while (!config.empty()) {
    const size_t end = std::min(config.find('\n'), config.size());
    const std::string_view line = config.substr(0, end);
    config.remove_prefix(std::min(end + 1, config.size()));
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(line, std::string_view{});
    } else {
      out.emplace_back(line.substr(0, eq), line.substr(eq + 1));
    }
  }
  return out;
}

const std::string_view* find_key(const std::vector<std::pair<std::string_view, std::string_view>>& lines,
                                 std::string_view key) {
  for (const auto& [k, v] : lines) {
    if (k == key) return &v;
  }
  return nullptr;
}

}  // namespace

std::string build_id() {
  static const std::string id = [] {
    std::optional<std::string> note;
    dl_iterate_phdr(find_build_id, &note);
    if (note && note->size() <= kMaxBuildIdBytes) return *note;
    if (note) return sha256_hex(*note);
    return exe_sha256().value_or("unknown");
  }();
  return id;
}

Result<void> write_state_file(int fd, const StateHeaderInfo& info, std::span<const uint8_t> state) {
  if (info.build_id.size() > kMaxBuildIdBytes) {
    return fail(fmt::format("a build id of {} bytes, at most {}", info.build_id.size(), kMaxBuildIdBytes));
  }
  if (info.config.size() > kMaxConfigBytes) {
    return fail(fmt::format("a configuration of {} bytes, at most {}", info.config.size(), kMaxConfigBytes));
  }
  const size_t header_size = kMinHeaderBytes + info.build_id.size() + info.config.size();
  if (state.size() > kMaxStateFileBytes - header_size) {
    return fail(fmt::format("a state of {} bytes, at most {}", state.size(), kMaxStateFileBytes - header_size));
  }
  std::array<uint8_t, kMaxHeaderBytes> header;
  FixedWriter w(header);
  w.bytes({reinterpret_cast<const uint8_t*>(kStateMagic), sizeof kStateMagic});
  w.le(kStateFormatVersion, 4);
  w.le(header_size, 4);
  w.le(info.memory_bytes, 8);
  w.le(state.size(), 8);
  w.string(info.build_id);
  w.string(info.config);
  w.bytes(checksum(std::span<const uint8_t>(header).first(w.size()), state));
  if (w.size() != header_size) std::abort();  // kMinHeaderBytes disagrees with the fields above
  HUSK_TRY(pwrite_all(fd, std::span<const uint8_t>(header).first(header_size), 0));
  HUSK_TRY(pwrite_all(fd, state, header_size));
  if (::ftruncate(fd, static_cast<off_t>(header_size + state.size())) != 0) {
    return fail_errno("truncate the snapshot state file");
  }
  return {};
}

Result<StateHeader> parse_state_header(std::span<const uint8_t> bytes) {
  if (bytes.size() < sizeof kStateMagic || std::memcmp(bytes.data(), kStateMagic, sizeof kStateMagic) != 0) {
    return fail("not a husk snapshot");
  }
  if (bytes.size() < 16) return fail(fmt::format("the snapshot is truncated: {} bytes", bytes.size()));
  ByteReader r(bytes.subspan(sizeof kStateMagic));
  StateHeader h;
  HUSK_TRY_ASSIGN(h.version, r.u32());
  if (h.version != kStateFormatVersion) {
    return fail(fmt::format("snapshot format version {}, this husk reads {}", h.version, kStateFormatVersion));
  }
  HUSK_TRY_ASSIGN(h.header_size, r.u32());
  if (h.header_size < kMinHeaderBytes || h.header_size > kMaxHeaderBytes) {
    return fail(fmt::format("the snapshot's header is malformed: it says it is {} bytes (from {} to {})",
                            h.header_size, kMinHeaderBytes, kMaxHeaderBytes));
  }
  if (h.header_size > bytes.size()) {
    return fail(fmt::format("the snapshot is truncated: {} bytes, its header alone is {}", bytes.size(),
                            h.header_size));
  }
  // The fields past the sizes, read up to the header's end and no further.
  ByteReader f(bytes.subspan(16, h.header_size - 16));
  auto fields = [&]() -> Result<std::span<const uint8_t>> {
    HUSK_TRY_ASSIGN(h.memory_bytes, f.u64());
    HUSK_TRY_ASSIGN(h.state_size, f.u64());
    HUSK_TRY_ASSIGN(h.build_id, f.string(kMaxBuildIdBytes));
    HUSK_TRY_ASSIGN(h.config, f.string(kMaxConfigBytes));
    HUSK_TRY_ASSIGN(std::span<const uint8_t> sum, f.fixed(kStateChecksumBytes));
    HUSK_TRY(f.expect_end());
    return sum;
  }();
  if (!fields) return wrap("the snapshot's header is malformed", std::move(fields.error()));
  h.checksum = to_hex(*fields);
  return h;
}

Result<StateFile> parse_state_file(std::span<const uint8_t> bytes) {
  HUSK_TRY_ASSIGN(StateHeader h, parse_state_header(bytes));
  const uint64_t rest = bytes.size() - h.header_size;
  if (h.state_size > rest) {
    return fail(fmt::format("the snapshot is truncated: {} bytes, its header says {}", bytes.size(),
                            uint64_t{h.header_size} + h.state_size));
  }
  if (h.state_size < rest) {
    return fail(fmt::format("the snapshot has {} bytes past its end", rest - h.state_size));
  }
  const auto state = bytes.subspan(h.header_size);
  const auto sum = checksum(bytes.first(h.header_size - kStateChecksumBytes), state);
  if (to_hex(sum) != h.checksum) return fail("the snapshot's state is corrupt (checksum mismatch)");
  auto decoded = decode_state(state);
  if (!decoded) return wrap("the snapshot's state cannot be read", std::move(decoded.error()));
  if (decoded->memory_bytes != h.memory_bytes) {
    return fail(fmt::format("the snapshot's state is for {} bytes of memory, its header says {}",
                            decoded->memory_bytes, h.memory_bytes));
  }
  return StateFile{std::move(h), std::move(*decoded)};
}

Result<StateFile> read_state_file(int fd) {
  std::vector<uint8_t> data;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (static_cast<uint64_t>(st.st_size) > kMaxStateFileBytes) {
      return fail(fmt::format("the snapshot state file is {} bytes, more than the limit of {}", st.st_size,
                              kMaxStateFileBytes));
    }
    data.reserve(static_cast<size_t>(st.st_size));
  }
  std::vector<uint8_t> chunk(size_t{1} << 16);
  bool seekable = true;
  for (;;) {
    const ssize_t n = seekable ? ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(data.size()))
                               : ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == ESPIPE && seekable && data.empty()) {
      seekable = false;  // a pipe: read it from where it is
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read the snapshot state file");
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > kMaxStateFileBytes) {
      return fail(fmt::format("the snapshot state file is more than the limit of {} bytes", kMaxStateFileBytes));
    }
    data.insert(data.end(), chunk.begin(), chunk.begin() + n);
  }
  return parse_state_file(data);
}

Result<StateHeader> read_state_header(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("stat " + path);
  std::array<uint8_t, kMaxHeaderBytes> buf;
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::pread(fd.get(), buf.data() + got, buf.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  auto h = parse_state_header(std::span<const uint8_t>(buf).first(got));
  if (!h) return wrap(path, std::move(h.error()));
  const uint64_t expected = uint64_t{h->header_size} + h->state_size;
  if (static_cast<uint64_t>(st.st_size) != expected) {
    return fail(fmt::format("{}: the snapshot is {} bytes, its header says {}", path, st.st_size, expected));
  }
  return h;
}

Result<void> check_compatible(const StateHeader& h, const std::string& build_id, const std::string& config) {
  if (h.build_id != build_id) {
    return fail(fmt::format("the snapshot was made by another husk build (build id {}, this is {}): make it again",
                            printable(h.build_id), printable(build_id)));
  }
  if (h.config == config) return {};
  const std::string kPrefix = "the snapshot was made for another VM configuration: ";
  const auto there = config_lines(h.config);
  const auto here = config_lines(config);
  for (const auto& [key, value] : there) {
    const std::string_view* mine = find_key(here, key);
    if (mine == nullptr) {
      return fail(kPrefix + fmt::format("{}={} there, no {} here", printable(key), printable(value), printable(key)));
    }
    if (*mine != value) {
      return fail(kPrefix + fmt::format("{}={} there, {} here", printable(key), printable(value), printable(*mine)));
    }
  }
  for (const auto& [key, value] : here) {
    if (find_key(there, key) == nullptr) {
      return fail(kPrefix + fmt::format("no {} there, {}={} here", printable(key), printable(key), printable(value)));
    }
  }
  return fail(kPrefix + "the same settings, in another order or repeated");
}

}  // namespace husk::snapshot

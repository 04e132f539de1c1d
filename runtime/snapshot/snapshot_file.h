// The snapshot state file: a fixed header, then the state part
// (snapshot_codec.h). The guest's memory is a separate raw file.
//
// Header, format version 1, little-endian (byte_codec.h's encoding):
//   offset  0  "HUSKSNAP" (8 bytes)
//           8  u32 format version
//          12  u32 header size: where the state part starts
//          16  u64 guest memory size in bytes (the memory file's)
//          24  u64 state size in bytes: the rest of the file, exactly
//          32  string build id (u32 length, <= kMaxBuildIdBytes)
//              string configuration (u32 length, <= kMaxConfigBytes): the
//                canonical "key=value\n" lines of the VM's configuration
//              SHA-256 (32 bytes) of every header byte before it, then of
//                the state part
// The checksum covers the header's fields as well as the state, so a
// flipped bit anywhere is refused as corruption (not, say, as a snapshot
// of another build).
//
// parse_state_file checks magic, version, sizes and checksum before it
// decodes anything: a bad file is refused whole, never half-loaded.
// Compatibility with the running husk and VM (build id, configuration) is
// check_compatible's, so a caller can say which one differs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/snapshot/machine_state.h"

namespace husk::snapshot {

inline constexpr char kStateMagic[8] = {'H', 'U', 'S', 'K', 'S', 'N', 'A', 'P'};
inline constexpr uint32_t kStateFormatVersion = 1;
inline constexpr size_t kMaxBuildIdBytes = 64;
inline constexpr size_t kMaxConfigBytes = 4096;
inline constexpr size_t kStateChecksumBytes = 32;
inline constexpr size_t kMinHeaderBytes = 32 + 4 + 4 + kStateChecksumBytes;
inline constexpr size_t kMaxHeaderBytes = kMinHeaderBytes + kMaxBuildIdBytes + kMaxConfigBytes;
// The most read_state_file reads (a state is tens of KiB per vCPU).
inline constexpr uint64_t kMaxStateFileBytes = uint64_t{64} << 20;

// What the writer puts in the header besides sizes and checksum.
struct StateHeaderInfo {
  std::string build_id;  // build_id()
  std::string config;    // canonical "key=value\n" lines
  uint64_t memory_bytes = 0;
};

struct StateHeader {
  uint32_t version = 0;
  uint32_t header_size = 0;
  uint64_t memory_bytes = 0;
  uint64_t state_size = 0;
  std::string build_id;
  std::string config;
  std::string checksum;  // lowercase hex
};

struct StateFile {
  StateHeader header;
  MachineState state;
};

// This executable's GNU build-id note as lowercase hex (a SHA-256 of it
// when longer than kMaxBuildIdBytes), else a SHA-256 of /proc/self/exe;
// computed once. Never empty ("unknown" if even /proc/self/exe is
// unreadable).
[[nodiscard]] std::string build_id();

// Writes the header and `state` (encode_state's bytes) to `fd` from offset
// 0 with pwrite, and truncates the file to their end. It runs in a
// seccomp-filtered thread that may call only write, pwrite64, lseek,
// ftruncate and fsync: it uses no stdio and allocates nothing unless it
// fails. It does not fsync; the caller decides.
[[nodiscard]] Result<void> write_state_file(int fd, const StateHeaderInfo& info, std::span<const uint8_t> state);

// The header at the start of `bytes` (which may hold the header alone):
// magic, version and the header's own fields; the state is not looked at.
[[nodiscard]] Result<StateHeader> parse_state_header(std::span<const uint8_t> bytes);
// A whole state file: the header, the state's size and checksum, then the
// decoded state, whose memory size must be the header's.
[[nodiscard]] Result<StateFile> parse_state_file(std::span<const uint8_t> bytes);
// The whole of `fd` from offset 0 (at most kMaxStateFileBytes), parsed.
[[nodiscard]] Result<StateFile> read_state_file(int fd);
// The header of the file at `path`, and its size checked against it; the
// checksum is not (a cache check; restoring reads the whole file).
[[nodiscard]] Result<StateHeader> read_state_header(const std::string& path);

// Whether a snapshot with header `h` can be restored by a husk with
// `build_id` for a VM whose configuration lines are `config`. The error
// names what differs: "the snapshot was made by another husk build (build
// id X, this is Y): make it again", or "the snapshot was made for another
// VM configuration: memory_mib=128 there, memory_mib=256 here" (the first
// key that differs or is on one side only).
[[nodiscard]] Result<void> check_compatible(const StateHeader& h, const std::string& build_id,
                                            const std::string& config);

}  // namespace husk::snapshot

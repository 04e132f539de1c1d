// Exec requests larger than one frame (protocol.h, "ExecArgs"): the host
// moves argv and env into ExecArgs parts sent before the Exec, and the agent
// collects the parts per request id and puts their items, in order, in front
// of the Exec's own. Both halves are here, beside each other, so the unit
// tests can check that what one splits the other puts back together.
//
// One bound for both sides: kMaxExecArgBytes, with each string counted as
// Linux counts it for E2BIG (its bytes, the NUL and the argv/envp pointer).
// The host refuses a larger request before sending anything; the agent,
// which must not trust a host's arithmetic with its memory, enforces it again
// over all requests it is collecting and answers a larger one with an Error.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "guest-agent/protocol/protocol.h"

namespace husk::agent::proto {

// argv and env of one Exec together, as counted by exec_arg_bytes. Linux
// itself allows a quarter of the stack limit (2 MiB with the default 8 MiB
// stack), so this bound is never the tighter one for a default job.
inline constexpr uint64_t kMaxExecArgBytes = 8u << 20;
// A part's argv and env payload; a quarter of a frame leaves room for the
// list headers and keeps the agent's receive buffer small.
inline constexpr size_t kExecArgsPartBytes = kMaxChunk;
// One string must fit a part. (Linux refuses strings over 128 KiB anyway.)
inline constexpr size_t kMaxExecArgString = kExecArgsPartBytes - 64;
// Requests being collected at once in the agent.
inline constexpr size_t kMaxPendingExecs = 8;

inline uint64_t exec_arg_bytes(const std::string& s) { return s.size() + 1 + sizeof(char*); }
inline uint64_t exec_arg_bytes(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  uint64_t total = 0;
  for (const std::string& s : argv) total += exec_arg_bytes(s);
  for (const std::string& s : env) total += exec_arg_bytes(s);
  return total;
}

// Host side. Moves all of exec's argv and env into parts of at most
// kExecArgsPartBytes payload and kMaxListItems items per list, in order
// (argv first, then env); exec keeps empty lists. The caller has checked
// kMaxExecArgBytes and kMaxExecArgString.
inline std::vector<ExecArgs> split_exec_args(Exec& exec) {
  std::vector<ExecArgs> parts;
  size_t part_bytes = 0;
  auto place = [&](std::string& item, bool is_argv) {
    const size_t wire = 4 + item.size();
    if (parts.empty() || part_bytes + wire > kExecArgsPartBytes ||
        (is_argv ? parts.back().argv : parts.back().env).size() == kMaxListItems) {
      parts.emplace_back();
      part_bytes = 0;
    }
    part_bytes += wire;
    (is_argv ? parts.back().argv : parts.back().env).push_back(std::move(item));
  };
  for (std::string& a : exec.argv) place(a, true);
  for (std::string& e : exec.env) place(e, false);
  exec.argv.clear();
  exec.env.clear();
  return parts;
}

// Agent side: the parts received so far, per request id.
class ExecArgsCollector {
 public:
  enum class Outcome {
    kOk,        // collected (add) or complete (finish)
    kTooLarge,  // past kMaxExecArgBytes: answer E2BIG, the request is refused
    kTooMany,   // past kMaxPendingExecs (a host sends one request's parts
                // at a time): answer EBUSY and hang up, since nothing
                // remembers that this request was refused
    kRefused,   // finish() of a request refused earlier: drop the Exec silently
  };

  // Adds one part of request `id`. A refused request keeps only its id, so
  // its later parts and its Exec are dropped without a second answer.
  // `others`: bytes other collectors hold (the agent has one per host
  // connection), which count against the same bound.
  Outcome add(uint32_t id, ExecArgs&& part, uint64_t others = 0) {
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      if (pending_.size() == kMaxPendingExecs) return Outcome::kTooMany;
      it = pending_.emplace(id, Pending{}).first;
    }
    Pending& p = it->second;
    if (p.refused) return Outcome::kRefused;
    const uint64_t bytes = exec_arg_bytes(part.argv, part.env);
    // Over all requests being collected: a host cannot hold more than the
    // bound by spreading it over several ids.
    if (others + total_ + bytes > kMaxExecArgBytes) return refuse(p, Outcome::kTooLarge);
    total_ += bytes;
    p.bytes += bytes;
    append(p.argv, part.argv);
    append(p.env, part.env);
    return Outcome::kOk;
  }

  // The Exec of request `id` arrived: its argv and env get the collected
  // items in front. kTooLarge when the whole request is past the bound.
  Outcome finish(uint32_t id, Exec& exec) {
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      return exec_arg_bytes(exec.argv, exec.env) > kMaxExecArgBytes ? Outcome::kTooLarge : Outcome::kOk;
    }
    Pending p = std::move(it->second);
    pending_.erase(it);
    total_ -= p.bytes;
    if (p.refused) return Outcome::kRefused;
    if (p.bytes + exec_arg_bytes(exec.argv, exec.env) > kMaxExecArgBytes) return Outcome::kTooLarge;
    append(p.argv, exec.argv);
    append(p.env, exec.env);
    exec.argv = std::move(p.argv);
    exec.env = std::move(p.env);
    return Outcome::kOk;
  }

  // The connection is gone: its requests with it.
  void clear() {
    pending_.clear();
    total_ = 0;
  }
  [[nodiscard]] size_t pending() const { return pending_.size(); }
  [[nodiscard]] uint64_t bytes() const { return total_; }

 private:
  struct Pending {
    std::vector<std::string> argv;
    std::vector<std::string> env;
    uint64_t bytes = 0;
    bool refused = false;
  };
  static void append(std::vector<std::string>& to, std::vector<std::string>& from) {
    for (std::string& s : from) to.push_back(std::move(s));
  }
  Outcome refuse(Pending& p, Outcome why) {
    total_ -= p.bytes;
    p = Pending{};
    p.refused = true;
    return why;
  }

  std::map<uint32_t, Pending> pending_;
  uint64_t total_ = 0;
};

}  // namespace husk::agent::proto

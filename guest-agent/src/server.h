// The agent's server: one epoll loop, no threads. It listens (vsock or a
// Unix socket), serves one host connection at a time (a new connection
// from the host replaces the old one, whose jobs are killed; a vsock peer
// that is not the host is refused, peer.h), runs any number of jobs
// concurrently, streams their output under the host's credit, enforces
// their limits, reaps every child (as PID 1 it inherits all orphans), and
// moves files in and out.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "guest-agent/protocol/exec_args.h"
#include "guest-agent/protocol/protocol.h"
#include "guest-agent/src/job.h"
#include "guest-agent/src/log.h"
#include "runtime/common/unique_fd.h"

namespace husk::guest {

struct ServerOptions {
  bool vsock = true;
  uint32_t port = agent::proto::kDefaultVsockPort;
  std::string unix_path;
  bool cgroups = true;
  std::string cgroup_root = "/sys/fs/cgroup";
  bool pid1 = false;
  bool protected_self = false;  // oom_score_adj lowered: jobs must reset it
};

class Server {
 public:
  explicit Server(ServerOptions opts) : opts_(std::move(opts)) {}
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until a Shutdown request (true) or SIGTERM/SIGINT when not PID 1
  // (true), or a set-up failure (false, logged).
  bool run();

 private:
  enum Kind : uint64_t { kListen, kSignal, kConn, kJobOut, kJobErr, kJobIn };
  static uint64_t key(uint64_t serial, Kind kind) { return serial << 3 | kind; }

  struct Upload {
    UniqueFd fd;
    std::string tmp_path;
    std::string path;
    uint64_t written = 0;
  };
  struct Download {
    uint32_t id = 0;
    UniqueFd fd;
    uint64_t offset = 0;
    uint64_t max_bytes = 0;
  };

  bool setup();
  int timeout_ms() const;
  void dispatch(const epoll_event& ev);

  // Connection (server.cpp).
  void accept_conn();
  void drop_conn(const char* why);
  void on_conn_event(uint32_t events);
  void handle_frame(const agent::proto::FrameView& frame);
  void flush_out();
  void update_conn_interest();
  template <typename M>
  void send(uint32_t id, const M& msg) {
    if (!conn_ || close_after_flush_) return;
    // Every message we build is cut below kMaxFrameBody; a failure here is a bug.
    if (agent::proto::append_frame(out_, id, msg) != agent::proto::Status::kOk) {
      HUSK_LOG("message type %u too large to send", unsigned(M::kType));
    }
  }
  void send_error(uint32_t id, int err, const std::string& message);
  // The send queue: an Output frame built in place (output_buf_ from
  // output_off_ to output_end_) first, then out_ from out_off_. An Output
  // frame is built only when the queue is empty, so this is sending order,
  // and job output waits in its pipe rather than in a copy.
  [[nodiscard]] size_t queued() const { return (output_end_ - output_off_) + (out_.size() - out_off_); }
  // File chunks are read only below this (server_files.cpp).
  [[nodiscard]] bool out_backlogged() const { return queued() >= kOutHighWater; }
  // Sends output_buf_[0, size), an Output frame, into the empty queue:
  // what the socket does not take at once stays in output_buf_.
  void send_output_frame(size_t size);
  void on_signalfd();

  // Jobs (server_jobs.cpp).
  void on_exec_args(uint32_t id, agent::proto::ExecArgs part);
  void on_exec(uint32_t id, agent::proto::Exec req);
  void on_credit(uint32_t id, const agent::proto::Credit& c);
  void on_stdin(uint32_t id, std::string data, bool close);
  void on_signal(uint32_t id, int signo);
  void on_job_event(uint64_t serial, Kind kind, uint32_t events);
  void read_output(Job& job, agent::proto::Stream stream, bool coalesce);
  void write_stdin(Job& job);
  void reap_children();
  void check_timers();
  void kill_tree(Job& job);
  void close_stdin(Job& job, bool send_eof);
  void close_output(Job& job, agent::proto::Stream stream);
  void set_registered(Job& job, Kind kind, bool want);
  void update_interest(Job& job);
  void maybe_finish(Job& job);
  void orphan_jobs();
  Job* find_job(uint32_t id);

  // Files (server_files.cpp).
  void on_write_file(uint32_t id, agent::proto::WriteFile req);
  void on_read_file(uint32_t id, const agent::proto::ReadFile& req);
  void on_stat(uint32_t id, const agent::proto::Stat& req);
  void pump_downloads();
  void abort_transfers();

  static constexpr size_t kMaxFrame = agent::proto::kLengthSize + agent::proto::kMaxFrameBody;
  static constexpr uint64_t kVsockBuffer = 2u << 20;
  static constexpr size_t kOutHighWater = 512 * 1024;

  ServerOptions opts_;
  UniqueFd epoll_;
  UniqueFd listen_;
  UniqueFd signal_fd_;
  UniqueFd conn_;
  uint64_t refused_peers_ = 0;  // connections from inside the guest, closed at once
  bool hello_done_ = false;
  bool close_after_flush_ = false;
  bool stop_ = false;
  std::vector<uint8_t> in_;  // empty until the first read, then 2 * kMaxFrame
  size_t in_len_ = 0;        // bytes received and not yet handled
  std::vector<uint8_t> out_;
  size_t out_off_ = 0;
  bool conn_wants_out_ = false;

  uint64_t next_serial_ = 1;
  std::map<uint64_t, std::unique_ptr<Job>> jobs_;  // by serial
  agent::proto::ExecArgsCollector exec_args_;      // Execs arriving in parts
  std::vector<Cgroup> dead_cgroups_;               // rmdir retried until empty
  std::map<uint32_t, Upload> uploads_;             // by request id
  std::vector<Download> downloads_;
  std::string read_buf_;  // scratch for file reads, kept at kMaxChunk
  // One Output frame built in place: header, then the data read after it.
  std::vector<uint8_t> output_buf_;
  size_t output_off_ = 0;  // sent so far
  size_t output_end_ = 0;  // the frame's size; == output_off_: none pending
};

}  // namespace husk::guest

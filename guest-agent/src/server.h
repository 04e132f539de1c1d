// The agent's server: one epoll loop, no threads. It listens (vsock or a
// Unix socket) and serves up to kMaxConnections host connections at once
// (connection.h; one more is closed at once, and so is a vsock peer that is
// not the host, peer.h). Each connection has its own handshake, request
// ids, transfers and jobs: a job's frames are taken only from the
// connection that started it and its output goes only there, and a
// connection that closes takes its own jobs (killed) and transfers with
// it, no one else's. It runs any number of jobs concurrently, streams their
// output under the host's credit, enforces their limits, reaps every child
// (as PID 1 it inherits all orphans), and moves files in and out.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "guest-agent/protocol/protocol.h"
#include "guest-agent/src/connection.h"
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
  // PID 1's set-up steps before the server (main.cpp), as boot marks.
  std::vector<agent::proto::BootMark> start_marks;
};

class Server {
 public:
  explicit Server(ServerOptions opts) : opts_(std::move(opts)) {}
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until a Shutdown request from any connection (true) or
  // SIGTERM/SIGINT when not PID 1 (true), or a set-up failure (false, logged).
  bool run();

 private:
  // An epoll key: a connection's or a job's serial, and what the fd is.
  enum Kind : uint64_t { kListen, kSignal, kConn, kJobOut, kJobErr, kJobIn };
  static uint64_t key(uint64_t serial, Kind kind) { return serial << 3 | kind; }

  bool setup();
  int timeout_ms() const;
  void dispatch(const epoll_event& ev);
  void on_signalfd();

  // Connections (server_conn.cpp). A dropped connection keeps its entry
  // (closed, !open()) until the end of the loop's round, so a caller's
  // reference stays valid: check open() after anything that may drop it.
  void accept_conn();
  void drop_conn(Connection& c, const char* why);
  void erase_dropped();
  void on_conn_event(uint64_t serial, uint32_t events);
  void flush_out(Connection& c);
  void update_conn_interest(Connection& c);
  // The job's connection if it is still open, else nullptr.
  Connection* conn_of(const Job& job);
  template <typename M>
  void send(Connection& c, uint32_t id, const M& msg) {
    if (!c.open() || c.close_after_flush) return;
    // Every message we build is cut below kMaxFrameBody; a failure here is a bug.
    if (agent::proto::append_frame(c.out, id, msg) != agent::proto::Status::kOk) {
      HUSK_LOG("message type %u too large to send", unsigned(M::kType));
    }
  }
  void send_error(Connection& c, uint32_t id, int err, const std::string& message);
  // Sends c.output_buf[0, size), an Output frame, into the empty queue:
  // what the socket does not take at once stays in output_buf.
  void send_output_frame(Connection& c, size_t size);

  // Requests (server.cpp).
  void handle_frame(Connection& c, const agent::proto::FrameView& frame);
  void on_shutdown(Connection& c, uint32_t id);
  void on_boot_info(Connection& c, uint32_t id);
  [[nodiscard]] const std::vector<agent::proto::BootMark>& kernel_boot_marks();
  void log_boot_marks();

  // Jobs (server_jobs.cpp); the job-scoped requests act only on jobs of c.
  void on_exec_args(Connection& c, uint32_t id, agent::proto::ExecArgs part);
  void on_exec(Connection& c, uint32_t id, agent::proto::Exec req);
  void on_credit(Connection& c, uint32_t id, const agent::proto::Credit& m);
  void on_stdin(Connection& c, uint32_t id, std::string data, bool close);
  void on_signal(Connection& c, uint32_t id, int signo);
  void on_resize(Connection& c, uint32_t id, const agent::proto::Resize& m);
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
  void orphan_jobs(const Connection& c);
  Job* find_job(const Connection& c, uint32_t id);

  // Files (server_files.cpp).
  void on_write_file(Connection& c, uint32_t id, agent::proto::WriteFile req);
  void on_read_file(Connection& c, uint32_t id, const agent::proto::ReadFile& req);
  void on_stat(Connection& c, uint32_t id, const agent::proto::Stat& req);
  void pump_downloads(Connection& c);
  void abort_transfers(Connection& c);

  static constexpr uint64_t kVsockBuffer = 2u << 20;

  ServerOptions opts_;
  UniqueFd epoll_;
  UniqueFd listen_;
  UniqueFd signal_fd_;
  uint64_t refused_peers_ = 0;  // connections from inside the guest, closed at once
  uint64_t refused_full_ = 0;   // connections past kMaxConnections, closed at once
  bool stop_ = false;

  uint64_t next_serial_ = 1;  // for connections and jobs alike
  std::map<uint64_t, Connection> conns_;           // by serial
  std::map<uint64_t, std::unique_ptr<Job>> jobs_;  // by serial
  std::vector<Cgroup> dead_cgroups_;               // rmdir retried until empty
  // The agent's own boot marks (listening, the first Hello answered) and
  // the kernel's, read from its log at the first BootInfo (PID 1 only).
  std::vector<agent::proto::BootMark> own_boot_marks_;
  bool ready_marked_ = false;
  std::optional<std::vector<agent::proto::BootMark>> kernel_boot_marks_;
  std::string read_buf_;  // scratch for file reads and discarded output, kept at kMaxChunk
};

}  // namespace husk::guest

// File requests in the agent's loop: WriteFile (chunks into a temporary file
// renamed over the target after the last one), ReadFile (FileData chunks
// paced by the host socket: the next chunk is read only while less than
// kOutHighWater bytes wait in the connection's queue, connection.h) and
// Stat. Transfers belong to the connection that asked, by its request id.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "guest-agent/src/server.h"
#include "guest-agent/src/sys.h"

namespace husk::guest {

namespace proto = agent::proto;

namespace {
std::string errno_text(const std::string& what, const std::string& path, int err) {
  return what + " " + path + ": " + std::strerror(err);
}
}  // namespace

// Paths, modes and owners come from the host, which the guest trusts (the
// agent guards the guest against its jobs, not against the host); they are
// still C strings without NULs (the decoder refuses those).
void Server::on_write_file(Connection& c, uint32_t id, proto::WriteFile req) {
  auto it = c.uploads.find(id);
  auto fail = [&](int err, const std::string& what) {
    if (it != c.uploads.end()) {
      ::unlink(it->second.tmp_path.c_str());
      c.uploads.erase(it);
    }
    send_error(c, id, err, errno_text(what, req.path, err));
  };
  if (it == c.uploads.end()) {
    if (req.offset != 0) return fail(EINVAL, "write_file (first chunk not at offset 0)");
    if (req.path.empty() || req.path[0] != '/' || req.path.back() == '/') {
      return fail(EINVAL, "write_file (path must be absolute and name a file)");
    }
    const size_t slash = req.path.rfind('/');
    const std::string dir = slash == 0 ? "/" : req.path.substr(0, slash);
    if (req.mkdirs) {
      if (const int err = make_dirs(dir, 0755); err != 0) return fail(err, "write_file mkdir");
    }
    Upload up;
    up.path = req.path;
    // Beside the target so that rename() stays within one file system;
    // named by connection and request, as two connections may upload to
    // one path with one request id at once.
    up.tmp_path = dir + "/." + req.path.substr(slash + 1) + ".husk-upload-" + std::to_string(c.serial) + "-" +
                  std::to_string(id);
    ::unlink(up.tmp_path.c_str());
    up.fd.reset(::open(up.tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0600));
    if (!up.fd) return fail(errno, "write_file create");
    it = c.uploads.emplace(id, std::move(up)).first;
  } else if (req.offset != it->second.written) {
    return fail(EINVAL, "write_file (chunk out of order)");
  }
  Upload& up = it->second;
  size_t done = 0;
  while (done < req.data.size()) {
    const ssize_t n = ::write(up.fd.get(), req.data.data() + done, req.data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(errno, "write_file write");
    done += static_cast<size_t>(n);
  }
  up.written += done;
  if (!req.last) return;
  if (::fchmod(up.fd.get(), req.mode & 07777) != 0) return fail(errno, "write_file chmod");
  if ((req.uid != proto::kKeepId || req.gid != proto::kKeepId) &&
      ::fchown(up.fd.get(), req.uid, req.gid) != 0) {  // kKeepId is fchown's "unchanged" (-1)
    return fail(errno, "write_file chown");
  }
  if (::close(up.fd.release()) != 0) return fail(errno, "write_file close");
  if (::rename(up.tmp_path.c_str(), up.path.c_str()) != 0) return fail(errno, "write_file rename");
  c.uploads.erase(it);
  send(c, id, proto::Ack{});
}

void Server::on_read_file(Connection& c, uint32_t id, const proto::ReadFile& req) {
  UniqueFd fd(::open(req.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return send_error(c, id, errno, errno_text("read_file", req.path, errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return send_error(c, id, errno, errno_text("read_file", req.path, errno));
  if (S_ISDIR(st.st_mode)) return send_error(c, id, EISDIR, errno_text("read_file", req.path, EISDIR));
  c.downloads.push_back(Download{id, std::move(fd), 0, req.max_bytes});
}

void Server::pump_downloads(Connection& c) {
  while (c.open() && !c.close_after_flush && !c.downloads.empty() && !c.backlogged()) {
    Download& d = c.downloads.front();
    if (read_buf_.size() < proto::kMaxChunk) read_buf_.resize(proto::kMaxChunk);
    const ssize_t n = ::read(d.fd.get(), read_buf_.data(), proto::kMaxChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      send_error(c, d.id, errno, std::string("read_file: ") + std::strerror(errno));
    } else if (n == 0) {
      send(c, d.id, proto::FileData{d.offset, true, {}});
    } else if (d.max_bytes != 0 && d.offset + static_cast<uint64_t>(n) > d.max_bytes) {
      send_error(c, d.id, EFBIG, "read_file: file larger than " + std::to_string(d.max_bytes) + " bytes");
    } else {
      send(c, d.id, proto::FileData{d.offset, false, read_buf_.substr(0, static_cast<size_t>(n))});
      d.offset += static_cast<uint64_t>(n);
      continue;
    }
    c.downloads.erase(c.downloads.begin());
  }
}

void Server::on_stat(Connection& c, uint32_t id, const proto::Stat& req) {
  struct stat st {};
  const int rc = req.follow_symlinks ? ::stat(req.path.c_str(), &st) : ::lstat(req.path.c_str(), &st);
  if (rc != 0) return send_error(c, id, errno, errno_text("stat", req.path, errno));
  proto::StatResult r;
  r.mode = st.st_mode;
  r.size = static_cast<uint64_t>(st.st_size);
  r.uid = st.st_uid;
  r.gid = st.st_gid;
  r.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  send(c, id, r);
}

void Server::abort_transfers(Connection& c) {
  for (auto& [id, up] : c.uploads) ::unlink(up.tmp_path.c_str());
  c.uploads.clear();
  c.downloads.clear();
}

}  // namespace husk::guest

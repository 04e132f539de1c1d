#include "runtime/job/file_transfer.h"

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "runtime/common/file.h"
#include "runtime/common/sha256.h"

namespace husk::job {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// The wall limit of husk's own helper commands in the guest (mkdir for
// [[files]] folders, find and head for [[outputs]]): they take milliseconds
// unless the job left something pathological behind, and the agent client
// then gives up kExitGrace after it, agent or not.
constexpr std::chrono::milliseconds kHelperWall{60'000};

// Runs a helper command in the guest and returns its stdout.
Result<std::string> guest_command(agent::AgentClient& agent, std::vector<std::string> argv) {
  agent::ExecRequest req;
  req.argv = std::move(argv);
  req.env = {kPath};
  req.limits.wall_ms = static_cast<uint64_t>(kHelperWall.count());
  std::string out, err;
  agent::ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view d) { out.append(d); };
  cb.on_stderr = [&](std::string_view d) { err.append(d.substr(0, 4096)); };
  HUSK_TRY_ASSIGN(agent::ExecResult r, agent.exec(req, cb));
  if (!r.started || r.exit.exit_code != 0) {
    return fail(fmt::format("{} failed in the guest: {}", req.argv.front(), err.empty() ? "no message" : err));
  }
  return out;
}

uint32_t mode_of(const fs::path& p, const std::optional<uint32_t>& forced) {
  if (forced) return *forced;
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0) return 0644;
  return st.st_mode & 07777;
}

}  // namespace

Result<void> upload_files(agent::AgentClient& agent, const std::vector<FileUpload>& files) {
  for (const FileUpload& f : files) {
    const fs::path source(f.source);
    std::error_code ec;
    if (!fs::is_directory(source, ec)) {
      HUSK_TRY_ASSIGN(const std::string data, read_text_file(source.string()));
      HUSK_TRY(agent.write_file(f.destination, data, mode_of(source, f.mode), true));
      continue;
    }
    // A folder: its folders first (empty ones too), then its files.
    std::vector<std::string> mkdir = {"mkdir", "-p", "--", f.destination};
    std::vector<std::pair<fs::path, std::string>> regular;
    for (auto it = fs::recursive_directory_iterator(source, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      const std::string rel = fs::relative(it->path(), source).string();
      const std::string dest = f.destination + "/" + rel;
      if (it->is_symlink()) {
        return fail(fmt::format("files: {} is a symbolic link; copy what it points to instead", it->path().string()));
      }
      if (it->is_directory()) {
        mkdir.push_back(dest);
      } else if (it->is_regular_file()) {
        regular.emplace_back(it->path(), dest);
      }
    }
    if (ec) return fail(fmt::format("files: cannot list {}: {}", source.string(), ec.message()));
    HUSK_TRY(guest_command(agent, mkdir));
    for (const auto& [path, dest] : regular) {
      HUSK_TRY_ASSIGN(const std::string data, read_text_file(path.string()));
      HUSK_TRY(agent.write_file(dest, data, mode_of(path, f.mode), true));
    }
  }
  return {};
}

Result<void> collect_outputs(agent::AgentClient& agent, const Outputs& outputs, JobResult& result) {
  // IFS= keeps each pattern whole while its globs expand; folders are
  // walked by find; only regular files are listed, each NUL-terminated.
  std::vector<std::string> argv = {
      "sh", "-c",
      "IFS=''; for p in \"$@\"; do for f in $p; do [ -e \"$f\" ] && find \"$f\" -type f -print0; done; done; true",
      "outputs"};
  argv.insert(argv.end(), outputs.paths.begin(), outputs.paths.end());
  HUSK_TRY_ASSIGN(const std::string listing, guest_command(agent, argv));
  std::error_code ec;
  fs::create_directories(outputs.dir, ec);
  if (ec) return fail(fmt::format("outputs: cannot create {}: {}", outputs.dir, ec.message()));
  const fs::path root = fs::path(outputs.dir).lexically_normal();
  uint64_t total = 0;
  size_t start = 0;
  while (start < listing.size()) {
    const size_t end = listing.find('\0', start);
    if (end == std::string::npos) break;
    const std::string guest = listing.substr(start, end - start);
    start = end + 1;
    const fs::path host = (root / fs::path(guest).relative_path()).lexically_normal();
    const std::string rel = host.lexically_relative(root).string();
    if (guest.empty() || guest.front() != '/' || rel.empty() || rel.rfind("..", 0) == 0) continue;
    CollectedFile file;
    file.guest_path = guest;
    file.host_path = host.string();
    if (total >= outputs.max_total) {
      result.outputs_truncated = true;
      break;
    }
    const uint64_t room = outputs.max_total - total;
    auto data = agent.read_file(guest, room);
    if (!data && data.error().code == EFBIG) {
      // Too big for what is left: keep its first `room` bytes.
      data = guest_command(agent, {"head", "-c", std::to_string(room), "--", guest});
      file.truncated = true;
      result.outputs_truncated = true;
    }
    if (!data) return wrap(fmt::format("outputs: {}", guest), data.error());
    fs::create_directories(host.parent_path(), ec);
    std::ofstream f(host, std::ios::binary | std::ios::trunc);
    f.write(data->data(), static_cast<std::streamsize>(data->size()));
    if (!f) return fail_errno(fmt::format("outputs: cannot write {}", host.string()));
    file.size = data->size();
    file.sha256 = sha256_hex(*data);
    total += data->size();
    result.files.push_back(std::move(file));
  }
  return {};
}

}  // namespace husk::job

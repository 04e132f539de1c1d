#include "runtime/oci/container_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "runtime/common/file.h"
#include "runtime/common/unique_fd.h"

namespace husk::oci {

namespace {

constexpr const char* kStateFile = "state.json";
constexpr uint64_t kMaxStateBytes = 1 << 20;

const char* const kStatusNames[] = {"creating", "created", "running", "stopped"};

Result<Status> parse_status(const std::string& s) {
  for (size_t i = 0; i < std::size(kStatusNames); ++i) {
    if (s == kStatusNames[i]) return static_cast<Status>(i);
  }
  return fail("unknown status '" + s + "'");
}

// Writes `text` to `path` through a temporary file in the same folder and
// a rename, so readers see the old file or the new one, never a part.
Result<void> write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return fail_errno("create " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("write " + tmp);
    done += static_cast<size_t>(n);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail_errno("rename " + tmp + " to " + path);
  return {};
}

}  // namespace

const char* status_name(Status s) { return kStatusNames[static_cast<size_t>(s)]; }

Result<void> check_id(const std::string& id) {
  const bool chars_ok = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
           c == '-' || c == '.';
  });
  if (id.empty() || id.size() > 1024 || !chars_ok || id == "." || id == "..") {
    return Unexpected(Error{EINVAL, fmt::format("invalid container id '{}': use 1 to 1024 of A-Z a-z 0-9 _ + - .",
                                                id.substr(0, 80))});
  }
  return {};
}

uint64_t process_start_time(int pid) {
  if (pid <= 0) return 0;
  auto stat = read_text_file(fmt::format("/proc/{}/stat", pid), 4096);
  if (!stat) return 0;
  // Field 2 (comm) is in parentheses and may hold spaces: count from its end.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat->substr(close + 1));
  std::string field;
  // Fields 3.. follow; the start time is field 22, the 20th after comm.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
  }
  // A zombie is gone for our purposes: it has exited.
  if (stat->size() > close + 2 && (*stat)[close + 2] == 'Z') return 0;
  return std::strtoull(field.c_str(), nullptr, 10);
}

Status current_status(const ContainerState& state) {
  if (state.status == Status::kStopped) return Status::kStopped;
  const uint64_t start = process_start_time(state.pid);
  if (start == 0 || (state.pid_start != 0 && start != state.pid_start)) return Status::kStopped;
  return state.status;
}

nlohmann::json oci_state_json(const ContainerState& state) {
  const Status now = current_status(state);
  nlohmann::json j{{"ociVersion", kOciVersion},
                   {"id", state.id},
                   {"status", status_name(now)},
                   {"pid", now == Status::kStopped ? 0 : state.pid},
                   {"bundle", state.bundle},
                   {"rootfs", state.rootfs},
                   {"created", state.created},
                   {"owner", ""}};
  j["annotations"] = state.annotations;
  return j;
}

nlohmann::json to_json(const ContainerState& state) {
  nlohmann::json j{{"id", state.id},         {"bundle", state.bundle},         {"rootfs", state.rootfs},
                   {"status", status_name(state.status)}, {"pid", state.pid}, {"pid_start", state.pid_start},
                   {"created", state.created}, {"vsock_path", state.vsock_path}, {"image", state.image},
                   {"error", state.error}};
  j["annotations"] = state.annotations;
  if (state.exit_status) j["exit_status"] = *state.exit_status;
  return j;
}

Result<ContainerState> state_from_json(const nlohmann::json& j) {
  try {
    ContainerState s;
    s.id = j.at("id").get<std::string>();
    s.bundle = j.at("bundle").get<std::string>();
    s.rootfs = j.value("rootfs", "");
    HUSK_TRY_ASSIGN(s.status, parse_status(j.at("status").get<std::string>()));
    s.pid = j.at("pid").get<int>();
    s.pid_start = j.value("pid_start", uint64_t{0});
    s.created = j.value("created", "");
    s.vsock_path = j.value("vsock_path", "");
    s.image = j.value("image", "");
    s.error = j.value("error", "");
    if (j.contains("annotations")) s.annotations = j.at("annotations").get<std::map<std::string, std::string>>();
    if (j.contains("exit_status")) s.exit_status = j.at("exit_status").get<int>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("state.json: ") + e.what());
  }
}

Result<void> StateStore::create(const ContainerState& state) {
  HUSK_TRY(check_id(state.id));
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);
  if (ec) return fail("create the state folder " + root_ + ": " + ec.message());
  ::chmod(root_.c_str(), 0700);
  if (::mkdir(dir(state.id).c_str(), 0700) != 0) {
    if (errno == EEXIST) return Unexpected(Error{EEXIST, "container " + state.id + " exists already"});
    return fail_errno("create " + dir(state.id));
  }
  return save(state);
}

Result<ContainerState> StateStore::load(const std::string& id) const {
  HUSK_TRY(check_id(id));
  const std::string path = dir(id) + "/" + kStateFile;
  auto text = read_text_file(path, kMaxStateBytes);
  if (!text) {
    if (text.error().code == ENOENT) return Unexpected(Error{ENOENT, "container " + id + " does not exist"});
    return Unexpected(text.error());
  }
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return fail(path + ": not valid JSON");
  auto state = state_from_json(j);
  if (!state) return fail(path + ": " + state.error().message);
  return state;
}

Result<void> StateStore::save(const ContainerState& state) const {
  return write_atomically(dir(state.id) + "/" + kStateFile, to_json(state).dump(2) + "\n");
}

Result<void> StateStore::remove(const std::string& id) const {
  HUSK_TRY(check_id(id));
  std::error_code ec;
  std::filesystem::remove_all(dir(id), ec);
  if (ec) return fail("remove " + dir(id) + ": " + ec.message());
  return {};
}

Result<std::vector<std::string>> StateStore::ids() const {
  std::vector<std::string> out;
  std::error_code ec;
  if (!std::filesystem::exists(root_, ec)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(root_, ec)) {
    if (entry.is_directory(ec) && std::filesystem::exists(entry.path() / kStateFile, ec)) {
      out.push_back(entry.path().filename().string());
    }
  }
  if (ec) return fail("list " + root_ + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace husk::oci

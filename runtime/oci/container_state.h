// What husk-oci keeps about a container between its commands (each runc
// command is a new process): `<root>/<id>/state.json`, written whole to a
// temporary file and renamed over the old one, so a reader never sees half
// of it. The container's keeper process (keeper.h) writes its own
// transitions (created, running, stopped with the exit status); create,
// start, kill and delete read it.
//
// The stored status is what the keeper last said. A keeper that is gone
// (SIGKILLed, crashed) cannot say "stopped", so current_status() also
// checks that the keeper's pid is alive and is still the same process (its
// start time), the way runc checks its init process.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/common/result.h"

namespace husk::oci {

// The runtime spec's states (runtime.md, "State").
enum class Status { kCreating, kCreated, kRunning, kStopped };
[[nodiscard]] const char* status_name(Status s);

// The runtime spec version husk-oci implements.
inline constexpr const char* kOciVersion = "1.0.2";

struct ContainerState {
  std::string id;
  std::string bundle;
  std::string rootfs;
  Status status = Status::kCreating;
  int pid = 0;             // the keeper: the container's process as callers see it
  uint64_t pid_start = 0;  // the keeper's start time (/proc/PID/stat field 22)
  std::string created;     // RFC 3339, UTC
  std::map<std::string, std::string> annotations;
  std::string vsock_path;  // the VM's vsock socket, for exec (empty until created)
  std::string image;       // the root disk image the VM boots
  // The process's end as a shell reports it: its exit code, or 128 + the
  // signal that killed it.
  std::optional<int> exit_status;
  std::string error;       // why the keeper failed, when it did
};

// A container id as runc accepts it: 1 to 1024 of [A-Za-z0-9_+.-], not
// "." or "..". EINVAL otherwise.
[[nodiscard]] Result<void> check_id(const std::string& id);

// The start time of process `pid` in clock ticks since boot; 0 when there
// is no such process.
[[nodiscard]] uint64_t process_start_time(int pid);

// The status as it is now: the stored one, or stopped when the keeper of a
// creating/created/running container is gone.
[[nodiscard]] Status current_status(const ContainerState& state);

// The state as `runc state` prints it: the runtime spec's fields, and
// runc's `rootfs`, `created` and `owner`.
[[nodiscard]] nlohmann::json oci_state_json(const ContainerState& state);

class StateStore {
 public:
  // `root`: husk-oci's --root (created 0700 on first use).
  explicit StateStore(std::string root) : root_(std::move(root)) {}

  [[nodiscard]] const std::string& root() const { return root_; }
  [[nodiscard]] std::string dir(const std::string& id) const { return root_ + "/" + id; }
  // The keeper's control socket (control.h).
  [[nodiscard]] std::string control_path(const std::string& id) const { return dir(id) + "/control.sock"; }

  // Makes the container's folder and its first state. EEXIST, naming the
  // id, when a container of that id exists.
  [[nodiscard]] Result<void> create(const ContainerState& state);
  // ENOENT "container ID does not exist" when there is none.
  [[nodiscard]] Result<ContainerState> load(const std::string& id) const;
  [[nodiscard]] Result<void> save(const ContainerState& state) const;
  // Removes the container's folder and everything in it.
  [[nodiscard]] Result<void> remove(const std::string& id) const;
  // The ids of every container, sorted.
  [[nodiscard]] Result<std::vector<std::string>> ids() const;

 private:
  std::string root_;
};

// state.json's own encoding (more than oci_state_json: the exit status,
// the vsock path, the keeper's start time).
[[nodiscard]] nlohmann::json to_json(const ContainerState& state);
[[nodiscard]] Result<ContainerState> state_from_json(const nlohmann::json& j);

}  // namespace husk::oci

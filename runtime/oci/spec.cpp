// Reading config.json (runtime-spec config.md, config-linux.md): see spec.h.
#include "runtime/oci/spec.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/common/file.h"

namespace husk::oci {
namespace {

using nlohmann::json;

// Every error names the field: "PATH: WHAT", or just WHAT for the document itself.
Unexpected field_error(const std::string& path, std::string_view what) {
  if (path.empty()) return fail(std::string(what));
  return fail(fmt::format("{}: {}", path, what));
}

std::string key_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? printable(key) : fmt::format("{}.{}", parent, printable(key));
}

std::string index_path(const std::string& parent, size_t i) { return fmt::format("{}[{}]", parent, i); }

// The member `key` of an object, or nullptr when it is absent or null.
const json* member(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// Whether a present value asks for anything: an empty array, object or
// string does not (tools write "sysctl": {} for nothing).
bool asks_for_something(const json& v) {
  if (v.is_null()) return false;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  return true;
}

Result<std::string> as_string(const json& v, const std::string& path) {
  if (!v.is_string()) return field_error(path, "expected a string");
  const auto& s = v.get_ref<const std::string&>();
  if (s.find('\0') != std::string::npos) return field_error(path, "contains a NUL character");
  return s;
}

Result<bool> as_bool(const json& v, const std::string& path) {
  if (!v.is_boolean()) return field_error(path, "expected true or false");
  return v.get<bool>();
}

// An unsigned integer of at most `max`. nlohmann keeps non-negative
// integers as unsigned, negative ones as signed, and integers past 2^64
// (or with a fraction or exponent) as floating point.
Result<uint64_t> as_unsigned(const json& v, const std::string& path, uint64_t max) {
  if (v.is_number_unsigned()) {
    const auto x = v.get<uint64_t>();
    if (x > max) return field_error(path, fmt::format("{} is out of range (at most {})", x, max));
    return x;
  }
  if (v.is_number_integer()) return field_error(path, fmt::format("{} is negative", v.get<int64_t>()));
  if (v.is_number_float()) return field_error(path, fmt::format("expected an integer of at most {}", max));
  return field_error(path, "expected an integer");
}

Result<int64_t> as_signed(const json& v, const std::string& path) {
  if (v.is_number_unsigned()) {
    const auto x = v.get<uint64_t>();
    if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return field_error(path, fmt::format("{} is out of range (at most {})", x,
                                           std::numeric_limits<int64_t>::max()));
    }
    return static_cast<int64_t>(x);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return field_error(path, "expected an integer");
}

Result<std::vector<std::string>> as_strings(const json& v, const std::string& path) {
  if (!v.is_array()) return field_error(path, "expected an array of strings");
  std::vector<std::string> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    HUSK_TRY_ASSIGN(std::string s, as_string(v[i], index_path(path, i)));
    out.push_back(std::move(s));
  }
  return out;
}

// An optional object member: nullptr when absent, an error when not an object.
Result<const json*> object_member(const json& obj, const char* key, const std::string& parent) {
  const json* v = member(obj, key);
  if (v != nullptr && !v->is_object()) return field_error(key_path(parent, key), "expected an object");
  return v;
}

// Optional scalar members: left as they are when absent.
Result<void> read_string(const json& obj, const char* key, const std::string& parent, std::string& out) {
  if (const json* v = member(obj, key)) {
    HUSK_TRY_ASSIGN(out, as_string(*v, key_path(parent, key)));
  }
  return {};
}

Result<void> read_bool(const json& obj, const char* key, const std::string& parent, bool& out) {
  if (const json* v = member(obj, key)) {
    HUSK_TRY_ASSIGN(out, as_bool(*v, key_path(parent, key)));
  }
  return {};
}

template <typename T>
Result<void> read_unsigned(const json& obj, const char* key, const std::string& parent, T& out) {
  if (const json* v = member(obj, key)) {
    HUSK_TRY_ASSIGN(const uint64_t x, as_unsigned(*v, key_path(parent, key), std::numeric_limits<T>::max()));
    out = static_cast<T>(x);  // within T's range: checked above
  }
  return {};
}

Result<void> read_rlimits(const json& v, const std::string& path, std::vector<Rlimit>& out) {
  if (!v.is_array()) return field_error(path, "expected an array of objects");
  std::set<std::string> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = index_path(path, i);
    const json& r = v[i];
    if (!r.is_object()) return field_error(at, "expected an object");
    Rlimit limit;
    const json* type = member(r, "type");
    if (type == nullptr) return field_error(key_path(at, "type"), "missing");
    HUSK_TRY_ASSIGN(limit.type, as_string(*type, key_path(at, "type")));
    // config.md: the type is an RLIMIT_* name (schema: ^RLIMIT_[A-Z]+$).
    const bool well_formed = limit.type.size() > 7 && limit.type.rfind("RLIMIT_", 0) == 0 &&
                             limit.type.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 7) == std::string::npos;
    if (!well_formed) return field_error(key_path(at, "type"), "expected an RLIMIT_* name");
    // config.md: a type given twice is an error.
    if (!seen.insert(limit.type).second) return field_error(key_path(at, "type"), printable(limit.type) + " is given twice");
    for (const char* key : {"soft", "hard"}) {
      if (member(r, key) == nullptr) return field_error(key_path(at, key), "missing");
    }
    HUSK_TRY(read_unsigned(r, "soft", at, limit.soft));
    HUSK_TRY(read_unsigned(r, "hard", at, limit.hard));
    if (limit.soft > limit.hard) {
      return field_error(at, fmt::format("soft limit {} is above the hard limit {}", limit.soft, limit.hard));
    }
    out.push_back(std::move(limit));
  }
  return {};
}

Result<void> read_user(const json& user, const std::string& path, Process& p) {
  HUSK_TRY(read_unsigned(user, "uid", path, p.uid));
  HUSK_TRY(read_unsigned(user, "gid", path, p.gid));
  if (const json* umask = member(user, "umask")) {
    HUSK_TRY_ASSIGN(const uint64_t m, as_unsigned(*umask, key_path(path, "umask"), 0777));
    p.umask = static_cast<uint32_t>(m);
  }
  if (const json* gids = member(user, "additionalGids")) {
    const std::string at = key_path(path, "additionalGids");
    if (!gids->is_array()) return field_error(at, "expected an array of integers");
    for (size_t i = 0; i < gids->size(); ++i) {
      HUSK_TRY_ASSIGN(const uint64_t g, as_unsigned((*gids)[i], index_path(at, i), UINT32_MAX));
      p.additional_gids.push_back(static_cast<uint32_t>(g));
    }
  }
  if (const json* name = member(user, "username")) {
    HUSK_TRY_ASSIGN(const std::string s, as_string(*name, key_path(path, "username")));
    if (!s.empty()) p.moot.push_back("user.username");
  }
  return {};
}

Result<Process> read_process(const json& j, const std::string& path) {
  if (!j.is_object()) return field_error(path, "expected an object");
  Process p;
  HUSK_TRY(read_bool(j, "terminal", path, p.terminal));
  HUSK_TRY_ASSIGN(const json* console, object_member(j, "consoleSize", path));
  if (console != nullptr) {
    const std::string at = key_path(path, "consoleSize");
    for (const char* key : {"height", "width"}) {
      if (member(*console, key) == nullptr) return field_error(key_path(at, key), "missing");
    }
    HUSK_TRY(read_unsigned(*console, "height", at, p.console_rows));
    HUSK_TRY(read_unsigned(*console, "width", at, p.console_cols));
  }
  HUSK_TRY_ASSIGN(const json* user, object_member(j, "user", path));
  if (user != nullptr) HUSK_TRY(read_user(*user, key_path(path, "user"), p));

  const json* args = member(j, "args");
  if (args == nullptr) return field_error(key_path(path, "args"), "missing");
  HUSK_TRY_ASSIGN(p.args, as_strings(*args, key_path(path, "args")));
  // config.md: "at least one entry is REQUIRED" (the program).
  if (p.args.empty()) return field_error(key_path(path, "args"), "empty: at least the program is required");
  if (const json* env = member(j, "env")) {
    HUSK_TRY_ASSIGN(p.env, as_strings(*env, key_path(path, "env")));
  }
  HUSK_TRY(read_string(j, "cwd", path, p.cwd));
  if (p.cwd.empty() || p.cwd.front() != '/') {
    return field_error(key_path(path, "cwd"), fmt::format("'{}' is not an absolute path", printable(p.cwd)));
  }
  if (const json* rlimits = member(j, "rlimits")) {
    HUSK_TRY(read_rlimits(*rlimits, key_path(path, "rlimits"), p.rlimits));
  }
  HUSK_TRY(read_bool(j, "noNewPrivileges", path, p.no_new_privileges));
  // Kept only by name: the plan reports them (their values do not matter to it).
  for (const char* key : {"capabilities", "apparmorProfile", "selinuxLabel", "oomScoreAdj", "scheduler",
                          "ioPriority", "execCPUAffinity", "commandLine"}) {
    if (const json* v = member(j, key); v != nullptr && asks_for_something(*v)) p.moot.emplace_back(key);
  }
  return p;
}

// config-linux.md: memory values are bytes or -1 for unlimited; cpu.quota
// likewise. 0 is what Docker and Kubernetes leave for "not set".
Result<std::optional<int64_t>> read_limit(const json& obj, const char* key, const std::string& parent) {
  const json* v = member(obj, key);
  if (v == nullptr) return std::optional<int64_t>();
  HUSK_TRY_ASSIGN(const int64_t x, as_signed(*v, key_path(parent, key)));
  if (x < -1) return field_error(key_path(parent, key), fmt::format("{} is negative (-1 means unlimited)", x));
  if (x <= 0) return std::optional<int64_t>();
  return std::optional<int64_t>(x);
}

// The members of `obj` besides `mapped` that ask for something, as "PREFIXkey".
void list_others(const json& obj, std::initializer_list<std::string_view> mapped, const std::string& prefix,
                 std::vector<std::string>& out) {
  for (const auto& [key, value] : obj.items()) {
    if (std::find(mapped.begin(), mapped.end(), key) != mapped.end()) continue;
    if (asks_for_something(value)) out.push_back(prefix + key);
  }
}

Result<void> read_resources(const json& res, const std::string& path, Resources& r) {
  HUSK_TRY_ASSIGN(const json* memory, object_member(res, "memory", path));
  if (memory != nullptr) {
    const std::string at = key_path(path, "memory");
    HUSK_TRY_ASSIGN(r.memory_limit, read_limit(*memory, "limit", at));
    list_others(*memory, {"limit"}, "memory.", r.other);
  }
  HUSK_TRY_ASSIGN(const json* cpu, object_member(res, "cpu", path));
  if (cpu != nullptr) {
    const std::string at = key_path(path, "cpu");
    HUSK_TRY_ASSIGN(r.cpu_quota, read_limit(*cpu, "quota", at));
    if (member(*cpu, "period") != nullptr) {
      HUSK_TRY_ASSIGN(r.cpu_period, as_unsigned(*member(*cpu, "period"), key_path(at, "period"), UINT64_MAX));
    }
    if (member(*cpu, "shares") != nullptr) {
      HUSK_TRY_ASSIGN(r.cpu_shares, as_unsigned(*member(*cpu, "shares"), key_path(at, "shares"), UINT64_MAX));
    }
    HUSK_TRY(read_string(*cpu, "cpus", at, r.cpuset_cpus));
    list_others(*cpu, {"quota", "period", "shares", "cpus"}, "cpu.", r.other);
  }
  HUSK_TRY_ASSIGN(const json* pids, object_member(res, "pids", path));
  if (pids != nullptr) {
    if (const json* limit = member(*pids, "limit")) {
      HUSK_TRY_ASSIGN(r.pids_limit, as_signed(*limit, key_path(key_path(path, "pids"), "limit")));
    }
  }
  list_others(res, {"memory", "cpu", "pids"}, "", r.other);
  return {};
}

Result<void> read_linux(const json& linux, const std::string& path, Spec& spec) {
  HUSK_TRY_ASSIGN(const json* res, object_member(linux, "resources", path));
  if (res != nullptr) HUSK_TRY(read_resources(*res, key_path(path, "resources"), spec.resources));
  if (const json* ns = member(linux, "namespaces")) {
    const std::string at = key_path(path, "namespaces");
    if (!ns->is_array()) return field_error(at, "expected an array of objects");
    for (size_t i = 0; i < ns->size(); ++i) {
      const std::string item = index_path(at, i);
      const json& n = (*ns)[i];
      if (!n.is_object()) return field_error(item, "expected an object");
      Namespace out;
      const json* type = member(n, "type");
      if (type == nullptr) return field_error(key_path(item, "type"), "missing");
      HUSK_TRY_ASSIGN(out.type, as_string(*type, key_path(item, "type")));
      HUSK_TRY(read_string(n, "path", item, out.path));
      spec.namespaces.push_back(std::move(out));
    }
  }
  HUSK_TRY(read_string(linux, "cgroupsPath", path, spec.cgroups_path));
  list_others(linux, {"resources", "namespaces", "cgroupsPath"}, "", spec.linux_other);
  return {};
}

Result<void> read_mounts(const json& v, const std::string& path, std::vector<Mount>& out) {
  if (!v.is_array()) return field_error(path, "expected an array of objects");
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = index_path(path, i);
    const json& m = v[i];
    if (!m.is_object()) return field_error(at, "expected an object");
    Mount mount;
    const json* dest = member(m, "destination");
    if (dest == nullptr) return field_error(key_path(at, "destination"), "missing");
    HUSK_TRY_ASSIGN(mount.destination, as_string(*dest, key_path(at, "destination")));
    if (mount.destination.empty()) return field_error(key_path(at, "destination"), "empty");
    HUSK_TRY(read_string(m, "type", at, mount.type));
    HUSK_TRY(read_string(m, "source", at, mount.source));
    if (const json* options = member(m, "options")) {
      HUSK_TRY_ASSIGN(mount.options, as_strings(*options, key_path(at, "options")));
    }
    out.push_back(std::move(mount));
  }
  return {};
}

Result<void> read_hooks(const json& hooks, const std::string& path, std::vector<std::string>& out) {
  for (const auto& [key, value] : hooks.items()) {
    if (value.is_null()) continue;
    if (!value.is_array()) return field_error(key_path(path, key), "expected an array of hooks");
    if (!value.empty()) out.push_back(key);
  }
  return {};
}

Result<Spec> read_spec(const json& j) {
  if (!j.is_object()) return fail("expected a JSON object");
  Spec spec;
  const json* version = member(j, "ociVersion");
  if (version == nullptr) return field_error("ociVersion", "missing");
  HUSK_TRY_ASSIGN(spec.oci_version, as_string(*version, "ociVersion"));
  // config.md: versions are compatible within a major version.
  if (spec.oci_version.rfind("1.", 0) != 0) {
    return field_error("ociVersion", fmt::format("'{}' is not a 1.x version", printable(spec.oci_version)));
  }
  HUSK_TRY_ASSIGN(const json* root, object_member(j, "root", ""));
  if (root == nullptr || member(*root, "path") == nullptr) return field_error("root.path", "missing");
  HUSK_TRY_ASSIGN(spec.root_path, as_string(*member(*root, "path"), "root.path"));
  if (spec.root_path.empty()) return field_error("root.path", "empty");
  HUSK_TRY(read_bool(*root, "readonly", "root", spec.root_readonly));
  if (const json* process = member(j, "process")) {
    HUSK_TRY_ASSIGN(spec.process, read_process(*process, "process"));
  }
  HUSK_TRY(read_string(j, "hostname", "", spec.hostname));
  HUSK_TRY(read_string(j, "domainname", "", spec.domainname));
  if (const json* mounts = member(j, "mounts")) HUSK_TRY(read_mounts(*mounts, "mounts", spec.mounts));
  HUSK_TRY_ASSIGN(const json* annotations, object_member(j, "annotations", ""));
  if (annotations != nullptr) {
    for (const auto& [key, value] : annotations->items()) {
      HUSK_TRY_ASSIGN(std::string text, as_string(value, fmt::format("annotations[\"{}\"]", printable(key))));
      spec.annotations.emplace(key, std::move(text));
    }
  }
  HUSK_TRY_ASSIGN(const json* hooks, object_member(j, "hooks", ""));
  if (hooks != nullptr) HUSK_TRY(read_hooks(*hooks, "hooks", spec.hooks));
  HUSK_TRY_ASSIGN(const json* linux, object_member(j, "linux", ""));
  if (linux != nullptr) HUSK_TRY(read_linux(*linux, "linux", spec));
  return spec;
}

// The caller's text as JSON. A syntax error says where (nlohmann's byte
// count up to the offending character, 1-based, and its line and column); its text is made printable, so a quoted
// control character cannot split or forge a log line.
Result<json> parse_json(std::string_view text) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, ...": the
    // bracketed id says nothing to the reader.
    if (const size_t end = what.find("] "); what.rfind("[json.exception", 0) == 0 && end != std::string::npos) {
      what.erase(0, end + 2);
    }
    for (char& c : what) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return fail(fmt::format("invalid JSON at byte {}: {}", e.byte, what));
  } catch (const json::exception& e) {
    return fail(fmt::format("invalid JSON: {}", e.what()));
  }
}

}  // namespace

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (const char c : s.substr(0, max)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

Result<Spec> parse_spec(std::string_view text) {
  HUSK_TRY_ASSIGN(const json j, parse_json(text));
  // The readers check every type before every access, so nothing below
  // should throw; a throw would be a bug here, reported rather than raised.
  try {
    return read_spec(j);
  } catch (const std::exception& e) {
    return fail(fmt::format("reading the spec: {}", e.what()));
  }
}

Result<Process> parse_process(std::string_view text) {
  HUSK_TRY_ASSIGN(const json j, parse_json(text));
  try {
    return read_process(j, "");
  } catch (const std::exception& e) {
    return fail(fmt::format("reading the process: {}", e.what()));
  }
}

Result<Spec> load_bundle(const std::string& bundle_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path bundle = fs::absolute(bundle_dir, ec);
  if (ec) return fail(fmt::format("bundle {}: {}", bundle_dir, ec.message()));
  const std::string config = (bundle / "config.json").string();
  HUSK_TRY_ASSIGN(const std::string text, read_text_file(config, kMaxConfigBytes));
  auto spec = parse_spec(text);
  if (!spec) return wrap(config, spec.error());
  // config.md: a relative root.path is relative to the bundle.
  spec->root_path = (bundle / spec->root_path).lexically_normal().string();
  if (spec->root_path.size() > 1 && spec->root_path.back() == '/') spec->root_path.pop_back();
  return spec;
}

}  // namespace husk::oci

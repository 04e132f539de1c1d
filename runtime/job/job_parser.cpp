// The job file, top to bottom: each section has its own function, and each
// lists its keys once (for check_keys) beside the code that reads them.
#include "runtime/job/job_parser.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "runtime/arch/x86_64/layout.h"
#include "runtime/common/file.h"
#include "runtime/job/network_parser.h"
#include "runtime/job/toml_reader.h"

namespace husk::job {

namespace fs = std::filesystem;

namespace {

constexpr auto kMaxTime = std::chrono::hours(24);
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr uint32_t kNobody = 65534;

class JobParser {
 public:
  // `shown` names the file in messages (as the user gave it); `file` is absolute.
  JobParser(const std::string& shown, std::string file, const LoadOptions& options)
      : file_(std::move(file)), dir_(fs::path(file_).parent_path()), options_(options), r_(shown) {}

  Result<Job> parse(const toml::table& root);

 private:
  std::map<std::string, std::string> base_env(const toml::table& root);
  void parse_vm(const toml::table* t, VmSpec& vm);
  Limits parse_limits(const toml::table* t, std::string_view prefix);
  std::optional<Step> parse_step(const toml::table& t, std::string_view prefix, bool is_process);
  void parse_user(const toml::table& t, std::string_view prefix, Step& step);
  Stdin parse_stdin(const toml::table& t, std::string_view prefix);
  void parse_files(const toml::table& root, Job& job);
  void parse_judge(const toml::table& root, Job& job);
  void parse_cases(const toml::table& root, Job& job);
  void parse_outputs(const toml::table* t, Job& job);
  void parse_result(const toml::table* t, Job& job);
  std::optional<Compare> parse_compare(const toml::table& t, std::string_view prefix);
  // A host path from the job: resolved against the job's folder; must exist
  // when `must_exist` (then `what` says what it should be).
  std::optional<std::string> host_path(const toml::table& t, std::string_view prefix, std::string_view key,
                                       bool must_exist);
  std::optional<std::string> guest_path(const toml::table& t, std::string_view prefix, std::string_view key);
  std::optional<std::string> read_text(const toml::table& t, std::string_view prefix, std::string_view key);

  std::string file_;
  fs::path dir_;
  const LoadOptions& options_;
  TomlReader r_;
  Limits job_limits_;
  std::map<std::string, std::string> env_;
};

bool valid_env_name(std::string_view name) {
  return !name.empty() && name.find('=') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

std::string resolve(const fs::path& dir, const std::string& p) {
  const fs::path path(p);
  return (path.is_absolute() ? path : dir / path).lexically_normal().string();
}

Result<Job> JobParser::parse(const toml::table& root) {
  r_.check_keys(root, "", {"version", "hostname", "inherit_env", "env", "vm", "limits", "files", "steps",
                           "process", "judge", "cases", "outputs", "network", "result"});
  // Inline data (a step's stdin, a case's expected output) may hold any
  // byte; everything else becomes a C string in the guest.
  r_.refuse_nul(root, "", {"stdin", "expected"});
  Job job;
  job.source = file_;
  if (const toml::node* v = root.get("version"); v == nullptr) {
    r_.error(fmt::format("missing 'version = {}' (the job format version) at the top", kJobFormatVersion));
  } else if (auto version = r_.integer(root, "", "version", 0, INT32_MAX); version && *version != kJobFormatVersion) {
    r_.error(v->source(), "version",
             fmt::format("this husk reads job format version {}, the file says {}", kJobFormatVersion, *version));
  }
  if (auto h = r_.string(root, "", "hostname")) {
    if (h->empty() || h->size() > 64 || h->find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") !=
                                              std::string::npos) {
      r_.error(TomlReader::where(root, "hostname"), "hostname", "expected 1 to 64 letters, digits, '-' or '.'");
    } else {
      job.hostname = *h;
    }
  }
  env_ = base_env(root);
  parse_vm(r_.table(root, "", "vm"), job.vm);
  job_limits_ = parse_limits(r_.table(root, "", "limits"), "limits.");
  parse_files(root, job);

  std::set<std::string> names;
  const auto steps = r_.tables(root, "", "steps");
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string prefix = fmt::format("steps[{}].", i);
    auto step = parse_step(*steps[i], prefix, false);
    if (!step) continue;
    if (!names.insert(step->name).second) {
      r_.error(TomlReader::where(*steps[i], "name"), prefix + "name", fmt::format("'{}' is used twice", step->name));
    }
    job.steps.push_back(std::move(*step));
  }
  const toml::table* process = r_.table(root, "", "process");
  if (process != nullptr) {
    if (auto p = parse_step(*process, "process.", true)) {
      if (options_.has_request_input) {
        if (root.contains("cases")) {
          r_.error(TomlReader::where(root, "cases"), "cases", "--input is for a [process] without [[cases]]");
        } else if (p->stdin.kind != Stdin::Kind::kNone) {
          r_.error(TomlReader::where(*process, process->contains("stdin") ? "stdin" : "stdin_file"), "process.stdin",
                   "--input gives [process] its stdin: remove stdin/stdin_file or do not use --input");
        }
        p->stdin = Stdin{Stdin::Kind::kRequest, ""};
      }
      p->is_process = true;
      if (root.contains("cases")) {
        job.judge = Judge{};
        job.judge->program = std::move(*p);
      } else {
        job.steps.push_back(std::move(*p));
      }
    }
  }
  if (process == nullptr && steps.empty()) {
    r_.error("nothing to run: give [process] or at least one [[steps]]");
  }
  if (root.contains("cases")) {
    if (process == nullptr) {
      r_.error(TomlReader::where(root, "cases"), "cases", "cases need [process]: the program each case runs");
    }
    parse_judge(root, job);
    parse_cases(root, job);
  } else if (root.contains("judge")) {
    r_.error(TomlReader::where(root, "judge"), "judge", "[judge] needs [[cases]]");
  }
  if (options_.has_request_input && process == nullptr) {
    r_.error("--input needs [process]: the request becomes its stdin");
  }
  parse_outputs(r_.table(root, "", "outputs"), job);
  if (const toml::table* net = r_.table(root, "", "network")) {
    parse_network(r_, *net, job.network);
    if (job.network.mode != net::NetMode::kNone && job.vm.start == StartMode::kSnapshot) {
      r_.error(TomlReader::where(*net, "mode"), "network.mode",
               "a network is not available with [vm] start = \"snapshot\" yet: use start = \"boot\"");
    }
  }
  parse_result(r_.table(root, "", "result"), job);

  if (r_.error_count() != 0) {
    std::string message;
    for (const std::string& e : r_.errors()) message += (message.empty() ? "" : "\n") + e;
    return fail(message);
  }
  return job;
}

std::map<std::string, std::string> JobParser::base_env(const toml::table& root) {
  std::map<std::string, std::string> env;
  if (r_.boolean(root, "", "inherit_env").value_or(false)) env = options_.host_env;
  if (const toml::table* t = r_.table(root, "", "env")) {
    for (const auto& [key, value] : *t) {
      if (!valid_env_name(key.str())) {
        r_.error(key.source(), fmt::format("env.{}", key.str()), "expected a variable name without '=' or NUL");
      } else if (const auto* s = value.as_string()) {
        env[std::string(key.str())] = s->get();
      } else {
        r_.error(value.source(), fmt::format("env.{}", key.str()), "expected a string");
      }
    }
  }
  return env;
}

void JobParser::parse_vm(const toml::table* t, VmSpec& vm) {
  std::optional<std::string> kernel, initramfs;
  if (t != nullptr) {
    r_.check_keys(*t, "vm.", {"kernel", "initramfs", "root_disk", "root_disk_mode", "vcpus", "memory", "boot_timeout",
                                  "start", "huge_pages"});
    if (auto start = r_.choice(*t, "vm.", "start", {"boot", "snapshot"})) {
      vm.start = *start == "snapshot" ? StartMode::kSnapshot : StartMode::kBoot;
    }
    kernel = host_path(*t, "vm.", "kernel", true);
    initramfs = host_path(*t, "vm.", "initramfs", true);
    if (auto disk = host_path(*t, "vm.", "root_disk", true)) {
      vm.root_disk = vmm::DiskConfig{*disk, vmm::DiskMode::kCopyOnWrite};
      if (auto mode = r_.choice(*t, "vm.", "root_disk_mode", {"cow", "ro", "rw"})) {
        vm.root_disk->mode = *mode == "ro"   ? vmm::DiskMode::kReadOnly
                             : *mode == "rw" ? vmm::DiskMode::kPersistent
                                             : vmm::DiskMode::kCopyOnWrite;
      }
    } else if (t->contains("root_disk_mode") && !t->contains("root_disk")) {
      r_.error(TomlReader::where(*t, "root_disk_mode"), "vm.root_disk_mode", "needs vm.root_disk");
    }
    if (auto vcpus = r_.integer(*t, "vm.", "vcpus", 1, x86_64::kMaxVcpus)) vm.vcpus = static_cast<uint32_t>(*vcpus);
    if (auto mem = r_.size(*t, "vm.", "memory", 64ull << 20, vmm::host_memory_limit_mib() << 20)) {
      vm.memory_mib = *mem >> 20;
    }
    if (auto d = r_.duration(*t, "vm.", "boot_timeout", std::chrono::hours(1))) vm.boot_timeout = *d;
    if (auto huge = r_.boolean(*t, "vm.", "huge_pages")) vm.huge_pages = *huge;
  }
  const auto check_default = [&](const std::string& path, const char* key, const char* what) {
    if (path.empty() || !fs::exists(path)) {
      r_.error(fmt::format("vm.{}: the default {} {} does not exist (build it with `make guest`, or set vm.{})", key,
                           what, path.empty() ? "(none)" : path, key));
    }
  };
  vm.kernel = kernel.value_or(options_.default_kernel);
  if (!kernel && !(t != nullptr && t->contains("kernel"))) check_default(vm.kernel, "kernel", "guest kernel");
  vm.initramfs = initramfs.value_or(options_.default_initramfs);
  vm.stock_initramfs = !initramfs && !(t != nullptr && t->contains("initramfs"));
  if (vm.stock_initramfs) check_default(vm.initramfs, "initramfs", "initramfs");
}

Limits JobParser::parse_limits(const toml::table* t, std::string_view prefix) {
  Limits l;
  if (t == nullptr) return l;
  r_.check_keys(*t, prefix, {"wall_time", "cpu_time", "memory", "processes", "open_files", "file_size", "stdout_max",
                             "stderr_max", "kill_signal", "kill_grace"});
  constexpr uint64_t kMaxBytes = 1ull << 50;
  l.wall_time = r_.duration(*t, prefix, "wall_time", kMaxTime);
  l.cpu_time = r_.duration(*t, prefix, "cpu_time", kMaxTime);
  l.memory = r_.size(*t, prefix, "memory", 1u << 20, vmm::host_memory_limit_mib() << 20);
  if (auto p = r_.integer(*t, prefix, "processes", 1, 1'000'000)) l.processes = static_cast<uint32_t>(*p);
  if (auto f = r_.integer(*t, prefix, "open_files", 1, 1 << 20)) l.open_files = static_cast<uint64_t>(*f);
  l.file_size = r_.size(*t, prefix, "file_size", 1, kMaxBytes);
  l.stdout_max = r_.size(*t, prefix, "stdout_max", 1, kMaxBytes);
  l.stderr_max = r_.size(*t, prefix, "stderr_max", 1, kMaxBytes);
  l.kill_signal = r_.signal(*t, prefix, "kill_signal");
  l.kill_grace = r_.duration(*t, prefix, "kill_grace", kMaxTime);
  return l;
}

std::optional<Step> JobParser::parse_step(const toml::table& t, std::string_view prefix, bool is_process) {
  if (is_process) {
    r_.check_keys(t, prefix, {"name", "run", "argv", "env", "cwd", "user", "stdin", "stdin_file", "timeout", "limits"});
  } else {
    r_.check_keys(t, prefix, {"name", "run", "argv", "env", "cwd", "user", "stdin", "stdin_file", "timeout", "limits",
                              "continue_on_error"});
  }
  Step step;
  const size_t errors_before = r_.error_count();
  if (auto name = r_.string(t, prefix, "name")) {
    step.name = *name;
  } else if (is_process) {
    step.name = "process";
  } else if (!t.contains("name")) {
    r_.error(t.source(), std::string(prefix) + "name", "every step needs a name");
  }
  const bool has_run = t.contains("run");
  const bool has_argv = t.contains("argv");
  if (has_run && has_argv) {
    r_.error(TomlReader::where(t, "argv"), std::string(prefix) + "argv", "give either run or argv, not both");
  } else if (!has_run && !has_argv) {
    r_.error(t.source(), prefix.substr(0, prefix.size() - 1), "needs run = \"shell line\" or argv = [...]");
  } else if (auto run = r_.string(t, prefix, "run")) {
    step.argv = {"sh", "-c", *run};
  } else if (auto argv = r_.strings(t, prefix, "argv")) {
    if (argv->empty()) r_.error(TomlReader::where(t, "argv"), std::string(prefix) + "argv", "expected at least the program");
    step.argv = *argv;
  }
  step.env = env_;
  if (const toml::table* env = r_.table(t, prefix, "env")) {
    for (const auto& [key, value] : *env) {
      if (!valid_env_name(key.str())) {
        r_.error(key.source(), fmt::format("{}env.{}", prefix, key.str()), "expected a variable name without '=' or NUL");
      } else if (const auto* s = value.as_string()) {
        step.env[std::string(key.str())] = s->get();
      } else {
        r_.error(value.source(), fmt::format("{}env.{}", prefix, key.str()), "expected a string");
      }
    }
  }
  if (step.env.find("PATH") == step.env.end()) step.env["PATH"] = kDefaultPath;
  if (auto cwd = guest_path(t, prefix, "cwd")) step.cwd = *cwd;
  parse_user(t, prefix, step);
  step.stdin = parse_stdin(t, prefix);
  step.limits = job_limits_.merged_with(parse_limits(r_.table(t, prefix, "limits"), std::string(prefix) + "limits."));
  if (auto timeout = r_.duration(t, prefix, "timeout", kMaxTime)) step.limits.wall_time = *timeout;
  if (!is_process) step.continue_on_error = r_.boolean(t, prefix, "continue_on_error").value_or(false);
  if (r_.error_count() != errors_before) return std::nullopt;
  return step;
}

void JobParser::parse_user(const toml::table& t, std::string_view prefix, Step& step) {
  const toml::node* n = t.get("user");
  if (n == nullptr) return;
  const std::string key = std::string(prefix) + "user";
  const auto bad = [&] {
    r_.error(n->source(), key, "expected \"root\", \"nobody\", a uid (1000) or \"uid:gid\" (\"1000:1000\")");
  };
  const auto number = [](const std::string& s, uint32_t& out) {
    if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return false;
    const uint64_t v = std::stoull(s);
    if (v >= 0xffffffffu) return false;
    out = static_cast<uint32_t>(v);
    return true;
  };
  if (const auto* i = n->as_integer()) {
    if (i->get() < 0 || i->get() >= 0xffffffffLL) return bad();
    step.uid = step.gid = static_cast<uint32_t>(i->get());
    return;
  }
  const auto* s = n->as_string();
  if (s == nullptr) return bad();
  const std::string& v = s->get();
  if (v == "root") {
    step.uid = step.gid = 0;
  } else if (v == "nobody") {
    step.uid = step.gid = kNobody;
  } else if (const size_t colon = v.find(':'); colon != std::string::npos) {
    if (!number(v.substr(0, colon), step.uid) || !number(v.substr(colon + 1), step.gid)) bad();
  } else if (number(v, step.uid)) {
    step.gid = step.uid;
  } else {
    bad();
  }
}

Stdin JobParser::parse_stdin(const toml::table& t, std::string_view prefix) {
  if (t.contains("stdin") && t.contains("stdin_file")) {
    r_.error(TomlReader::where(t, "stdin_file"), std::string(prefix) + "stdin_file", "give either stdin or stdin_file, not both");
    return {};
  }
  if (auto text = r_.string(t, prefix, "stdin")) return Stdin{Stdin::Kind::kInline, *text};
  if (auto path = host_path(t, prefix, "stdin_file", true)) return Stdin{Stdin::Kind::kFile, *path};
  return {};
}

void JobParser::parse_files(const toml::table& root, Job& job) {
  const auto files = r_.tables(root, "", "files");
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string prefix = fmt::format("files[{}].", i);
    const toml::table& t = *files[i];
    r_.check_keys(t, prefix, {"source", "destination", "mode"});
    FileUpload f;
    auto source = host_path(t, prefix, "source", true);
    auto destination = guest_path(t, prefix, "destination");
    if (!t.contains("source")) r_.error(t.source(), prefix + "source", "every file needs a source");
    if (!t.contains("destination")) r_.error(t.source(), prefix + "destination", "every file needs a destination");
    if (const toml::node* m = t.get("mode")) {
      // A string only: a TOML integer 755 would be decimal 755.
      const auto* s = m->as_string();
      uint32_t mode = 0;
      bool ok = false;
      if (s != nullptr && !s->get().empty() && s->get().size() <= 5 &&
          s->get().find_first_not_of("01234567") == std::string::npos) {
        mode = static_cast<uint32_t>(std::stoul(s->get(), nullptr, 8));
        ok = mode <= 07777;
      }
      if (ok) {
        f.mode = mode;
      } else {
        r_.error(m->source(), prefix + "mode", "expected an octal mode string such as \"0644\" or \"0755\"");
      }
    }
    if (source && destination) {
      f.source = *source;
      f.destination = *destination;
      job.files.push_back(std::move(f));
    }
  }
}

std::optional<Compare> JobParser::parse_compare(const toml::table& t, std::string_view prefix) {
  auto c = r_.choice(t, prefix, "compare", {"exact", "trailing-whitespace", "tokens", "checker"});
  if (!c) return std::nullopt;
  if (*c == "exact") return Compare::kExact;
  if (*c == "tokens") return Compare::kTokens;
  if (*c == "checker") return Compare::kChecker;
  return Compare::kTrailingWhitespace;
}

void JobParser::parse_judge(const toml::table& root, Job& job) {
  const toml::table* t = r_.table(root, "", "judge");
  if (!job.judge) job.judge = Judge{};
  if (t == nullptr) return;
  r_.check_keys(*t, "judge.", {"compare", "checker", "stop_on_failure", "limits"});
  if (auto c = parse_compare(*t, "judge.")) job.judge->compare = *c;
  if (t->contains("checker")) {
    if (const toml::node* n = t->get("checker"); n->is_string()) {
      job.judge->checker = {"sh", "-c", n->as_string()->get(), "checker"};
    } else if (auto argv = r_.strings(*t, "judge.", "checker")) {
      if (argv->empty()) r_.error(n->source(), "judge.checker", "expected at least the program");
      job.judge->checker = *argv;
    }
  }
  job.judge->stop_on_failure = r_.boolean(*t, "judge.", "stop_on_failure").value_or(false);
  job.judge->program.limits =
      job.judge->program.limits.merged_with(parse_limits(r_.table(*t, "judge.", "limits"), "judge.limits."));
}

void JobParser::parse_cases(const toml::table& root, Job& job) {
  const auto cases = r_.tables(root, "", "cases");
  if (cases.empty()) r_.error(TomlReader::where(root, "cases"), "cases", "expected at least one [[cases]]");
  std::set<std::string> names;
  bool needs_checker = job.judge->compare == Compare::kChecker;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string prefix = fmt::format("cases[{}].", i);
    const toml::table& t = *cases[i];
    r_.check_keys(t, prefix, {"name", "stdin", "stdin_file", "expected", "expected_file", "compare", "timeout", "limits"});
    Case c;
    c.name = r_.string(t, prefix, "name").value_or(fmt::format("case {}", i + 1));
    if (!names.insert(c.name).second) {
      r_.error(TomlReader::where(t, "name"), prefix + "name", fmt::format("'{}' is used twice", c.name));
    }
    c.stdin = parse_stdin(t, prefix);
    if (t.contains("expected") && t.contains("expected_file")) {
      r_.error(TomlReader::where(t, "expected_file"), prefix + "expected_file",
               "give either expected or expected_file, not both");
    } else if (auto e = r_.string(t, prefix, "expected")) {
      c.expected = *e;
    } else if (t.contains("expected_file")) {
      c.expected = read_text(t, prefix, "expected_file");
    }
    c.compare = parse_compare(t, prefix).value_or(job.judge->compare);
    needs_checker = needs_checker || c.compare == Compare::kChecker;
    c.limits = job.judge->program.limits.merged_with(parse_limits(r_.table(t, prefix, "limits"), prefix + "limits."));
    if (auto timeout = r_.duration(t, prefix, "timeout", kMaxTime)) c.limits.wall_time = *timeout;
    if (c.compare == Compare::kChecker && !c.expected) {
      c.expected = "";  // a checker may judge without an expected answer
    }
    job.cases.push_back(std::move(c));
  }
  if (needs_checker && job.judge->checker.empty()) {
    r_.error(TomlReader::where(root, "judge"), "judge.checker", "compare = \"checker\" needs judge.checker");
  }
}

void JobParser::parse_outputs(const toml::table* t, Job& job) {
  if (t == nullptr) return;
  r_.check_keys(*t, "outputs.", {"paths", "dir", "max_total"});
  Outputs out;
  if (auto paths = r_.strings(*t, "outputs.", "paths")) {
    for (const std::string& p : *paths) {
      if (p.empty() || p.front() != '/') {
        r_.error(TomlReader::where(*t, "paths"), "outputs.paths", fmt::format("expected absolute guest paths, got \"{}\"", p));
      }
    }
    out.paths = *paths;
  }
  if (!t->contains("paths") || (t->get("paths")->is_array() && t->get("paths")->as_array()->empty())) {
    r_.error(TomlReader::where(*t, "paths"), "outputs.paths", "expected a non-empty array of guest paths or globs");
  }
  if (auto dir = host_path(*t, "outputs.", "dir", false)) {
    out.dir = *dir;
  } else if (!t->contains("dir")) {
    r_.error(t->source(), "outputs.dir", "expected the host folder outputs are copied to");
  }
  if (auto cap = r_.size(*t, "outputs.", "max_total", 1, 1ull << 40)) out.max_total = *cap;
  job.outputs = std::move(out);
}

void JobParser::parse_result(const toml::table* t, Job& job) {
  if (t == nullptr) return;
  r_.check_keys(*t, "result.", {"format", "path"});
  if (auto f = r_.choice(*t, "result.", "format", {"human", "json"})) {
    job.result.format = *f == "json" ? ResultFormat::kJson : ResultFormat::kHuman;
  }
  if (auto p = host_path(*t, "result.", "path", false)) job.result.path = *p;
}

std::optional<std::string> JobParser::host_path(const toml::table& t, std::string_view prefix, std::string_view key,
                                                bool must_exist) {
  auto p = r_.string(t, prefix, key);
  if (!p) return std::nullopt;
  if (p->empty()) {
    r_.error(TomlReader::where(t, key), std::string(prefix) + std::string(key), "expected a path, got \"\"");
    return std::nullopt;
  }
  std::string path = resolve(dir_, *p);
  std::error_code ec;
  if (must_exist && !fs::exists(path, ec)) {
    r_.error(TomlReader::where(t, key), std::string(prefix) + std::string(key),
             fmt::format("{} does not exist", path));
    return std::nullopt;
  }
  return path;
}

std::optional<std::string> JobParser::guest_path(const toml::table& t, std::string_view prefix, std::string_view key) {
  auto p = r_.string(t, prefix, key);
  if (!p) return std::nullopt;
  if (p->empty() || p->front() != '/' || p->find('\0') != std::string::npos) {
    r_.error(TomlReader::where(t, key), std::string(prefix) + std::string(key),
             fmt::format("expected an absolute guest path, got \"{}\"", *p));
    return std::nullopt;
  }
  return p;
}

std::optional<std::string> JobParser::read_text(const toml::table& t, std::string_view prefix, std::string_view key) {
  auto path = host_path(t, prefix, key, true);
  if (!path) return std::nullopt;
  auto text = read_text_file(*path);
  if (!text) {
    r_.error(TomlReader::where(t, key), std::string(prefix) + std::string(key), text.error().message);
    return std::nullopt;
  }
  return *text;
}

}  // namespace

Limits Limits::merged_with(const Limits& over) const {
  Limits m = *this;
  const auto take = [](auto& mine, const auto& theirs) {
    if (theirs) mine = theirs;
  };
  take(m.wall_time, over.wall_time);
  take(m.cpu_time, over.cpu_time);
  take(m.memory, over.memory);
  take(m.processes, over.processes);
  take(m.open_files, over.open_files);
  take(m.file_size, over.file_size);
  take(m.stdout_max, over.stdout_max);
  take(m.stderr_max, over.stderr_max);
  take(m.kill_signal, over.kill_signal);
  take(m.kill_grace, over.kill_grace);
  return m;
}

Result<Job> parse_job(std::string_view text, const std::string& source_path, const LoadOptions& options) {
  const std::string file = fs::absolute(source_path).lexically_normal().string();
  toml::table root;
  try {
    root = toml::parse(text, source_path);
  } catch (const toml::parse_error& e) {
    return fail(fmt::format("{}:{}:{}: TOML syntax: {}", source_path, e.source().begin.line, e.source().begin.column,
                            one_line(e.description())));
  }
  return JobParser(source_path, file, options).parse(root);
}

Result<Job> load_job_file(const std::string& path, const LoadOptions& options) {
  auto text = read_text_file(path);
  if (!text) return wrap("the job file", text.error());
  return parse_job(*text, path, options);
}

}  // namespace husk::job

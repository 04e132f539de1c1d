// husk-oci's log: runc's formats, because its callers read it back.
// containerd's shim and conmon pass `--log FILE --log-format json` and, when
// a command fails, take the last error line's "msg" as the reason they
// report; the text format is for people.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <vector>
#include <cstdio>
#include <mutex>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/oci/oci_cli.h"
#include "runtime/common/unique_fd.h"

namespace husk::oci_cli {

namespace {

// Whether the log is stderr already (no --log): errors are then not printed twice.
bool g_log_is_stderr = true;

// logrus's level names, as runc writes them.
const char* level_name(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warning";
    case spdlog::level::err: return "error";
    default: return "fatal";
  }
}

// One line per message, appended with O_APPEND so the keeper (a fork of
// the command that opened it) and later commands share the file.
class LineSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  LineSink(UniqueFd fd, bool json) : fd_(std::move(fd)), json_(json) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string text(msg.payload.data(), msg.payload.size());
    const auto time = fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(msg.time)));
    std::string line;
    if (json_) {
      line = nlohmann::json{{"level", level_name(msg.level)}, {"msg", text}, {"time", time}}.dump(
                 -1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } else {
      line = fmt::format("time=\"{}\" level={} msg={}\n", time, level_name(msg.level), nlohmann::json(text).dump(
                                                                                           -1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    (void)!::write(fd_.get(), line.data(), line.size());
  }
  void flush_() override {}

 private:
  UniqueFd fd_;
  bool json_;
};

}  // namespace

void setup_logging(const Globals& g) {
  std::shared_ptr<spdlog::logger> logger;
  if (!g.log.empty()) {
    UniqueFd fd(::open(g.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (fd) {
      logger = std::make_shared<spdlog::logger>("husk-oci", std::make_shared<LineSink>(std::move(fd), g.log_format == "json"));
    } else {
      std::fprintf(stderr, "husk-oci: cannot open the log %s; logging to stderr\n", g.log.c_str());
    }
  }
  g_log_is_stderr = !logger;
  if (!logger) logger = spdlog::stderr_color_mt("husk-oci");
  spdlog::set_default_logger(logger);
  spdlog::set_level(g.debug ? spdlog::level::debug : spdlog::level::info);
  if (const char* level = std::getenv("HUSK_LOG")) spdlog::set_level(spdlog::level::from_str(level));
}

void on_parsed(CLI::App* cmd, const Globals& g, int& exit_code, std::function<int()> body) {
  cmd->callback([&g, &exit_code, body = std::move(body)] {
    setup_logging(g);
    exit_code = body();
  });
}

void close_inherited_fds() {
  std::vector<int> inherited;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(entry.path().filename().c_str());
    if (fd > 2 && (::fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0) inherited.push_back(fd);
  }
  // Closed after the listing: the listing's own descriptor is close-on-exec.
  for (int fd : inherited) ::close(fd);
}

int failed(const Error& e) { return failed(e.message); }

int failed(const std::string& message) {
  spdlog::error("{}", message);
  if (!g_log_is_stderr) std::fprintf(stderr, "husk-oci: %s\n", message.c_str());
  return kFailed;
}

}  // namespace husk::oci_cli

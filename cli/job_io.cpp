#include "cli/job_io.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "cli/guest_paths.h"
#include "runtime/common/file.h"
#include "runtime/common/signals.h"

extern char** environ;

namespace husk::cli {

Result<std::string> read_input(const std::string& path) {
  if (path == "-") {
    std::string data(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) return fail_errno("reading stdin");
    return data;
  }
  return read_text_file(path);
}

job::LoadOptions load_options(bool has_request_input) {
  job::LoadOptions o;
  o.default_kernel = default_kernel_path();
  o.default_initramfs = default_initrd_path();
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) o.host_env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  o.has_request_input = has_request_input;
  return o;
}

void take_over_signals() {
  install_signal_handlers();
  forward_stop_signals();
}

}  // namespace husk::cli

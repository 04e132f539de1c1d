#include "cli/program_start.h"

#include <cstdlib>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "runtime/vmm/machine.h"

namespace husk::cli {

void start_program() {
  (void)vmm::process_start_stamp();
  spdlog::set_default_logger(spdlog::stderr_color_mt("husk"));
  spdlog::set_level(spdlog::level::warn);
  if (const char* level = std::getenv("HUSK_LOG")) spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace husk::cli
